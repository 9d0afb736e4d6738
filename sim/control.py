"""The simulator's control API: JSON over HTTP for tests, benchmarks and demos to read and
change what the clients cannot (host state, recorded Slack calls, fault knobs, counters)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from sim.faults import MODES, REQUEST_LOG_LIMIT, SERVERS, Knobs
from sim.scenario import SERVICE_STATES
from sim.slack_api import (
    CHANNEL_ID,
    ENVELOPE_TYPES,
    USER_ID,
    USERGROUP_ID,
    SlackState,
    SocketModeUnavailable,
)
from sim.world import RESOURCES, ApiError, Obj, WindowsHost

if TYPE_CHECKING:
    from sim.server import Simulator

PREFIX = "/sim/v1"
DNS_STATES = ("ok", "stale-policies")
HOST_FIELDS = ("dns", "services", "sandboxImage", "vm", "winrm")
DEFAULT_CHANNEL = "C0WINPOD"
DEFAULT_USER = "U0OPERATOR"
DEFAULT_COMMAND = "/winpod"
VERIFICATION_TOKEN = "sim-verification-token"  # the legacy token Slack still puts in payloads
DEFAULT_ACK_TIMEOUT_S = 5.0
MAX_ACK_TIMEOUT_S = 60.0
# Interactions whose ack may carry an answer (response_action, options); the rest ack empty.
ANSWERABLE_INTERACTIONS = ("view_submission", "block_suggestion")


class BadRequest(Exception):
    """The request cannot be served as sent: 400 with this message."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers `{"error": …}` so scripts never have to parse HTML."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except ApiError as exc:
        return web.json_response({"error": exc.message}, status=exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": f"{request.method} {request.path}: {exc.reason}"}, status=exc.status
        )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise BadRequest("a JSON body is required")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


async def _object_body(request: web.Request) -> Obj:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false, not {value!r}")
    return value


