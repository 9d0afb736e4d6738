"""containerd-restart from Slack: a wedged node's diagnosis offers it, one approver is not enough
(the same approver twice neither), the second approver's click runs it detached on the simulated
host, the stuck pod finishes terminating and the verification says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bot_process import RunningBot, start_bot
from sim_process import SCENARIOS, RunningSim, start_sim
from test_approvals_e2e import (
    APPROVER_A,
    APPROVER_B,
    action_ids,
    current,
    diagnose,
    host,
    press,
    told,
    wait_thread,
)

pytestmark = pytest.mark.wire

CHANNEL = "C0WEDGED"
BUTTON = "remediate:containerd-restart"


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    sim: RunningSim = start_sim(
        SCENARIOS / "check_runtime_wedged.yaml", tmp_path_factory.mktemp("wedged")
    )
    try:
        running = start_bot(sim, name="wedged")
        try:
            yield running
        finally:
            running.stop()
    finally:
        sim.stop()


def test_containerd_restart_needs_two_approvers_then_runs_and_the_stuck_pod_goes(
    bot: RunningBot,
) -> None:
    message = diagnose(bot, "web/app-0", CHANNEL)
    assert BUTTON in action_ids(message)

    press(bot, CHANNEL, message, BUTTON, APPROVER_A)
    told(bot, CHANNEL, APPROVER_A, "needs a second approver")
    request = next(
        r for r in current(bot, CHANNEL, message["ts"])["replies"] if "asked for" in r["text"]
    )
    first = request["blocks"][0]["text"]["text"]
    assert "Restart-Service kubelet -Force" in first  # what changes state, before approval
    assert "HostProcess containers" in first  # the impact: what the restart cuts
    plan = next(line for line in first.splitlines() if line.startswith("*Plan:*"))
    assert "pods affected on akswin-wedged: web/app-0" in plan
    assert "stuck terminating (to finish): web/old-0" in plan

    press(bot, CHANNEL, message, BUTTON, APPROVER_A)
    assert "second, different approver" in told(bot, CHANNEL, APPROVER_A, "already approved")
    assert host(bot.sim, "akswin-wedged")["history"] == []  # one approver ran nothing
    assert host(bot.sim, "akswin-wedged")["runtime"] == "wedged"

    press(bot, CHANNEL, message, BUTTON, APPROVER_B)
    result = wait_thread(bot, CHANNEL, message, "Verification — fixed")
    assert "no pod is stuck terminating on akswin-wedged" in result
    cured = host(bot.sim, "akswin-wedged")
    assert cured["history"] == ["containerd-restart: web/old-0 finished terminating"]
    assert cured["runtime"] == "ok"
