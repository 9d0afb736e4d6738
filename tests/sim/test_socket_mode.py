"""Slack Socket Mode through Bolt's `SocketModeHandler` (slack_sdk's built-in WebSocket client)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import yaml
from sim_process import RunningSim
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

pytestmark = pytest.mark.wire

ENVELOPES = "/sim/v1/slack/socket_mode/envelopes"
Obj = dict[str, Any]


@dataclass
class Seen:
    """What the Bolt app's listeners received, and every frame the client read."""

    commands: list[Obj] = field(default_factory=list)
    actions: list[Obj] = field(default_factory=list)
    frames: list[Obj] = field(default_factory=list)


def slack_config(sim: RunningSim) -> Obj:
    config: Obj = yaml.safe_load(sim.config.read_text())["slack"]
    return config


def bolt_app(sim: RunningSim, seen: Seen) -> App:
    config = slack_config(sim)
    app = App(
        client=WebClient(token=config["bot_token"], base_url=sim.urls["slack_api"]),
        signing_secret=config["signing_secret"],
        token_verification_enabled=False,
    )

    @app.command("/winpod")
    def winpod(ack: Ack, command: Obj) -> None:
        seen.commands.append(command)
        ack(f"winpod: running `{command['text']}`")

    @app.action("approve")
    def approve(ack: Ack, body: Obj, respond: Respond) -> None:
        ack()
        seen.actions.append(body)
        respond(f"approved by <@{body['user']['id']}>")

    return app


def wait_until(condition: Callable[[], Any], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def socket_mode(sim: RunningSim) -> Obj:
    status: Obj = sim.control("GET", "/sim/v1/slack/socket_mode")
    return status


def socket_url_base(sim: RunningSim) -> str:
    api: str = sim.urls["slack_api"]
    return api.replace("http://", "ws://").replace("/api/", "/socket-mode/")


def ephemeral(sim: RunningSim, channel: str) -> list[Obj]:
    found: list[Obj] = sim.control("GET", f"/sim/v1/slack/messages?channel={channel}")["ephemeral"]
    return found


def refused(sim: RunningSim, body: Obj) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as error:
        sim.control("POST", ENVELOPES, body)
    with error.value as response:
        return response.code, json.loads(response.read())["error"]


@dataclass
class Connected:
    handler: SocketModeHandler
    seen: Seen


@pytest.fixture(scope="module")
def connected(seed_sim: RunningSim) -> Iterator[Connected]:
    """One handler for the module: closing the built-in client takes its 3 s receive timeout."""
    seen = Seen()
    handler = SocketModeHandler(bolt_app(seed_sim, seen), seed_sim.urls["slack_app_token"])
    handler.client.on_message_listeners.append(lambda raw: seen.frames.append(json.loads(raw)))
    handler.connect()
    yield Connected(handler, seen)
    handler.close()
    wait_until(lambda: socket_mode(seed_sim)["connected"] == 0)


def test_the_client_is_greeted_with_hello_and_counted(
    seed_sim: RunningSim, connected: Connected
) -> None:
    wait_until(lambda: connected.seen.frames)
    hello = connected.seen.frames[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"]["app_id"].startswith("A")
    assert connected.handler.client.is_connected()
    [client] = socket_mode(seed_sim)["clients"]
    assert connected.handler.client.wss_uri == f"{socket_url_base(seed_sim)}{client['id']}"


def test_a_slash_command_is_acked_with_the_listeners_text(
    seed_sim: RunningSim, connected: Connected
) -> None:
    result = seed_sim.control(
        "POST",
        ENVELOPES,
        {
            "type": "slash_commands",
            "payload": {"text": "status akswin000001", "channel_id": "C0SOCK"},
        },
    )
    assert result["acked"] and result["in_time"]
    assert result["ack_payload"] == {"text": "winpod: running `status akswin000001`"}

    [command] = [
        c for c in connected.seen.commands if c["trigger_id"] == result["payload"]["trigger_id"]
    ]
    assert command["command"] == "/winpod"
    assert command["channel_id"] == "C0SOCK"
    assert command["user_id"] == "U0OPERATOR"
    assert command["api_app_id"] == connected.seen.frames[0]["connection_info"]["app_id"]
    assert command["response_url"] == result["payload"]["response_url"]

    # Slack shows the ack's text to whoever typed the command, only to them.
    [shown] = ephemeral(seed_sim, "C0SOCK")
    assert shown["text"] == "winpod: running `status akswin000001`"
    assert shown["user"] == "U0OPERATOR"
    [ack] = [a for a in socket_mode(seed_sim)["acks"] if a["envelope_id"] == result["envelope_id"]]
    assert ack["ack_ms"] == result["ack_ms"] and ack["ack_ms"] < 3000


def test_a_button_click_is_acked_and_answered_through_its_response_url(
    seed_sim: RunningSim, connected: Connected
) -> None:
    bot = WebClient(token=slack_config(seed_sim)["bot_token"], base_url=seed_sim.urls["slack_api"])
    posted = bot.chat_postMessage(channel="C0SOCKBTN", text="hns-reset on akswin000001?")
    click = {
        "type": "block_actions",
        "user": {"id": "U0APPROVER1"},
        "container": {"message_ts": posted["ts"]},
        "channel": {"id": "C0SOCKBTN"},
        "actions": [
            {
                "type": "button",
                "action_id": "approve",
                "block_id": "approval",
                "value": "hns-reset",
                "action_ts": "1732770000.000200",
            }
        ],
    }

    result = seed_sim.control("POST", ENVELOPES, {"type": "interactive", "payload": click})

    assert result["acked"] and result["in_time"]
    assert result["ack_payload"] is None  # an empty ack, as Bolt sends for block_actions
    [body] = [
        b for b in connected.seen.actions if b["trigger_id"] == result["payload"]["trigger_id"]
    ]
    assert body["message"]["text"] == "hns-reset on akswin000001?"
    assert body["user"]["id"] == "U0APPROVER1"
    assert body["actions"][0]["value"] == "hns-reset"
    wait_until(lambda: ephemeral(seed_sim, "C0SOCKBTN"))
    [answer] = ephemeral(seed_sim, "C0SOCKBTN")
    assert answer["text"] == "approved by <@U0APPROVER1>"
    assert answer["user"] == "U0APPROVER1"


def test_an_envelope_no_listener_acks_is_reported_unacked(
    seed_sim: RunningSim, connected: Connected
) -> None:
    started = time.monotonic()
    result = seed_sim.control(
        "POST",
        ENVELOPES,
        {"type": "slash_commands", "payload": {"command": "/other"}, "timeout_s": 0.5},
    )
    assert not result["acked"] and result["ack_ms"] is None
    assert 0.5 <= time.monotonic() - started < 3


def test_pings_are_answered_both_ways(seed_sim: RunningSim, connected: Connected) -> None:
    def client() -> Obj:
        status: list[Obj] = socket_mode(seed_sim)["clients"]
        return status[0]

    # The simulator pings right after hello; the client pings right after its handshake.
    wait_until(lambda: client()["pongs_received"] >= 1 and client()["pings_received"] >= 1)
    session = connected.handler.client.current_session
    assert session is not None
    wait_until(lambda: session.last_ping_pong_time is not None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "events_api", "payload": {}}, "type must be one of slash_commands, interactive"),
        ({"type": "slash_commands", "payload": []}, "payload must be a JSON object"),
        ({"type": "slash_commands", "timeout_s": 0}, "timeout_s must be a number"),
        ({"type": "slash_commands", "payload": {"channel_id": "#ops"}}, "does not look like"),
        ({"type": "interactive", "retries": 1}, "unknown field(s) retries"),
    ],
)
def test_bad_envelope_requests_are_400(seed_sim: RunningSim, body: Obj, expected: str) -> None:
    status, message = refused(seed_sim, body)
    assert status == 400
    assert expected in message


