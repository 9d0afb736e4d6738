"""`winpod serve` end to end: signed Slack requests in, messages on the simulated Slack out."""

from __future__ import annotations

from collections.abc import Callable

from bot_process import RunningBot
from sim_process import RunningSim


def test_diagnose_posts_progress_then_findings_with_buttons(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    bot = bot_factory(sim_factory())
    response = bot.command("diagnose shop/api-0")
    assert response.status == 200
    assert response.seconds < 3
    message = bot.wait_for(
        lambda: next((m for m in bot.messages() if m.get("edited")), None),
        what="the diagnosis message to be edited into its result",
    )
    header = message["blocks"][0]["text"]["text"]
    assert header == "Pod shop/api-0 on akswin000002 · build 17763"
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {e["action_id"] for e in buttons} >= {"remediate:hns-reset",
                                                 "remediate:kube-proxy-restart"}
    calls = bot.sim.control("GET", "/sim/v1/slack/calls?channel=C0OPS")["calls"]
    first_post = next(c for c in calls if c["method"] == "chat.postMessage")
    assert first_post["params"]["text"].startswith("Diagnosing shop/api-0 on akswin000002")
