"""A stand-in for the Slack Web API and response URLs that records every call it receives.

slack_sdk's `WebClient`/`AsyncWebClient` (and so Bolt) talk to it unchanged through `base_url`:
parameters arrive as a query string, a form body or a JSON body, the token as `Authorization:
Bearer` (or a `token` parameter), and errors come back as HTTP 200 `{"ok": false, "error": …}`
the way Slack sends them. Messages are stored per channel so tests can read what the bot left
behind after its edits. Socket Mode is served too: `apps.connections.open` (app-level token) hands
out a single-use `ws://` URL on this same server, whose WebSocket says `hello`, carries the
envelopes the control API pushes and records the client's acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from sim.faults import Faults

if TYPE_CHECKING:
    from sim.server import Credentials

Obj = dict[str, Any]

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
MAX_TEXT = 40_000  # Slack truncates or refuses longer text (msg_too_long)
MAX_BLOCKS = 50  # per message; 100 in modals
RESPONSE_URL_USES = 5  # Slack lets an app use a response URL five times …
RESPONSE_URL_TTL_S = 30 * 60  # … within thirty minutes
JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
SOCKET_MODE_PATH = "/socket-mode/"
SOCKET_PING_INTERVAL_S = 10.0  # Slack pings Socket Mode clients every few seconds
ACK_DEADLINE_MS = 3000  # Slack tells the user the app failed when an envelope is acked later
ENVELOPE_TYPES = ("slash_commands", "interactive")  # what the control API builds from fields
UPLOAD_PATH = "/upload/v1/"  # where files.getUploadURLExternal sends the bytes
ORIGIN_PARAM = "_sim_origin"  # handed to that method only, never sent by a client
MAX_HOME_BLOCKS = 100  # views.publish refuses more


class SlackError(Exception):
    """A Slack API error code: becomes `{"ok": false, "error": code}` with HTTP 200."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass
class ResponseUrl:
    """Where a slash command or an interaction's answers go: its channel, user and message."""

    id: str
    channel: str
    user: str
    message_ts: str | None
    created: float = field(default_factory=time.monotonic)
    uses: int = 0
    last_ts: str | None = None  # the last message posted through it, for replace_original


class SocketModeUnavailable(Exception):
    """No Socket Mode client can take an envelope: none is connected, or it just left."""


@dataclass
class SocketClient:
    """One Socket Mode WebSocket, opened with a ticket from `apps.connections.open`."""

    id: str
    ws: web.WebSocketResponse
    connected_at: float = field(default_factory=time.time)
    pings_sent: int = 0
    pongs_received: int = 0
    pings_received: int = 0

    def snapshot(self) -> Obj:
        return {
            "id": self.id,
            "connected_at": self.connected_at,
            "pings_sent": self.pings_sent,
            "pongs_received": self.pongs_received,
            "pings_received": self.pings_received,
        }


@dataclass
class Envelope:
    """An envelope sent to a Socket Mode client and, once it answers, its ack."""

    id: str
    type: str
    payload: Obj
    connection: str
    accepts_response_payload: bool
    sent: float = field(default_factory=time.monotonic)
    sent_at: float = field(default_factory=time.time)
    ack_ms: float | None = None
    ack_payload: Obj | None = None
    # Set by the ack, or by the client leaving: either way nobody needs to wait any longer.
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    def result(self) -> Obj:
        return {
            "envelope_id": self.id,
            "type": self.type,
            "connection": self.connection,
            "sent_at": self.sent_at,
            "acked": self.ack_ms is not None,
            "ack_ms": self.ack_ms,
            "in_time": self.ack_ms is not None and self.ack_ms <= ACK_DEADLINE_MS,
            "ack_payload": self.ack_payload,
            "payload": self.payload,
        }


