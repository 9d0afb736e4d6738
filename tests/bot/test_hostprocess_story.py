"""The seed's DNS story from Slack on a cluster without WinRM (SPEC §9): no WinRM credentials,
every host's WinRM listener off; HNS facts and `hns-reset` travel in HostProcess pods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bot_process import RunningBot, start_bot
from sim_process import SEED, RunningSim, config_without_winrm, start_sim

from bot.wiring import build_transports
from config.settings import load_settings

pytestmark = pytest.mark.wire

APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"  # the simulator's winpod.yaml
CHANNEL = "C0HOSTPROC"
Message = dict[str, Any]


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    sim = start_sim(SEED, tmp_path_factory.mktemp("hostprocess-story"))
    try:
        config_without_winrm(sim)
        cluster = build_transports(load_settings(sim.config)).cluster
        for name, age in (
            ("winpod-hns-reset-old", timedelta(hours=1)),
            ("winpod-hns-reset-new", timedelta()),
        ):
            cluster.create("Pod", leftover(name, age), "winpod")
        running = start_bot(sim, name="hostprocess")
        try:
            yield running
        finally:
            running.stop()
    finally:
        sim.stop()


def leftover(name: str, age: timedelta) -> dict[str, Any]:
    """A script pod as a crashed replica leaves it (the simulator keeps the creation time)."""
    created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {"app.kubernetes.io/managed-by": "winpod", "winpod.io/script": "hns-reset"}
    return {
        "metadata": {"name": name, "labels": labels, "creationTimestamp": created},
        "spec": {"containers": [{"name": "script", "image": "mcr.microsoft.com/pause:3.9"}]},
    }


def test_leftover_script_pods_older_than_the_timeout_are_reaped_at_start_up(
    bot: RunningBot,
) -> None:
    names = bot.wait_for(
        lambda: (
            (found := {p["metadata"]["name"] for p in winpod_pods(bot.sim)})
            and "winpod-hns-reset-old" not in found
            and found
        ),
        what="the old leftover pod to be deleted",
    )
    assert names == {"winpod-hns-reset-new"}  # younger than node.script_timeout: kept
    build_transports(load_settings(bot.sim.config)).cluster.delete(
        "Pod", "winpod-hns-reset-new", "winpod"
    )


def current(bot: RunningBot, ts: str) -> Message:
    return next(m for m in bot.messages(CHANNEL) if m["ts"] == ts)


def thread(bot: RunningBot, message: Message) -> str:
    return "\n".join(r["text"] for r in current(bot, message["ts"]).get("replies", []))


def thread_with(bot: RunningBot, message: Message, text: str) -> str:
    """Wait until the message's thread holds `text`; the whole thread."""
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next((t for t in [thread(bot, message)] if text in t), None),
        timeout=60,
        what=f"{text!r} in the thread",
    )


def winpod_pods(sim: RunningSim) -> list[dict[str, Any]]:
    cluster = build_transports(load_settings(sim.config)).cluster
    return cluster.list(
        "Pod", namespace="winpod", label_selector="app.kubernetes.io/managed-by=winpod"
    )


def test_the_dns_story_from_slack_without_winrm(bot: RunningBot) -> None:
    sim = bot.sim
    before = {m["ts"] for m in bot.messages(CHANNEL)}
    assert bot.command("diagnose shop/api-0", channel=CHANNEL).status == 200
    message = bot.wait_for(
        lambda: next(
            (m for m in bot.messages(CHANNEL) if m["ts"] not in before and m.get("edited")), None
        ),
        what="the diagnosis",
    )
    assert "HNS on akswin000002" in json.dumps(message)  # read in a HostProcess pod

    for approver in (APPROVER_A, APPROVER_B):
        pressed = bot.click(
            current(bot, message["ts"]), "remediate:hns-reset", user=approver, channel=CHANNEL
        )
        assert pressed.status == 200
        if approver == APPROVER_A:
            assert "HostProcess pod on akswin000002" in thread_with(bot, message, "asked for")

    result = thread_with(bot, message, "Verification — fixed")
    assert "ok stop kubelet" in result and "ok start kubelet" in result
    host = sim.control("GET", "/sim/v1/hosts/akswin000002")
    assert host["dns"] == "ok"
    assert any(h.startswith("hostprocess pod winpod-hns-reset-") for h in host["history"])
    # Every script pod is deleted by the run that made it; on a busy machine a check the
    # diagnosis stopped waiting for may still be finishing its own.
    bot.wait_for(lambda: not winpod_pods(sim), timeout=60, what="no winpod script pod left")
    stats = sim.control("GET", "/sim/v1/stats")
    assert stats["winrm"] == 0
    assert stats["hostprocess_pods"] >= 2  # node-status, hns-reset (and the verification's)