def _string_list(field: str, value: Any, pattern: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{field} must be a list of strings")
    bad = [v for v in value if not pattern.match(v)]
    if bad:
        raise BadRequest(f"{field}: {', '.join(bad)} do not look like Slack IDs")
    return list(value)


def patch_host(host: WindowsHost, patch: Obj) -> None:
    """Apply a partial update after validating all of it, like the scenario loader does."""
    unknown = sorted(set(patch) - set(HOST_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; one of {', '.join(HOST_FIELDS)}")
    dns = patch.get("dns", host.dns)
    if dns not in DNS_STATES:
        raise BadRequest(f"dns must be one of {', '.join(DNS_STATES)}, not {dns!r}")
    services = patch.get("services", {})
    if not isinstance(services, dict):
        raise BadRequest("services must map a service name to its state")
    for name, state in services.items():
        if state not in SERVICE_STATES:
            raise BadRequest(
                f"services.{name}: {state!r} is not one of {', '.join(sorted(SERVICE_STATES))}"
            )
    image = patch.get("sandboxImage", host.sandbox_image)
    if not isinstance(image, str):
        raise BadRequest("sandboxImage must be a string")
    vm = patch.get("vm", {})
    if not isinstance(vm, dict) or set(vm) - {"macAddressSpoofing"}:
        raise BadRequest("vm may only set macAddressSpoofing")
    if vm and host.vm is None:
        raise BadRequest(f"host {host.name} is not a Hyper-V VM (it has no vm)")
    spoofing = _bool("vm.macAddressSpoofing", vm["macAddressSpoofing"]) if vm else None
    winrm = _bool("winrm", patch["winrm"]) if "winrm" in patch else host.winrm_enabled

    if dns != host.dns and host.role == "node":
        # Keep the HNS picture consistent with the DNS state, as the loader and reboot do:
        # stale lists are still there, referencing endpoints that are gone.
        host.policy_lists = max(host.policy_lists, 3)
        if dns == "stale-policies":
            host.hns_generation += 1
    host.dns = dns
    host.services.update(services)
    host.sandbox_image = image
    if spoofing is not None and host.vm is not None:
        host.vm.mac_address_spoofing = spoofing
    host.winrm_enabled = winrm


def _non_negative(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise BadRequest(f"{name} must be a number ≥ 0, not {value!r}")
    return float(value)


def _fault_values(server: str, body: Obj) -> Obj:
    """Check every knob first: `Faults.set` would apply the good ones before a bad one."""
    if server not in SERVERS:
        raise BadRequest(f"unknown server {server!r}; one of {', '.join(SERVERS)}")
    known = Knobs().as_dict()
    for key, value in body.items():
        if key not in known:
            raise BadRequest(f"unknown knob {key!r}; one of {', '.join(known)}")
        if key == "mode":
            if value not in MODES:
                raise BadRequest(f"unknown mode {value!r}; one of {', '.join(MODES)}")
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise BadRequest(f"{key} must be a number ≥ 0, not {value!r}")
    return body


def _slack_id(field: str, value: Any, pattern: Any) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise BadRequest(f"{field} {value!r} does not look like a Slack ID")
    return value


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def _merged(defaults: Obj, given: Obj) -> Obj:
    """`given` wins, one level deep, so `{"user": {"id": …}}` keeps the user's other fields."""
    merged = dict(defaults)
    for key, value in given.items():
        current = merged.get(key)
        merged[key] = (
            {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
        )
    return merged


def _channel_name(slack: SlackState, channel: str) -> str:
    name: str = slack.conversation(channel).get("name", "directmessage")
    return name


def slash_command_payload(slack: SlackState, base: str, given: Obj) -> Obj:
    """Every field Slack sends with a slash command, `given` ones overriding (`channel_id` and
    `user_id` say where and by whom it was typed; the response URL answers there)."""
    channel = _slack_id("channel_id", given.get("channel_id", DEFAULT_CHANNEL), CHANNEL_ID)
    user = _slack_id("user_id", given.get("user_id", DEFAULT_USER), USER_ID)
    defaults = {
        "token": VERIFICATION_TOKEN,
        "team_id": slack.team_id,
        "team_domain": slack.team,
        "channel_id": channel,
        "channel_name": _channel_name(slack, channel),
        "user_id": user,
        "user_name": slack.user(user)["name"],
        "command": DEFAULT_COMMAND,
        "text": "",
        "api_app_id": slack.app_id,
        "is_enterprise_install": "false",
        "trigger_id": _trigger_id(),
    }
    if "response_url" not in given:
        defaults["response_url"] = slack.new_response_url(base, channel, user)
    return _merged(defaults, given)


def interactive_payload(slack: SlackState, base: str, given: Obj) -> Obj:
    """The common fields of an interaction payload (`block_actions` unless `type` says
    otherwise), `given` ones overriding; a button click also gets its channel, container,
    response URL and, when `container.message_ts` names a stored message, that message."""
    kind = given.get("type", "block_actions")
    if not isinstance(kind, str):
        raise BadRequest(f"payload.type must be a string like block_actions, not {kind!r}")
    user_given, channel_given, container = (
        given.get(key) or {} for key in ("user", "channel", "container")
    )
    if not all(isinstance(v, dict) for v in (user_given, channel_given, container)):
        raise BadRequest("payload.user, payload.channel and payload.container must be objects")
    user = _slack_id("user.id", user_given.get("id", DEFAULT_USER), USER_ID)
    name = slack.user(user)["name"]
    defaults: Obj = {
        "type": kind,
        "user": {"id": user, "username": name, "name": name, "team_id": slack.team_id},
        "api_app_id": slack.app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "team": {"id": slack.team_id, "domain": slack.team},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if kind == "block_actions":
        channel_id = channel_given.get("id", container.get("channel_id", DEFAULT_CHANNEL))
        channel = _slack_id("channel.id", channel_id, CHANNEL_ID)
        message_ts = container.get("message_ts")
        if message_ts is not None and not isinstance(message_ts, str):
            raise BadRequest("container.message_ts must be a string like 1732770000.000100")
        defaults["container"] = {"type": "message", "channel_id": channel, "is_ephemeral": False}
        defaults["channel"] = {"id": channel, "name": _channel_name(slack, channel)}
        defaults["state"] = {"values": {}}
        defaults["actions"] = []
        defaults["response_url"] = slack.new_response_url(base, channel, user, message_ts)
        if message_ts is not None:
            defaults["container"]["message_ts"] = message_ts
            stored = slack.channels.get(channel, {}).get(message_ts)
            if stored is not None:
                defaults["message"] = dict(stored)
    return _merged(defaults, given)


def app_home_opened_callback(slack: SlackState, user: str, tab: str = "home") -> Obj:
    """The Events API callback Slack sends when `user` opens the app's Home (or Messages) tab."""
    now = time.time()
    published = slack.home_views.get(user)
    event: Obj = {
        "type": "app_home_opened",
        "user": user,
        "channel": "D" + user[1:],
        "tab": tab,
        "event_ts": f"{now:.6f}",
    }
    if published is not None:
        event["view"] = published
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": slack.team_id,
        "api_app_id": slack.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": slack.team_id,
                "user_id": slack.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


async def post_signed(url: str, secret: str, body: Obj) -> Obj:
    """POST `body` as JSON to an app's request URL, signed as Slack signs (v0 HMAC-SHA256)."""
    raw = json.dumps(body)
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{raw}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=DEFAULT_ACK_TIMEOUT_S)) as session,
            session.post(url, data=raw, headers=headers) as response,
        ):
            return {"status": response.status, "body": await response.text()}
    except (ClientError, TimeoutError) as exc:
        raise BadRequest(f"cannot deliver to {url}: {type(exc).__name__} {exc}") from None


def build_app(simulator: Simulator) -> web.Application:
    """Routes under /sim/v1 on the control port (plain HTTP, loopback only)."""
    world, slack, faults = simulator.world, simulator.slack, simulator.faults
    routes = web.RouteTableDef()

    def host_named(request: web.Request) -> WindowsHost:
        name = request.match_info["name"]
        host = world.hosts.get(name)
        if host is None:
            raise ApiError(404, "NotFound", f"host {name!r} not found")
        return host

    @routes.get(PREFIX + "/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # --- Windows hosts -------------------------------------------------------------------
    @routes.get(PREFIX + "/hosts")
    async def list_hosts(request: web.Request) -> web.Response:
        return web.json_response({"hosts": [h.snapshot() for h in world.hosts.values()]})

    @routes.get(PREFIX + "/hosts/{name}")
    async def get_host(request: web.Request) -> web.Response:
        return web.json_response(host_named(request).snapshot())

    @routes.patch(PREFIX + "/hosts/{name}")
    async def change_host(request: web.Request) -> web.Response:
        host = host_named(request)
        patch_host(host, await _object_body(request))
        return web.json_response(host.snapshot())

    @routes.post(PREFIX + "/hosts/{name}/reboot")
    async def reboot(request: web.Request) -> web.Response:
        return web.json_response(world.reboot(request.match_info["name"]))

    # --- Slack ---------------------------------------------------------------------------
    @routes.get(PREFIX + "/slack/calls")
    async def slack_calls(request: web.Request) -> web.Response:
        since = request.query.get("since", "0")
        if not since.isdigit():
            raise BadRequest(f"since must be a call's seq number, not {since!r}")
        calls = slack.find_calls(
            request.query.get("method"), request.query.get("channel"), int(since)
        )
        return web.json_response({"calls": calls})

    @routes.get(PREFIX + "/slack/messages")
    async def slack_messages(request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        if not channel:
            raise BadRequest("the channel query parameter is required")
        return web.json_response(
            {
                "channel": channel,
                "messages": slack.channel_messages(channel),
                "ephemeral": slack.channel_ephemeral(channel),
            }
        )

    @routes.post(PREFIX + "/slack/usergroups")
    async def slack_usergroups(request: web.Request) -> web.Response:
        body = await _object_body(request)
        groups = {}
        for group, users in body.items():
            if not USERGROUP_ID.match(group):
                raise BadRequest(f"{group!r} does not look like a user group ID (S…)")
            groups[group] = _string_list(group, users, USER_ID)
        slack.usergroups.update(groups)
        return web.json_response({"usergroups": slack.usergroups})

    @routes.post(PREFIX + "/slack/missing")
    async def slack_missing(request: web.Request) -> web.Response:
        body = await _object_body(request)
        unknown = sorted(set(body) - {"channels", "users"})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; one of channels, users")
        if "channels" in body:
            slack.missing_channels = set(_string_list("channels", body["channels"], CHANNEL_ID))
        if "users" in body:
            slack.missing_users = set(_string_list("users", body["users"], USER_ID))
        return web.json_response(
            {"channels": sorted(slack.missing_channels), "users": sorted(slack.missing_users)}
        )

    @routes.post(PREFIX + "/slack/response_url")
    async def slack_response_url(request: web.Request) -> web.Response:
        body = await _object_body(request) if request.can_read_body else {}
        channel = body.get("channel", DEFAULT_CHANNEL)
        user = body.get("user", DEFAULT_USER)
        message_ts = body.get("message_ts")
        if not isinstance(channel, str) or not CHANNEL_ID.match(channel):
            raise BadRequest(f"channel {channel!r} does not look like a Slack channel ID")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise BadRequest(f"user {user!r} does not look like a Slack user ID")
        if message_ts is not None and not isinstance(message_ts, str):
            raise BadRequest("message_ts must be a string like 1732770000.000100")
        base = f"http://127.0.0.1:{simulator.ports.slack}"
        url = slack.new_response_url(base, channel, user, message_ts)
        return web.json_response({"response_url": url, "channel": channel, "user": user})

    @routes.get(PREFIX + "/slack/files")
    async def slack_files(request: web.Request) -> web.Response:
        return web.json_response({"files": list(slack.files.values())})

    @routes.post(PREFIX + "/slack/uploads")
    async def slack_uploads(request: web.Request) -> web.Response:
        body = await _object_body(request)
        if set(body) != {"refuse"}:
            raise BadRequest('the body must be {"refuse": true|false}')
        slack.refuse_uploads = _bool("refuse", body["refuse"])
        return web.json_response({"refuse": slack.refuse_uploads})

    @routes.get(PREFIX + "/slack/home")
    async def slack_home(request: web.Request) -> web.Response:
        user = _slack_id("user", request.query.get("user"), USER_ID)
        return web.json_response({"user": user, "view": slack.home_views.get(user)})

    @routes.post(PREFIX + "/slack/events/app_home_opened")
    async def slack_app_home_opened(request: web.Request) -> web.Response:
        body = await _object_body(request) if request.can_read_body else {}
        unknown = sorted(set(body) - {"user", "url", "tab"})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; one of user, url, tab")
        user = _slack_id("user", body.get("user", DEFAULT_USER), USER_ID)
        tab = body.get("tab", "home")
        if tab not in ("home", "messages"):
            raise BadRequest(f"tab must be home or messages, not {tab!r}")
        callback = app_home_opened_callback(slack, user, tab)
        url = body.get("url")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise BadRequest(f"url must be the app's http(s) request URL, not {url!r}")
            secret = simulator.credentials.slack_signing_secret
            return web.json_response(await post_signed(url, secret, callback))
        try:
            envelope = await slack.send_envelope(
                "events_api", callback, False, DEFAULT_ACK_TIMEOUT_S
            )
        except SocketModeUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(envelope.result())

    # --- Socket Mode ---------------------------------------------------------------------
    @routes.get(PREFIX + "/slack/socket_mode")
    async def socket_mode(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "connected": len(slack.socket_clients),
                "clients": [c.snapshot() for c in slack.socket_clients.values()],
                "envelopes": [e.result() for e in slack.envelopes.values()],
                "acks": slack.socket_acks,
            }
        )

    @routes.post(PREFIX + "/slack/socket_mode/envelopes")
    async def socket_mode_envelope(request: web.Request) -> web.Response:
        body = await _object_body(request)
        unknown = sorted(set(body) - {"type", "payload", "timeout_s"})
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}; one of type, payload, timeout_s"
            )
        kind = body.get("type")
        if kind not in ENVELOPE_TYPES:
            raise BadRequest(f"type must be one of {', '.join(ENVELOPE_TYPES)}, not {kind!r}")
        given = body.get("payload", {})
        if not isinstance(given, dict):
            raise BadRequest("payload must be a JSON object")
        timeout_s = body.get("timeout_s", DEFAULT_ACK_TIMEOUT_S)
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s <= MAX_ACK_TIMEOUT_S
        ):
            raise BadRequest(f"timeout_s must be a number in (0, {MAX_ACK_TIMEOUT_S:g}]")
        base = f"http://127.0.0.1:{simulator.ports.slack}"
        if kind == "slash_commands":
            payload, answerable = slash_command_payload(slack, base, given), True
        else:
            payload = interactive_payload(slack, base, given)
            answerable = payload["type"] in ANSWERABLE_INTERACTIONS
        try:
            envelope = await slack.send_envelope(kind, payload, answerable, float(timeout_s))
        except SocketModeUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(envelope.result())

    # --- the load-balancer controller ------------------------------------------------------
    def lb_state() -> Obj:
        return {"delay_ms": world.lb_delay_ms, "enabled": world.lb_enabled}

    @routes.get(PREFIX + "/lb")
    async def get_lb(request: web.Request) -> web.Response:
        return web.json_response(lb_state())

    @routes.post(PREFIX + "/lb")
    async def set_lb(request: web.Request) -> web.Response:
        body = await _object_body(request)
        unknown = sorted(set(body) - {"delay_ms", "enabled"})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; one of delay_ms, enabled")
        delay = _non_negative("delay_ms", body.get("delay_ms", world.lb_delay_ms))
        enabled = _bool("enabled", body["enabled"]) if "enabled" in body else world.lb_enabled
        world.lb_delay_ms, world.lb_enabled = delay, enabled
        return web.json_response(lb_state())

    # --- HostProcess pods: start latency and how long a restarted kubelet is away ----------
    def hostprocess_state() -> Obj:
        return {
            "start_delay_s": world.hostprocess_start_delay_s,
            "kubelet_restart_s": world.kubelet_restart_s,
        }

    @routes.get(PREFIX + "/hostprocess")
    async def get_hostprocess(request: web.Request) -> web.Response:
        return web.json_response(hostprocess_state())

    @routes.post(PREFIX + "/hostprocess")
    async def set_hostprocess(request: web.Request) -> web.Response:
        body = await _object_body(request)
        unknown = sorted(set(body) - set(hostprocess_state()))
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}; one of start_delay_s, kubelet_restart_s"
            )
        state = {
            key: _non_negative(key, body.get(key, now)) for key, now in hostprocess_state().items()
        }
        world.hostprocess_start_delay_s = state["start_delay_s"]
        world.kubelet_restart_s = state["kubelet_restart_s"]
        return web.json_response(hostprocess_state())

    # --- which API group versions the API server serves ------------------------------------
    @routes.get(PREFIX + "/apis")
    async def get_apis(request: web.Request) -> web.Response:
        return web.json_response({"unserved": sorted(world.unserved)})

    @routes.post(PREFIX + "/apis")
    async def set_apis(request: web.Request) -> web.Response:
        body = await _object_body(request)
        unknown = sorted(set(body) - {"unserved"})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; only unserved")
        unserved = body.get("unserved", [])
        known = {f"{r.group}/{r.version}" for r in RESOURCES if r.group}
        if not isinstance(unserved, list) or not set(unserved) <= known:
            raise BadRequest(f"unserved must be a list of group versions from: {sorted(known)}")
        world.unserved = set(unserved)
        return web.json_response({"unserved": sorted(world.unserved)})

    # --- faults and counters ---------------------------------------------------------------
    @routes.get(PREFIX + "/faults")
    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response({name: k.as_dict() for name, k in faults.knobs.items()})

    @routes.post(PREFIX + "/faults/{server}")
    async def set_faults(request: web.Request) -> web.Response:
        server = request.match_info["server"]
        body = _fault_values(server, await _object_body(request))
        try:
            knobs = faults.set(server, **body)
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None
        return web.json_response({"server": server, **knobs.as_dict()})

    @routes.get(PREFIX + "/stats")
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(faults.stats())

    @routes.post(PREFIX + "/stats/reset")
    async def reset_stats(request: web.Request) -> web.Response:
        faults.reset_stats()
        return web.json_response(faults.stats())

    # --- watches ------------------------------------------------------------------------------
    @routes.post(PREFIX + "/kube/compact")
    async def compact(request: web.Request) -> web.Response:
        """etcd compaction: watches and continue tokens from before now get 410 Gone."""
        return web.json_response({"compactedResourceVersion": str(world.compact())})

    @routes.post(PREFIX + "/kube/watches/close")
    async def close_watches(request: web.Request) -> web.Response:
        """Ends every open watch, as an API server restart or an idle proxy does."""
        closed = len(world.watchers)
        for watcher in list(world.watchers):
            watcher(None)
        return web.json_response({"closed": closed})

    @routes.get(PREFIX + "/requests")
    async def recorded_requests(request: web.Request) -> web.Response:
        server = request.query.get("server")
        if server is not None and server not in SERVERS:
            raise BadRequest(f"unknown server {server!r}; one of {', '.join(SERVERS)}")
        since = request.query.get("since", "0")
        if not since.isdigit():
            raise BadRequest(f"since must be a request's seq number, not {since!r}")
        found = faults.recorded_requests(server, int(since))
        return web.json_response(
            {
                "requests": [r.as_dict() for r in found],
                # the bounded log dropped some requests newer than `since`: the list is partial
                "truncated": faults.dropped_through > int(since),
                "limit": REQUEST_LOG_LIMIT,
            }
        )

    @routes.post(PREFIX + "/requests/reset")
    async def reset_requests(request: web.Request) -> web.Response:
        faults.reset_log()
        return web.json_response({"requests": [], "since": faults.recorded})

    app = web.Application(middlewares=[json_errors])
    app.add_routes(routes)
    return app