@dataclass
class SlackState:
    """The simulated workspace: messages, ephemeral messages, user groups and every call."""

    team_id: str = "T0WINPODSIM"
    team: str = "winpod-sim"
    bot_user_id: str = "U0WINPODBOT"
    bot_id: str = "B0WINPODBOT"
    app_id: str = "A0WINPODAPP"
    calls: list[Obj] = field(default_factory=list)
    channels: dict[str, dict[str, Obj]] = field(default_factory=dict)  # channel → ts → message
    ephemeral: list[Obj] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    missing_channels: set[str] = field(default_factory=set)
    missing_users: set[str] = field(default_factory=set)
    response_urls: dict[str, ResponseUrl] = field(default_factory=dict)
    views: dict[str, Obj] = field(default_factory=dict)
    home_views: dict[str, Obj] = field(default_factory=dict)  # user → their published App Home
    files: dict[str, Obj] = field(default_factory=dict)  # file id → upload (files.uploadV2 flow)
    refuse_uploads: bool = False  # upload URLs answer 500 (a failing files.slack.com)
    socket_tickets: set[str] = field(default_factory=set)
    socket_clients: dict[str, SocketClient] = field(default_factory=dict)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    socket_acks: list[Obj] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _last_ts_us: int = 0

    # --- identifiers ----------------------------------------------------------------------
    def new_ts(self) -> str:
        """A message timestamp like Slack's ("1732770000.000100"): unique and increasing."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def new_response_url(
        self, base: str, channel: str, user: str, message_ts: str | None = None
    ) -> str:
        """A fresh response URL under `base` (the Slack server's root URL)."""
        url_id = secrets.token_hex(12)
        self.response_urls[url_id] = ResponseUrl(url_id, channel, user, message_ts)
        return f"{base.rstrip('/')}/response/{url_id}"

    # --- Socket Mode ------------------------------------------------------------------------
    def new_socket_url(self, base: str) -> str:
        """A WebSocket URL under `base` (`ws://host:port`) that admits one connection."""
        ticket = secrets.token_hex(16)
        self.socket_tickets.add(ticket)
        return f"{base.rstrip('/')}{SOCKET_MODE_PATH}{ticket}"

    async def send_envelope(
        self, kind: str, payload: Obj, accepts_response_payload: bool, timeout_s: float
    ) -> Envelope:
        """Send to the first connected client and wait up to `timeout_s` for its ack."""
        client = next((c for c in self.socket_clients.values() if not c.ws.closed), None)
        if client is None:
            raise SocketModeUnavailable(
                "no Socket Mode client is connected: start the app with the xapp- token first"
            )
        envelope = Envelope(str(uuid.uuid4()), kind, payload, client.id, accepts_response_payload)
        self.envelopes[envelope.id] = envelope
        try:
            await client.ws.send_json(
                {
                    "envelope_id": envelope.id,
                    "type": kind,
                    "accepts_response_payload": accepts_response_payload,
                    "payload": payload,
                }
            )
        except ConnectionError:
            del self.envelopes[envelope.id]
            raise SocketModeUnavailable(
                f"Socket Mode client {client.id} left before the envelope could be sent"
            ) from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(envelope.answered.wait(), timeout_s)
        return envelope

    def receive_ack(self, client: SocketClient, text: str) -> None:
        """Record a client's answer; a slash command's ack payload is shown to the user, as
        Slack does with the body of an HTTP-mode answer."""
        received = time.monotonic()
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            message = None
        ack: Obj = {"connection": client.id, "time": time.time(), "ack_ms": None}
        if not isinstance(message, dict):
            self.socket_acks.append({**ack, "error": "not_a_json_object", "raw": text[:1000]})
            return
        envelope_id, payload = message.get("envelope_id"), message.get("payload")
        envelope = self.envelopes.get(envelope_id) if isinstance(envelope_id, str) else None
        ack.update(envelope_id=envelope_id, payload=payload)
        if envelope is None:
            ack["error"] = "unknown_envelope"
        elif envelope.ack_ms is not None:
            ack["error"] = "already_acked"
        else:
            envelope.ack_ms = ack["ack_ms"] = round((received - envelope.sent) * 1000, 1)
            envelope.ack_payload = payload if isinstance(payload, dict) else None
            if envelope.type == "slash_commands" and isinstance(payload, dict) and payload:
                shown = self._show_ack_payload(envelope, payload)
                if shown is not None:
                    ack["error"] = shown
            envelope.answered.set()
        self.socket_acks.append(ack)

    def _show_ack_payload(self, envelope: Envelope, payload: Obj) -> str | None:
        """Post what the ack carries where the user typed the command; the Slack error if not."""
        channel, user = envelope.payload.get("channel_id"), envelope.payload.get("user_id")
        if not isinstance(channel, str) or not isinstance(user, str):
            return "channel_not_found"
        try:
            respond(self, ResponseUrl("ack-" + envelope.id, channel, user, None), payload)
        except SlackError as exc:
            return exc.code
        return None

    def socket_closed(self, client: SocketClient) -> None:
        self.socket_clients.pop(client.id, None)
        for envelope in self.envelopes.values():
            if envelope.connection == client.id:
                envelope.answered.set()

    # --- what tests read ----------------------------------------------------------------
    def record(
        self, method: str, params: Obj, channel: str | None, status: int, response: Any
    ) -> Obj:
        call = {
            "seq": next(self._sequence),
            "time": time.time(),
            "method": method,
            "channel": channel,
            "params": params,
            "status": status,
            "response": response,
        }
        self.calls.append(call)
        return call

    def find_calls(
        self, method: str | None = None, channel: str | None = None, since: int = 0
    ) -> list[Obj]:
        return [
            c
            for c in self.calls
            if c["seq"] > since
            and (method is None or c["method"] == method)
            and (channel is None or c["channel"] == channel)
        ]

    def channel_messages(self, channel: str) -> list[Obj]:
        """Top-level messages in posting order, each with `replies` (its thread, in order)."""
        stored = self.channels.get(channel, {})
        top: list[Obj] = []
        replies: dict[str, list[Obj]] = {}
        for ts, message in stored.items():
            parent = message.get("thread_ts")
            if parent and parent != ts and parent in stored:
                replies.setdefault(parent, []).append(message)
            else:
                top.append(message)
        return [{**m, "replies": replies.get(m["ts"], [])} for m in top]

    def channel_ephemeral(self, channel: str) -> list[Obj]:
        return [e for e in self.ephemeral if e["channel"] == channel]

    # --- message store ------------------------------------------------------------------
    def post(
        self,
        channel: str,
        content: Obj,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
    ) -> Obj:
        ts = self.new_ts()
        message: Obj = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
            **content,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = self.bot_user_id
            if reply_broadcast:
                message["reply_broadcast"] = True
        self.channels.setdefault(channel, {})[ts] = message
        return message

    def message(self, channel: str, ts: str) -> Obj:
        message = self.channels.get(channel, {}).get(ts)
        if message is None:
            raise SlackError("message_not_found")
        return message

    def post_ephemeral(
        self, channel: str, user: str, content: Obj, thread_ts: str | None = None
    ) -> Obj:
        message: Obj = {"channel": channel, "user": user, "ts": self.new_ts(), **content}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.ephemeral.append(message)
        return message

    # --- validation shared by the methods -------------------------------------------------
    def check_channel(self, value: Any) -> str:
        """The channel a message goes to; a user ID means the app's DM with that user."""
        if not isinstance(value, str) or value in self.missing_channels:
            raise SlackError("channel_not_found")
        if USER_ID.match(value) and value not in self.missing_users:
            return "D" + value[1:]
        if not CHANNEL_ID.match(value):
            raise SlackError("channel_not_found")
        return value

    def check_user(self, value: Any) -> str:
        if not isinstance(value, str) or not USER_ID.match(value) or value in self.missing_users:
            raise SlackError("user_not_found")
        return value

    def user(self, user_id: str) -> Obj:
        if user_id == self.bot_user_id:
            return {
                "id": user_id,
                "team_id": self.team_id,
                "name": "winpod",
                "deleted": False,
                "real_name": "winpod",
                "is_bot": True,
                "is_app_user": False,
                "tz": "Etc/UTC",
                "profile": {
                    "display_name": "winpod",
                    "real_name": "winpod",
                    "bot_id": self.bot_id,
                    "api_app_id": self.app_id,
                    "team": self.team_id,
                },
            }
        slug = user_id.lower()
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": f"user.{slug}",
            "deleted": False,
            "real_name": f"Sim User {user_id}",
            "is_bot": False,
            "is_app_user": False,
            "is_admin": False,
            "tz": "Etc/UTC",
            "profile": {
                "display_name": f"user-{slug}",
                "real_name": f"Sim User {user_id}",
                "email": f"{slug}@winpod-sim.example",
                "team": self.team_id,
            },
        }

    def conversation(self, channel: str) -> Obj:
        info: Obj = {
            "id": channel,
            "created": 1_700_000_000,
            "is_archived": False,
            "is_member": True,
            "is_channel": channel.startswith("C"),
            "is_group": channel.startswith("G"),
            "is_im": channel.startswith("D"),
            "is_private": not channel.startswith("C"),
            "context_team_id": self.team_id,
        }
        if channel.startswith("D"):
            info["user"] = "U" + channel[1:]
        else:
            info["name"] = f"sim-{channel.lower()}"
            info["topic"] = {"value": "", "creator": "", "last_set": 0}
        return info


