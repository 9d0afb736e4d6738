"""Faults through the simulator's knobs: the Kubernetes API, pod exec and WinRM failing (500,
reset, hang, 429) during diagnose, sweep and remediation; the bot killed in the middle of a
remediation and restarted; the leader killed in the middle of a sweep."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
import yaml
from bot_process import RunningBot
from reliability_kit import (
    Lab,
    Run,
    button,
    click_body,
    metric,
    request_mark,
    requests_since,
    tracebacks,
    until,
)
from sim_process import RunningSim

from bot.store import Store, locks

pytestmark = pytest.mark.wire

APPROVER = "U0APPROVER1"  # the simulator's winpod.yaml
HEALTHY, REBOOTED, AUTH, KILLED, SLOW = (f"akswin0000{n}" for n in (30, 31, 32, 33, 34))
HANG_S = 1  # a hang outlasts nothing: every request it holds then fails with a 500
DIAGNOSE_BOUND_S = 60.0  # what a diagnosis may take with every request failing or hanging
LEASE_S, RENEW_S = 15.0, 5.0  # bot.leader's defaults
ALERTS = "C0ALERTS"  # slack.alert_channel in the simulator's winpod.yaml
Message = dict[str, Any]


@pytest.fixture(scope="module")
def sim(lab: Lab) -> RunningSim:
    return lab.sim("faults_cluster.yaml")


@pytest.fixture(autouse=True)
def calm(sim: RunningSim) -> Iterator[None]:
    """Every test starts and ends with no fault armed on any server."""
    yield
    for server in ("kube", "exec", "winrm", "slack"):
        sim.control("POST", f"/sim/v1/faults/{server}", {"fail_next": 0, "latency_ms": 0})


def fault(sim: RunningSim, server: str, **knobs: Any) -> None:
    sim.control("POST", f"/sim/v1/faults/{server}", knobs)


def host(sim: RunningSim, name: str) -> dict[str, Any]:
    return dict(sim.control("GET", f"/sim/v1/hosts/{name}"))


def store_url(sim: RunningSim) -> str:
    return str(yaml.safe_load(sim.config.read_text())["store"]["url"])


def one_line_error(run: Run) -> str:
    """A failed command says what failed on one line of stderr, prefixed `winpod:`."""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("winpod: "), run
    return lines[0]


# --- diagnose --------------------------------------------------------------------------------

KUBE_FAULTS = {
    "500": ({"mode": "500"}, "(500)"),
    "reset": ({"mode": "reset"}, "cannot reach the Kubernetes API"),
    "hang": ({"mode": "hang", "hang_s": HANG_S}, "(500)"),
    "429": ({"mode": "429", "retry_after_s": 1}, "(429)"),
}


@pytest.mark.parametrize("mode", list(KUBE_FAULTS))
def test_diagnose_with_the_kubernetes_api_failing_exits_3_with_one_line(
    lab: Lab, sim: RunningSim, mode: str
) -> None:
    knobs, said = KUBE_FAULTS[mode]
    fault(sim, "kube", fail_next=1000, **knobs)
    run = lab.cli(sim, "diagnose", "web/iis-healthy")
    assert run.returncode == 3, run
    assert said in one_line_error(run)
    assert run.stdout == ""
    assert run.seconds < DIAGNOSE_BOUND_S


EXEC_AND_WINRM_FAULTS = {
    "exec 500": ("exec", {"mode": "500"}),
    "exec reset": ("exec", {"mode": "reset"}),
    "exec hang": ("exec", {"mode": "hang", "hang_s": HANG_S}),
    "winrm 500": ("winrm", {"mode": "500"}),
    "winrm reset": ("winrm", {"mode": "reset"}),
}


@pytest.mark.parametrize("case", list(EXEC_AND_WINRM_FAULTS))
def test_diagnose_with_exec_or_winrm_failing_reports_what_it_could_not_check(
    lab: Lab, sim: RunningSim, case: str
) -> None:
    server, knobs = EXEC_AND_WINRM_FAULTS[case]
    fault(sim, server, fail_next=1000, **knobs)
    run = lab.cli(sim, "diagnose", "web/iis-healthy", "-o", "json")
    assert run.returncode == 0, run  # nothing found broken; some things could not be looked at
    findings = run.json()["findings"]
    unchecked = [f for f in findings if f["severity"] == "warning"]
    assert unchecked, findings
    assert all(f["title"].startswith("Could not") for f in unchecked), unchecked
    assert all(f["summary"] for f in unchecked)
    assert run.seconds < DIAGNOSE_BOUND_S


# --- sweep -----------------------------------------------------------------------------------


def test_sweep_with_the_kubernetes_api_failing_exits_3(lab: Lab, sim: RunningSim) -> None:
    fault(sim, "kube", fail_next=1000, mode="500")
    run = lab.cli(sim, "sweep")
    assert run.returncode == 3, run
    assert "(500)" in one_line_error(run)


def test_sweep_with_the_kubernetes_api_hanging_is_bounded_and_exits_3(
    lab: Lab, sim: RunningSim
) -> None:
    fault(sim, "kube", fail_next=1000, mode="hang", hang_s=HANG_S)
    run = lab.cli(sim, "sweep")
    assert run.returncode == 3, run
    one_line_error(run)
    assert run.seconds < DIAGNOSE_BOUND_S


@pytest.mark.parametrize("mode", ["reset", "hang"])
def test_sweep_with_pod_exec_failing_says_could_not_check_not_broken(
    lab: Lab, sim: RunningSim, mode: str
) -> None:
    fault(sim, "exec", fail_next=1000, mode=mode, hang_s=HANG_S)
    # with no pod answering, the node's HNS policies would decide: WinRM is down as well
    fault(sim, "winrm", fail_next=1000, mode="reset")
    run = lab.cli(sim, "sweep", "-o", "json")
    report = run.json()
    (node,) = [n for n in report["nodes"] if n["name"] == REBOOTED]
    assert node["state"] == "unreachable"
    assert node["evidence"] and "could not probe" in node["evidence"][0]
    assert [f["severity"] for f in report["findings"]] == ["warning"]
    assert report["findings"][0]["title"] == "Could not check the node's HNS policies"
    assert run.returncode == 0  # an unreachable pod is not a DNS failure


# --- remediation from the terminal ---------------------------------------------------------


def results(sim: RunningSim, target: str) -> list[dict[str, Any]]:
    """The `result` entries of the audit log for `target`, oldest first."""
    with closing(Store(store_url(sim))) as store:
        return [e.detail for e in store.audit_log(500) if e.kind == "result" and e.target == target]


def lock_holder(sim: RunningSim, target: str) -> str | None:
    """The action whose run holds the node (a holder is `ACTION_ID/attempt`)."""
    with closing(Store(store_url(sim))) as store:
        holder = store.lock_holder(f"target:node:{target}")
    return None if holder is None else holder.split("/", 1)[0]


def test_winrm_failing_mid_remediation_exits_with_a_message_audits_and_frees_the_node(
    lab: Lab, sim: RunningSim
) -> None:
    fault(sim, "winrm", fail_next=1, mode="500")
    failed = lab.cli(sim, "remediate", "kube-proxy-restart", REBOOTED, "--yes")
    assert failed.returncode == 3, failed
    assert one_line_error(failed).endswith("failed (500)")
    assert failed.stdout.startswith("kube-proxy-restart on akswin000031")  # the plan it ran
    assert results(sim, REBOOTED)[-1]["ok"] is False
    assert lock_holder(sim, REBOOTED) is None

    again = lab.cli(sim, "remediate", "kube-proxy-restart", REBOOTED, "--yes")
    assert again.returncode == 0, again
    assert "Verification — fixed" in again.stdout
    assert results(sim, REBOOTED)[-1]["ok"] is True
    assert host(sim, REBOOTED)["history"].count("kube-proxy-restart") == 1


def test_winrm_refusing_the_credentials_mid_remediation_is_a_clear_exit_3(
    lab: Lab, sim: RunningSim
) -> None:
    run = lab.cli(
        sim,
        "remediate",
        "kube-proxy-restart",
        AUTH,
        "--yes",
        env={"WINPOD_WINRM__PASSWORD": "Wr0ng-Passw0rd-for-reliability"},
    )
    assert run.returncode == 3, run
    assert "refused the configured credentials" in one_line_error(run)
    assert host(sim, AUTH)["history"] == []
    assert results(sim, AUTH)[-1]["ok"] is False
    assert lock_holder(sim, AUTH) is None


def test_winrm_hanging_mid_remediation_times_out_and_frees_the_node(
    lab: Lab, sim: RunningSim
) -> None:
    fault(sim, "winrm", fail_next=1, mode="hang", hang_s=10)
    run = lab.cli(
        sim,
        "remediate",
        "kube-proxy-restart",
        SLOW,
        "--yes",
        env={"WINPOD_WINRM__OPERATION_TIMEOUT_S": "1", "WINPOD_WINRM__READ_TIMEOUT_S": "2"},
    )
    assert run.returncode == 3, run
    assert "did not answer within" in one_line_error(run)
    assert run.seconds < DIAGNOSE_BOUND_S
    assert results(sim, SLOW)[-1]["ok"] is False
    assert lock_holder(sim, SLOW) is None


def test_the_kubernetes_api_failing_before_a_remediation_runs_nothing(
    lab: Lab, sim: RunningSim
) -> None:
    fault(sim, "kube", fail_next=1000, mode="500")
    run = lab.cli(sim, "remediate", "kube-proxy-restart", KILLED, "--yes")
    assert run.returncode == 3, run
    assert "(500)" in one_line_error(run)
    assert host(sim, KILLED)["history"] == []


# --- the bot killed in the middle of a remediation ------------------------------------------


def diagnosed(bot: RunningBot, reference: str, channel: str) -> Message:
    before = {m["ts"] for m in bot.messages(channel)}
    assert bot.command(f"diagnose {reference}", channel=channel).status == 200
    return until(
        lambda: next(
            (m for m in bot.messages(channel) if m["ts"] not in before and m.get("edited")), None
        ),
        60,
        f"the diagnosis of {reference}",
    )


def approve(bot: RunningBot, message: Message, channel: str) -> None:
    restart = button(message, "remediate:kube-proxy-restart")
    body = click_body(
        restart["action_id"],
        restart["value"],
        user=APPROVER,
        channel=channel,
        message_ts=message["ts"],
        blocks=message["blocks"],
    )
    assert bot.post(body).status == 200


def actions_on(sim: RunningSim, target: str) -> list[Any]:
    with closing(Store(store_url(sim))) as store:
        return [a for a in store.list_actions(limit=500) if a.target == target]


def expire_lock(sim: RunningSim, target: str) -> None:
    """Time passes for one lock: its expiry moves into the past, as after approvals.lock_ttl."""
    engine = sqlalchemy.create_engine(store_url(sim))
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                sqlalchemy.update(locks)
                .where(locks.c.name == f"target:node:{target}")
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            assert changed.rowcount == 1
    finally:
        engine.dispose()


def test_a_bot_killed_mid_remediation_ends_it_as_unknown_and_never_reruns_it(
    lab: Lab, sim: RunningSim
) -> None:
    channel = "C0KILL"
    single = {
        "WINPOD_KUBERNETES__LEADER_ELECTION": "false",
        "WINPOD_SWEEP__INTERVAL": "1h",
        "WINPOD_HOUSEKEEPING_INTERVAL": "1s",
    }
    bot = lab.bot(sim, single, name="killed")
    message = diagnosed(bot, "shop/kill-0", channel)
    fault(sim, "winrm", latency_ms=5000)  # every WinRM request now takes 5 s
    approve(bot, message, channel)
    [action] = until(
        lambda: [a for a in actions_on(sim, KILLED) if a.status == "running"] or None,
        30,
        "the remediation to be running",
    )
    bot.process.kill()  # SIGKILL: no chance to record anything
    bot.process.wait(timeout=10)
    fault(sim, "winrm", latency_ms=0)

    restarted = lab.bot(sim, single, name="restarted")
    # Its lock outlives any remediation, so it may still run elsewhere: left alone, not re-run.
    until(lambda: "housekeeping" in restarted.log, 30, "a housekeeping run")
    time.sleep(2)  # two more housekeeping runs (every second) must change nothing either
    assert [a.status for a in actions_on(sim, KILLED)] == ["running"]
    assert lock_holder(sim, KILLED) == action.id
    assert host(sim, KILLED)["history"] == []

    expire_lock(sim, KILLED)
    failed = until(
        lambda: [a for a in actions_on(sim, KILLED) if a.status == "failed"] or None,
        30,
        "the cut-off action to end as failed",
    )
    assert failed[0].id == action.id
    assert failed[0].result["summary"].startswith("outcome unknown: winpod stopped while it ran")
    assert results(sim, KILLED)[-1]["summary"].startswith("outcome unknown")
    assert lock_holder(sim, KILLED) is None
    thread = until(
        lambda: "\n".join(
            r["text"]
            for m in restarted.messages(channel)
            if m["ts"] == message["ts"]
            for r in m["replies"]
            if "outcome unknown" in r["text"]
        ),
        30,
        "the outcome in the action's thread",
    )
    assert "kube-proxy-restart" in thread
    assert host(sim, KILLED)["history"] == []  # never re-run by itself

    # A fresh diagnosis and approval take the freed lock and run.
    again = diagnosed(restarted, "shop/kill-0", channel)
    approve(restarted, again, channel)
    until(
        lambda: host(sim, KILLED)["history"] == ["kube-proxy-restart"],
        60,
        "the fresh approval to run",
    )
    until(
        lambda: [a.status for a in actions_on(sim, KILLED)].count("succeeded") == 1,
        60,
        "the fresh action to succeed",
    )
    assert not tracebacks(restarted.log)


# --- the leader killed in the middle of a sweep ---------------------------------------------


@pytest.fixture(scope="module")
def sweep_sim(lab: Lab) -> RunningSim:
    return lab.sim("leader_cluster.yaml")


def leader_of(bots: list[RunningBot]) -> list[RunningBot]:
    return [b for b in bots if json.loads(b.get("/readyz")[1]).get("leader") is True]


def alerts(bot: RunningBot, node: str) -> list[Message]:
    return [
        m
        for m in bot.messages(ALERTS)
        # the header names the node, then its build: "Node akswin000040 · build 17763"
        if str((m.get("blocks") or [{}])[0].get("text", {}).get("text")).split(" · ")[0]
        == f"Node {node}"
    ]


def test_the_leader_killed_mid_sweep_leaves_no_duplicate_alert(
    lab: Lab, sweep_sim: RunningSim
) -> None:
    fast = {"WINPOD_SWEEP__INTERVAL": "1s"}
    replicas = [lab.bot(sweep_sim, fast, name="replica"), lab.bot(sweep_sim, fast, name="replica")]
    (leader,) = until(lambda: leader_of(replicas) or None, 30, "a leader")
    (follower,) = [r for r in replicas if r is not leader]
    until(lambda: metric(leader, "winpod_sweep_seconds_count") >= 1, 30, "the baseline sweep")

    sweep_sim.control("POST", "/sim/v1/hosts/akswin000040/reboot")
    until(lambda: alerts(leader, "akswin000040"), 30, "the leader's alert")

    fault(sweep_sim, "exec", latency_ms=3000)  # each probe now takes 3 s
    mark = request_mark(sweep_sim)
    sweep_sim.control("POST", "/sim/v1/hosts/akswin000041/reboot")
    until(
        lambda: [r for r in requests_since(sweep_sim, mark, "exec") if "second-0" in r["path"]],
        30,
        "the leader to be probing the second node",
    )
    leader.process.kill()  # SIGKILL in the middle of that sweep
    leader.process.wait(timeout=10)
    fault(sweep_sim, "exec", latency_ms=0)

    until(
        lambda: leader_of([follower]) or None,
        LEASE_S + RENEW_S + 15,
        "the follower to take over",
    )
    until(lambda: alerts(follower, "akswin000041"), 30, "the new leader's alert")
    swept = metric(follower, "winpod_sweep_seconds_count")
    until(
        lambda: metric(follower, "winpod_sweep_seconds_count") >= swept + 2,
        30,
        "two more sweeps",
    )
    assert len(alerts(follower, "akswin000040")) == 1
    assert len(alerts(follower, "akswin000041")) == 1
    assert len(follower.messages(ALERTS)) == 2
