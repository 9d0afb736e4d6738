"""`winpod serve` in Socket Mode: the same commands arrive as envelopes over a WebSocket."""

from __future__ import annotations

from collections.abc import Callable

from bot_process import RunningBot
from sim_process import RunningSim


def test_socket_mode_diagnose_is_acked_by_envelope_and_the_result_posted(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory()
    bot = bot_factory(sim, {"WINPOD_SLACK__APP_TOKEN": sim.urls["slack_app_token"]})
    assert bot.wait_for(
        lambda: sim.control("GET", "/sim/v1/slack/socket_mode")["connected"],
        what="the bot to connect over Socket Mode",
    )
    sent = sim.control(
        "POST",
        "/sim/v1/slack/socket_mode/envelopes",
        {
            "type": "slash_commands",
            "payload": {"text": "diagnose web/iis-0", "channel_id": "C0OPS", "user_id": "U0OPS"},
        },
    )
    assert sent["acked"] is True
    assert sent["in_time"] is True  # within Slack's 3 seconds
    message = bot.wait_for(
        lambda: next((m for m in bot.messages() if m.get("edited")), None),
        what="the diagnosis result",
    )
    assert message["blocks"][0]["text"]["text"] == "Pod web/iis-0 on akswin000001 · build 17763"
    assert any(
        e["action_id"] == "remediate:pin-windows-build"
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    )


def test_socket_mode_usage_errors_are_answered_in_the_ack(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory()
    bot = bot_factory(sim, {"WINPOD_SLACK__APP_TOKEN": sim.urls["slack_app_token"]})
    connected(sim, bot)
    sent = sim.control(
        "POST",
        "/sim/v1/slack/socket_mode/envelopes",
        {
            "type": "slash_commands",
            "payload": {"text": "frobnicate", "channel_id": "C0OPS"},
        },
    )
    assert sent["acked"] is True
    assert "unknown subcommand 'frobnicate'" in sent["ack_payload"]["text"]
    assert bot.messages() == []


def test_socket_mode_drops_an_oversized_frame_unparsed_and_keeps_serving(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory()
    bot = bot_factory(sim, {"WINPOD_SLACK__APP_TOKEN": sim.urls["slack_app_token"]})
    connected(sim, bot)
    huge = sim.control(
        "POST",
        "/sim/v1/slack/socket_mode/envelopes",
        {
            "type": "slash_commands",
            "payload": {"text": "help " + "a" * 600_000, "channel_id": "C0OPS"},
            "timeout_s": 3,
        },
    )
    assert huge["acked"] is False  # over 512 KiB: never parsed, so never answered
    assert "dropped a Socket Mode frame" in bot.log
    sent = sim.control(
        "POST",
        "/sim/v1/slack/socket_mode/envelopes",
        {"type": "slash_commands", "payload": {"text": "frobnicate", "channel_id": "C0OPS"}},
    )
    assert sent["acked"] is True and sent["in_time"] is True
    assert "Traceback" not in bot.log


def test_socket_mode_acknowledges_a_malformed_click_without_acting_on_it(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory()
    bot = bot_factory(sim, {"WINPOD_SLACK__APP_TOKEN": sim.urls["slack_app_token"]})
    connected(sim, bot)
    for wrong in (
        {"message": "not an object"},
        {"actions": [{"action_id": "remediate:hns-reset", "value": 7}]},
        {"actions": [{"action_id": "remediate:hns-reset", "value": "x"}], "state": [1]},
    ):
        sent = sim.control(
            "POST",
            "/sim/v1/slack/socket_mode/envelopes",
            {"type": "interactive", "payload": {"type": "block_actions", **wrong}},
        )
        assert sent["acked"] is True, (wrong, sent)
    bot.wait_for(lambda: bot.log.count("dropped a malformed Socket Mode") == 3, what="3 drops")
    assert "Traceback" not in bot.log
    assert bot.ephemeral() == [] and bot.messages() == []  # no listener ran


def connected(sim: RunningSim, bot: RunningBot) -> None:
    """Wait until the bot holds its Socket Mode connection to the simulator."""
    bot.wait_for(
        lambda: sim.control("GET", "/sim/v1/slack/socket_mode")["connected"],
        what="the bot to connect over Socket Mode",
    )