# --- request parsing ---------------------------------------------------------------------


def _form_value(key: str, value: str) -> Any:
    """Form bodies and query strings carry structured fields (blocks, view…) as JSON."""
    if key in JSON_FIELDS:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise SlackError("invalid_blocks" if key == "blocks" else "invalid_arguments") from None
    return value


async def read_params(request: web.Request) -> tuple[Obj, str | None]:
    """All of a call's parameters (query string and body) and the token it presented."""
    params: Obj = {key: _form_value(key, value) for key, value in request.query.items()}
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackError("json_not_object")
            params.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = _form_value(key, value) if isinstance(value, str) else "(file)"
        elif await request.read():
            raise SlackError("invalid_post_type")
    token = params.pop("token", None)
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return params, token if isinstance(token, str) and token else None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def _content(params: Obj, *, update: bool = False) -> Obj:
    """The text/blocks/attachments of a message, validated like Slack does."""
    content: Obj = {}
    for key in ("text", "blocks", "attachments", "metadata"):
        if key in params and params[key] is not None:
            content[key] = params[key]
    if not update and not any(content.get(k) for k in ("text", "blocks", "attachments")):
        raise SlackError("no_text")
    if update and not content:
        raise SlackError("no_text")
    text = content.get("text", "")
    if not isinstance(text, str):
        raise SlackError("invalid_arguments")
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    if "blocks" in content:
        blocks = content["blocks"]
        if (
            not isinstance(blocks, list)
            or len(blocks) > MAX_BLOCKS
            or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
        ):
            raise SlackError("invalid_blocks")
    if "attachments" in content and not isinstance(content["attachments"], list):
        raise SlackError("invalid_attachments")
    return content