def test_wrong_tokens_are_refused(seed_sim: RunningSim) -> None:
    connections = socket_mode(seed_sim)["connected"]
    handler = SocketModeHandler(bolt_app(seed_sim, Seen()), "xapp-1-not-the-simulators")
    try:
        with pytest.raises(SlackApiError) as wrong_app_token:
            handler.connect()
    finally:
        handler.close()
    assert wrong_app_token.value.response["error"] == "invalid_auth"

    config = slack_config(seed_sim)
    web = WebClient(base_url=seed_sim.urls["slack_api"])
    with pytest.raises(SlackApiError) as bot_token:
        web.apps_connections_open(app_token=config["bot_token"])
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    app_token = seed_sim.urls["slack_app_token"]
    with pytest.raises(SlackApiError) as app_token_for_a_message:
        WebClient(token=app_token, base_url=web.base_url).chat_postMessage(channel="C0X", text="x")
    assert app_token_for_a_message.value.response["error"] == "not_allowed_token_type"
    assert socket_mode(seed_sim)["connected"] == connections


def test_a_socket_url_admits_one_connection(seed_sim: RunningSim) -> None:
    connections = socket_mode(seed_sim)["connected"]
    web = WebClient(base_url=seed_sim.urls["slack_api"])
    url = web.apps_connections_open(app_token=seed_sim.urls["slack_app_token"])["url"]
    assert url.startswith("ws://127.0.0.1:")

    async def twice() -> tuple[Obj, int]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as first:
                hello: Obj = await first.receive_json(timeout=5)
            with pytest.raises(aiohttp.WSServerHandshakeError) as second:
                await session.ws_connect(url)
        return hello, second.value.status

    hello, second_status = asyncio.run(twice())
    assert hello["type"] == "hello"
    assert second_status == 404
    wait_until(lambda: socket_mode(seed_sim)["connected"] == connections)


def test_envelopes_need_a_client_and_a_stopping_simulator_closes_it_cleanly(
    sim_factory: Callable[..., RunningSim],
) -> None:
    sim = sim_factory()
    status, message = refused(sim, {"type": "slash_commands", "payload": {"text": "help"}})
    assert status == 409
    assert "no Socket Mode client is connected" in message

    closes: list[tuple[int, str | None]] = []
    threads = set(threading.enumerate())
    handler = SocketModeHandler(
        bolt_app(sim, Seen()), sim.urls["slack_app_token"], auto_reconnect_enabled=False
    )
    handler.client.on_close_listeners.append(lambda code, reason: closes.append((code, reason)))
    handler.connect()
    try:
        wait_until(lambda: socket_mode(sim)["connected"] == 1)
        sim.process.send_signal(signal.SIGTERM)
        assert sim.process.wait(timeout=10) == 0
        wait_until(lambda: closes)
    finally:
        handler.close()
    assert closes == [(1001, "server shutting down")]
    assert sim.log == ""
    assert set(threading.enumerate()) <= threads  # the client's threads all ended