# --- the methods -------------------------------------------------------------------------

Method = Callable[[SlackState, Obj], Obj]


def auth_test(state: SlackState, params: Obj) -> Obj:
    return {
        "url": f"https://{state.team}.slack.com/",
        "team": state.team,
        "user": "winpod",
        "team_id": state.team_id,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "is_enterprise_install": False,
    }


def chat_post_message(state: SlackState, params: Obj) -> Obj:
    channel = state.check_channel(params.get("channel"))
    content = _content(params)
    thread_ts = params.get("thread_ts") or None
    if thread_ts is not None and not isinstance(thread_ts, str):
        raise SlackError("invalid_arguments")
    message = state.post(channel, content, thread_ts, _flag(params.get("reply_broadcast")))
    return {"channel": channel, "ts": message["ts"], "message": message}


def chat_update(state: SlackState, params: Obj) -> Obj:
    channel = state.check_channel(params.get("channel"))
    ts = params.get("ts")
    if not isinstance(ts, str) or not ts:
        raise SlackError("message_not_found")
    message = state.message(channel, ts)
    content = _content(params, update=True)
    if content.get("blocks") == []:
        content.pop("blocks")
        message.pop("blocks", None)
    message.update(content)
    message["edited"] = {"user": state.bot_user_id, "ts": state.new_ts()}
    return {"channel": channel, "ts": ts, "text": message.get("text", ""), "message": message}


def chat_post_ephemeral(state: SlackState, params: Obj) -> Obj:
    channel = state.check_channel(params.get("channel"))
    try:
        user = state.check_user(params.get("user"))
    except SlackError:
        raise SlackError("user_not_in_channel") from None
    thread_ts = params.get("thread_ts") or None
    message = state.post_ephemeral(channel, user, _content(params), thread_ts)
    return {"message_ts": message["ts"]}


def users_info(state: SlackState, params: Obj) -> Obj:
    return {"user": state.user(state.check_user(params.get("user")))}


def usergroups_users_list(state: SlackState, params: Obj) -> Obj:
    group = params.get("usergroup")
    if not isinstance(group, str) or group not in state.usergroups:
        raise SlackError("no_such_subteam")
    return {"users": list(state.usergroups[group])}


def _stored_view(state: SlackState, view_id: str, kind: str, view: Obj, blocks: list[Obj]) -> Obj:
    """What Slack keeps (and returns) of any view it shows."""
    return {
        "id": view_id,
        "team_id": state.team_id,
        "type": kind,
        "blocks": blocks,
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": secrets.token_hex(8),
        "root_view_id": view_id,
        "app_id": state.app_id,
        "bot_id": state.bot_id,
    }


def views_open(state: SlackState, params: Obj) -> Obj:
    trigger_id = params.get("trigger_id")
    view = params.get("view")
    if not isinstance(trigger_id, str) or not trigger_id:
        raise SlackError("invalid_trigger_id")
    if not isinstance(view, dict) or view.get("type") != "modal":
        raise SlackError("invalid_arguments")
    if not isinstance(view.get("title"), dict):
        raise SlackError("invalid_arguments")
    blocks = view.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 100:
        raise SlackError("invalid_arguments")
    view_id = "V" + secrets.token_hex(5).upper()
    opened = {
        **_stored_view(state, view_id, "modal", view, blocks),
        "title": view["title"],
        "submit": view.get("submit"),
        "close": view.get("close"),
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "trigger_id": trigger_id,
    }
    state.views[view_id] = opened
    return {"view": opened}


def views_publish(state: SlackState, params: Obj) -> Obj:
    """A user's App Home: a `home` view of at most 100 blocks, replacing the one before."""
    user = state.check_user(params.get("user_id"))
    view = params.get("view")
    if not isinstance(view, dict) or view.get("type") != "home":
        raise SlackError("invalid_arguments")
    blocks = view.get("blocks", [])
    if (
        not isinstance(blocks, list)
        or len(blocks) > MAX_HOME_BLOCKS
        or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
    ):
        raise SlackError("invalid_blocks")
    previous = state.home_views.get(user)
    view_id = previous["id"] if previous else "V" + secrets.token_hex(5).upper()
    published = {**_stored_view(state, view_id, "home", view, blocks), "user": user}
    state.home_views[user] = published
    return {"view": published}


def files_get_upload_url_external(state: SlackState, params: Obj) -> Obj:
    """Step one of files.uploadV2: a file id and a URL on this server to send the bytes to."""
    filename = params.get("filename")
    try:
        length = int(params.get("length"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments") from None
    if not isinstance(filename, str) or not filename or length < 0:
        raise SlackError("invalid_arguments")
    file_id = "F" + secrets.token_hex(5).upper()
    state.files[file_id] = {
        "id": file_id,
        "name": filename,
        "length": length,
        "content": None,
        "title": None,
        "channel": None,
        "thread_ts": None,
        "completed": False,
    }
    base = params.get(ORIGIN_PARAM) or ""
    return {"file_id": file_id, "upload_url": f"{base}{UPLOAD_PATH}{file_id}"}


def files_complete_upload_external(state: SlackState, params: Obj) -> Obj:
    """Step three: share the uploaded files, in `channel_id` (and its thread `thread_ts`)."""
    try:
        given = json.loads(params.get("files") or "")
    except (TypeError, json.JSONDecodeError):
        raise SlackError("invalid_arguments") from None
    if not isinstance(given, list) or not given:
        raise SlackError("invalid_arguments")
    files = []
    for item in given:
        upload = state.files.get(str(item.get("id"))) if isinstance(item, dict) else None
        if upload is None or upload["content"] is None:
            raise SlackError("file_not_found")  # never sent to its upload URL
        upload["title"] = item.get("title") or upload["name"]
        files.append(upload)
    channel = params.get("channel_id")
    thread_ts = params.get("thread_ts") or None
    shared = [{"id": f["id"], "name": f["name"], "title": f["title"]} for f in files]
    if channel is not None:
        channel = state.check_channel(channel)
        if thread_ts is not None and thread_ts not in state.channels.get(channel, {}):
            raise SlackError("invalid_thread_ts")
        comment = params.get("initial_comment") or ""
        state.post(channel, {"text": str(comment), "files": shared, "upload": True}, thread_ts)
    for upload in files:
        upload.update(channel=channel, thread_ts=thread_ts, completed=True)
    return {"files": shared}


def conversations_info(state: SlackState, params: Obj) -> Obj:
    return {"channel": state.conversation(state.check_channel(params.get("channel")))}


def conversations_history(state: SlackState, params: Obj) -> Obj:
    """Top-level messages, newest first; `latest` + `inclusive` + `limit=1` fetches one message
    by its ts, as Slack documents for retrieving a single message."""
    channel = state.check_channel(params.get("channel"))
    latest, oldest = params.get("latest"), params.get("oldest")
    inclusive = _flag(params.get("inclusive"))
    try:
        limit = max(1, min(int(params.get("limit") or 100), 999))
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None

    def within(ts: str) -> bool:
        if isinstance(latest, str) and latest and (ts > latest or (ts == latest and not inclusive)):
            return False
        return not (
            isinstance(oldest, str) and oldest and (ts < oldest or (ts == oldest and not inclusive))
        )

    stored = state.channels.get(channel, {})
    top = [
        m
        for ts, m in stored.items()
        if not (m.get("thread_ts") and m["thread_ts"] != ts) and within(ts)
    ]
    top.sort(key=lambda m: float(m["ts"]), reverse=True)
    return {"messages": top[:limit], "has_more": len(top) > limit}


def conversations_replies(state: SlackState, params: Obj) -> Obj:
    """A thread: its parent message first, then the replies in order."""
    channel = state.check_channel(params.get("channel"))
    parent = params.get("ts")
    if not isinstance(parent, str) or not parent:
        raise SlackError("thread_not_found")
    stored = state.channels.get(channel, {})
    if parent not in stored:
        raise SlackError("thread_not_found")
    replies = [m for ts, m in stored.items() if m.get("thread_ts") == parent and ts != parent]
    replies.sort(key=lambda m: float(m["ts"]))
    return {"messages": [stored[parent], *replies], "has_more": False}


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "users.info": users_info,
    "usergroups.users.list": usergroups_users_list,
    "views.open": views_open,
    "views.publish": views_publish,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
}


# --- response URLs -------------------------------------------------------------------------


def respond(state: SlackState, target: ResponseUrl, payload: Obj) -> None:
    """What Slack does with a JSON body posted to a response URL."""
    original = target.message_ts or target.last_ts
    if _flag(payload.get("delete_original")):
        if original is not None:
            state.channels.get(target.channel, {}).pop(original, None)
            state.ephemeral = [e for e in state.ephemeral if e["ts"] != original]
        return
    content = _content(payload)
    if _flag(payload.get("replace_original")) and original is not None:
        stored = state.channels.get(target.channel, {}).get(original)
        ephemeral = next((e for e in state.ephemeral if e["ts"] == original), None)
        replaced = stored if stored is not None else ephemeral
        if replaced is not None:
            for key in ("text", "blocks", "attachments", "metadata"):
                replaced.pop(key, None)
            replaced.update(content)
            return
    thread_ts = payload.get("thread_ts") or None
    if payload.get("response_type") == "in_channel":
        target.last_ts = state.post(target.channel, content, thread_ts)["ts"]
    else:
        target.last_ts = state.post_ephemeral(target.channel, target.user, content, thread_ts)["ts"]


# --- the server ----------------------------------------------------------------------------


def _ok(body: Obj) -> web.Response:
    return web.json_response({"ok": True, **body})


def _error(code: str, status: int = 200) -> web.Response:
    return web.json_response({"ok": False, "error": code}, status=status)


def build_app(state: SlackState, faults: Faults, credentials: Credentials) -> web.Application:
    """The Web API under `/api/<method>` and response URLs under `/response/<id>`."""

    async def api_method(request: web.Request) -> web.StreamResponse:
        params, token = request["params"], request["token"]
        if request["bad_request"] is not None:
            return _error(request["bad_request"])
        if token is None:
            return _error("not_authed")
        is_bot_token = secrets.compare_digest(token, credentials.slack_bot_token)
        is_app_token = secrets.compare_digest(token, credentials.slack_app_token)
        if request.match_info["method"] == "apps.connections.open":
            if is_bot_token:
                return _error("not_allowed_token_type")
            if not is_app_token:
                return _error("invalid_auth")
            # The client reached us at this origin, so the WebSocket is there as well.
            base = str(request.url.origin().with_scheme("ws"))
            return _ok({"url": state.new_socket_url(base)})
        if is_app_token:
            return _error("not_allowed_token_type")
        if not is_bot_token:
            return _error("invalid_auth")
        method = METHODS.get(request.match_info["method"])
        if method is None:
            return _error("unknown_method")
        if method is files_get_upload_url_external:
            # the upload URL is on this server, at the origin the client reached
            params = {**params, ORIGIN_PARAM: str(request.url.origin())}
        try:
            return _ok(method(state, params))
        except SlackError as exc:
            return _error(exc.code)

    async def response_url(request: web.Request) -> web.StreamResponse:
        target = state.response_urls.get(request.match_info["id"])
        if target is None:
            return _error("no_active_hooks", 404)
        if time.monotonic() - target.created > RESPONSE_URL_TTL_S:
            return _error("expired_url", 404)
        if target.uses >= RESPONSE_URL_USES:
            return _error("used_url", 404)
        target.uses += 1
        if request["bad_request"] is not None:
            return _error(request["bad_request"], 400)
        try:
            respond(state, target, request["params"])
        except SlackError as exc:
            return _error(exc.code, 400)
        return _ok({})

    async def upload(request: web.Request) -> web.StreamResponse:
        """Step two of files.uploadV2: the file's bytes, as slack_sdk posts them (raw body)."""
        upload = state.files.get(request.match_info["id"])
        data = await request.read()
        status = 200
        if state.refuse_uploads:
            status = 500
        elif upload is None or upload["content"] is not None:
            status = 404
        elif len(data) != upload["length"]:
            status = 400  # Slack refuses a body of another size than announced
        else:
            upload["content"] = data.decode("utf-8", "replace")
        state.record("file_upload", {"file_id": request.match_info["id"]}, None, status, None)
        if status != 200:
            return web.Response(status=status, text="upload refused")
        return web.Response(text=f"OK - {len(data)}")

    async def socket_mode(request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["id"]
        if ticket not in state.socket_tickets:
            return _error("invalid_socket_ticket", 404)  # made up, or used once already
        state.socket_tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=False)  # pings and pongs are counted below
        await ws.prepare(request)
        client = SocketClient(ticket, ws)
        state.socket_clients[ticket] = client
        pinger = asyncio.create_task(_keep_pinging(client))
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(state.socket_clients),
                    "debug_info": {
                        "host": "applink-winpod-sim",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": state.app_id},
                }
            )
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    state.receive_ack(client, message.data)
                elif message.type is WSMsgType.PING:
                    client.pings_received += 1
                    await ws.pong(message.data)  # the client matches the echo to its ping
                elif message.type is WSMsgType.PONG:
                    client.pongs_received += 1
        except ConnectionError:
            pass  # the client vanished mid-send: the cleanup below is all there is to do
        finally:
            pinger.cancel()
            state.socket_closed(client)
        return ws

    async def close_sockets(app: web.Application) -> None:
        """On shutdown, say goodbye like a server restart does, so no handler is left hanging."""
        await asyncio.gather(
            *(
                c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                for c in list(state.socket_clients.values())
            )
        )

    @web.middleware
    async def record_calls(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Outermost, so that calls refused by a fault knob are recorded too."""
        if request.path.startswith((SOCKET_MODE_PATH, UPLOAD_PATH)):
            return await handler(request)  # a WebSocket or raw bytes, not a Web API call
        if request.path.startswith("/response/"):
            method = "response_url"
            target = state.response_urls.get(request.path.rsplit("/", 1)[-1])
            channel = target.channel if target else None
        else:
            method = request.path.removeprefix("/api/")
            channel = None
        request["params"], request["token"], request["bad_request"] = {}, None, None
        try:
            request["params"], request["token"] = await read_params(request)
        except SlackError as exc:
            request["bad_request"] = exc.code
        if method != "response_url" and isinstance(request["params"].get("channel"), str):
            channel = request["params"]["channel"]
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            state.record(method, request["params"], channel, exc.status, None)
            raise
        body: Any = None
        if isinstance(response, web.Response) and response.body is not None:
            raw = response.body
            try:
                body = json.loads(raw if isinstance(raw, bytes) else str(raw))
            except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
                body = None
        state.record(method, request["params"], channel, response.status, body)
        return response

    app = web.Application(middlewares=[record_calls, faults.middleware("slack")])
    app.router.add_route("*", "/api/{method}", api_method)
    app.router.add_post("/response/{id}", response_url)
    app.router.add_get(SOCKET_MODE_PATH + "{id}", socket_mode)
    app.router.add_post(UPLOAD_PATH + "{id}", upload)
    app.on_shutdown.append(close_sockets)
    return app


async def _keep_pinging(client: SocketClient) -> None:
    """Ping like Slack does; the first right away, so a client's pong shows up at once."""
    with contextlib.suppress(ConnectionError):
        while not client.ws.closed:
            client.pings_sent += 1
            await client.ws.ping(f"ping-{client.pings_sent}".encode())
            await asyncio.sleep(SOCKET_PING_INTERVAL_S)
