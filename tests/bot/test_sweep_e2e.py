"""The post-reboot DNS sweep end to end: `winpod serve` processes and `winpod sweep` against the
simulator, reboots through its control API, alerts read back from its Slack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from bot_process import RunningBot
from sim_process import ROOT, RunningSim

from bot.leader import LeaderElector
from handlers.errors import Refused
from handlers.transports import KubeObject

pytestmark = pytest.mark.wire

SCENARIO = "sweep_cluster.yaml"
ALERTS = "C0ALERTS"  # slack.alert_channel in the simulator's winpod.yaml
APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"
BROKEN, KEPT, EMPTY = "akswin000020", "akswin000021", "akswin000022"  # see the scenario
INTERVAL_S = 1.0
FAST = {"WINPOD_SWEEP__INTERVAL": f"{INTERVAL_S:g}s"}
SINGLE = {**FAST, "WINPOD_KUBERNETES__LEADER_ELECTION": "false"}
ALERT_WITHIN_S = INTERVAL_S + 4  # one interval, plus the sweep itself on a busy machine
LEASE_S, RENEW_S = 15.0, 5.0  # bot.leader's defaults
FIRST_LOOKUP = "probe `nslookup kubernetes.default.svc.cluster.local` failed"
Message = dict[str, Any]


# --- helpers ------------------------------------------------------------------------------


def sweeps_done(bot: RunningBot) -> int:
    """Finished sweeps of this replica, from its /metrics."""
    _, text = bot.get("/metrics")
    match = re.search(r"^winpod_sweep_seconds_count (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def wait_for_sweeps(bot: RunningBot, more: int) -> None:
    target = sweeps_done(bot) + more
    bot.wait_for(lambda: sweeps_done(bot) >= target, timeout=10 * more, what=f"{more} sweeps")


def wait_between_sweep_jobs(bot: RunningBot) -> None:
    """Until the sweep job that is running has ended: after its sweep it reconciles RDP
    sessions, which reads the API too, so a fault set before then may land on that read."""

    def idle() -> bool:
        lines = bot.log.splitlines()
        jobs = [line for line in lines if "scheduled_sweep (trigger" in line]
        started = sum("Running job" in line for line in jobs)
        ended = sum("executed successfully" in line for line in jobs)
        return started > 0 and started == ended

    bot.wait_for(idle, timeout=10, what="the sweep job to end")


def alerts_for(bot: RunningBot, node: str) -> list[Message]:
    """Top-level alerts about `node` (their text becomes the action status once edited)."""
    return [
        m
        for m in bot.messages(ALERTS)
        if re.fullmatch(
            rf"Node {re.escape(node)}( · build \d+)?",
            str((m.get("blocks") or [{}])[0].get("text", {}).get("text")),
        )
    ]


def reboot(sim: RunningSim, node: str) -> str:
    return str(sim.control("POST", f"/sim/v1/hosts/{node}/reboot")["bootID"])


def readiness(bot: RunningBot) -> dict[str, Any]:
    _, body = bot.get("/readyz")
    return dict(json.loads(body))


def leader_metric(bot: RunningBot) -> float:
    _, text = bot.get("/metrics")
    match = re.search(r"^winpod_leader (\S+)$", text, re.MULTILINE)
    assert match, "winpod_leader is missing from /metrics"
    return float(match.group(1))


def buttons(message: Message) -> list[str]:
    return [
        str(e["action_id"])
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def message_text(message: Message) -> str:
    """Everything a reader sees in a Block Kit message (section and context texts)."""
    parts = [message.get("text", "")]
    for block in message.get("blocks", []):
        if isinstance(block.get("text"), dict):
            parts.append(block["text"].get("text", ""))
        for element in block.get("elements", []):
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def run_cli(
    sim: RunningSim, *args: str, command: str = "sweep"
) -> subprocess.CompletedProcess[str]:
    """`winpod sweep` (or another command) from a terminal, on the simulator's winpod.yaml."""
    return subprocess.run(
        [sys.executable, "-m", "bot", command, "--config", str(sim.config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


# --- one alert per node per boot ----------------------------------------------------------


def test_a_reboot_alerts_once_across_sweeps_and_restarts(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory(SCENARIO)
    bot = bot_factory(sim, FAST)
    wait_for_sweeps(bot, 1)  # the baseline: every node seen once, nothing rebooted yet
    assert bot.messages(ALERTS) == []

    rebooted_at = time.monotonic()
    for node in (BROKEN, KEPT, EMPTY):
        reboot(sim, node)
    (alert,) = bot.wait_for(lambda: alerts_for(bot, BROKEN), timeout=20, what="the alert")
    assert time.monotonic() - rebooted_at <= ALERT_WITHIN_S
    assert alert["text"].startswith(f":rotating_light: {BROKEN} rebooted and DNS fails")
    shown = message_text(alert)
    assert FIRST_LOOKUP in shown
    # The header says what a diagnosis's says: build and OS, and when the node booted, where.
    assert re.fullmatch(r"Node \S+ · build \d{5}", alert["blocks"][0]["text"]["text"])
    intro = alert["blocks"][1]["elements"][0]["text"]
    assert "Windows Server" in intro
    assert re.search(r"rebooted \d{4}-\d\d-\d\d \d\d:\d\d UTC", intro)
    assert "cluster `winpod-sim`" in intro
    assert "diagnosed in" not in intro
    assert "stale HNS policies" in shown
    assert {
        "remediate:hns-reset",
        "remediate:kube-proxy-restart",
        "remediate:pod-dns-override",
        "remediate:dns-keeper",
    } <= set(buttons(alert))
    # A node whose second pod keeps DNS working raises nothing; one without pods to probe
    # alerts on its HNS policies (the next pod there would get broken DNS).
    (empty,) = bot.wait_for(lambda: alerts_for(bot, EMPTY), timeout=20, what="the HNS alert")
    # after a reboot the persisted policy lists hold the DNS VIP on endpoints that are gone
    assert "HNS policies for the DNS Service IP reference endpoints that are gone" in (
        message_text(empty)
    )
    assert alerts_for(bot, KEPT) == []
    alerts = bot.messages(ALERTS)
    assert len(alerts) == 2

    wait_for_sweeps(bot, 3)
    assert bot.messages(ALERTS) == alerts

    bot.stop()
    restarted = bot_factory(sim, FAST)  # same winpod.yaml, so the same store
    wait_for_sweeps(restarted, 2)
    assert restarted.messages(ALERTS) == alerts

    # The next boot of the same node is news again, though it happened while no bot ran a
    # watch: the restarted bot listed the nodes afresh and compares with the stored boots.
    restarted.stop()
    reboot(sim, BROKEN)
    restarted = bot_factory(sim, FAST)
    restarted.wait_for(
        lambda: len(alerts_for(restarted, BROKEN)) == 2, timeout=20, what="the second alert"
    )
    wait_for_sweeps(restarted, 2)
    assert len(restarted.messages(ALERTS)) == 3


def test_hns_reset_approved_from_the_alert_fixes_dns_and_follows_up_in_its_thread(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory(SCENARIO)
    reboot(sim, BROKEN)  # before the bot ever saw it: the recent Rebooted event is enough
    bot = bot_factory(sim, SINGLE)
    (alert,) = bot.wait_for(lambda: alerts_for(bot, BROKEN), timeout=10, what="the alert")
    assert sim.control("GET", f"/sim/v1/hosts/{BROKEN}")["dns"] == "stale-policies"

    assert bot.click(alert, "remediate:hns-reset", user=APPROVER_A, channel=ALERTS).status == 200
    waiting = bot.wait_for(
        lambda: next(
            (m for m in alerts_for(bot, BROKEN) if "needs a second approver" in message_text(m)),
            None,
        ),
        what="the alert to show the first approval",
    )
    assert bot.click(waiting, "remediate:hns-reset", user=APPROVER_B, channel=ALERTS).status == 200

    bot.wait_for(
        lambda: sim.control("GET", f"/sim/v1/hosts/{BROKEN}")["dns"] == "ok",
        what="hns-reset to fix the host",
    )
    follow_up = bot.wait_for(
        lambda: [
            r
            for r in alerts_for(bot, BROKEN)[0]["replies"]
            if r["text"].startswith(f":white_check_mark: DNS works again on `{BROKEN}`")
        ],
        timeout=10,
        what="the DNS-works-again follow-up in the alert's thread",
    )
    assert follow_up[0]["thread_ts"] == alert["ts"]
    assert "probe `nslookup kubernetes.default.svc.cluster.local` succeeded" in follow_up[0]["text"]
    thread = "\n".join(r["text"] for r in alerts_for(bot, BROKEN)[0]["replies"])
    assert f"<@{APPROVER_A}>" in thread and f"<@{APPROVER_B}>" in thread

    wait_for_sweeps(bot, 2)
    (final,) = alerts_for(bot, BROKEN)
    assert sum("DNS works again" in r["text"] for r in final["replies"]) == 1
    assert len(bot.messages(ALERTS)) == 1


# --- leadership: one leader, one alert, a quick takeover ----------------------------------


def test_two_replicas_elect_one_leader_that_alerts_once_and_a_follower_takes_over(
    store_url: str,
    sim_factory: Callable[..., RunningSim],
    bot_factory: Callable[..., RunningBot],
) -> None:
    sim = sim_factory(SCENARIO)
    shared = {**FAST, "WINPOD_STORE__URL": store_url}
    replicas = [bot_factory(sim, shared), bot_factory(sim, shared)]

    def leaders() -> list[RunningBot]:
        return [r for r in replicas if readiness(r)["leader"] is True]

    (leader,) = replicas[0].wait_for(leaders, what="a leader")
    (follower,) = [r for r in replicas if r is not leader]
    assert (leader_metric(leader), leader_metric(follower)) == (1.0, 0.0)
    wait_for_sweeps(leader, 1)
    assert sweeps_done(follower) == 0

    reboot(sim, BROKEN)
    leader.wait_for(lambda: alerts_for(leader, BROKEN), timeout=10, what="the alert")
    wait_for_sweeps(leader, 3)
    assert len(leader.messages(ALERTS)) == 1
    # By now the follower has tried the lease more than once, and kept off.
    assert leaders() == [leader] and sweeps_done(follower) == 0

    leader.process.kill()  # SIGKILL: no chance to hand the lease over
    leader.process.wait(timeout=10)
    killed_at = time.monotonic()
    follower.wait_for(
        lambda: readiness(follower)["leader"] is True,
        timeout=LEASE_S + RENEW_S + 10,
        what="the follower to take over",
    )
    assert time.monotonic() - killed_at <= LEASE_S + RENEW_S + 2
    assert leader_metric(follower) == 1.0
    wait_for_sweeps(follower, 2)
    assert len(follower.messages(ALERTS)) == 1  # the new leader does not repeat the old alert

    reboot(sim, BROKEN)
    follower.wait_for(
        lambda: len(alerts_for(follower, BROKEN)) == 2, timeout=10, what="the new leader's alert"
    )


# --- on demand: Slack and the terminal ----------------------------------------------------


def test_slash_sweep_edits_one_message_from_progress_into_the_summary(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory(SCENARIO)
    bot = bot_factory(
        sim, {"WINPOD_SWEEP__INTERVAL": "1h", "WINPOD_KUBERNETES__LEADER_ELECTION": "false"}
    )
    wait_for_sweeps(bot, 1)  # the scheduler's first sweep: the baseline
    for node in (BROKEN, KEPT, EMPTY):
        reboot(sim, node)

    response = bot.command("sweep", channel="C0SWEEP")
    assert response.status == 200 and response.seconds < 3
    (summary,) = bot.wait_for(
        lambda: [m for m in bot.messages("C0SWEEP") if m["text"].startswith("Sweep:")],
        what="the summary",
    )
    assert len(bot.messages("C0SWEEP")) == 1 and "edited" in summary
    lines = summary["text"].splitlines()
    assert re.fullmatch(
        r"Sweep: 3 Windows nodes checked, 3 rebooted, 2 with failing DNS, "
        r"0 could not be checked \(\d+ ms\)\.",
        lines[0],
    )
    assert any(line.startswith(f"• {BROKEN}: failing") for line in lines[1:])
    assert any(line.startswith(f"• {EMPTY}: failing") for line in lines[1:])
    assert not any(KEPT in line for line in lines)

    calls = sim.control("GET", "/sim/v1/slack/calls?channel=C0SWEEP")["calls"]
    texts = [(c["method"], c["params"]["text"]) for c in calls]
    assert texts[0] == ("chat.postMessage", ":mag: Sweeping the Windows nodes…")
    assert any(
        method == "chat.update" and re.fullmatch(r":mag: Sweeping: probed \d+/3 nodes…", text)
        for method, text in texts
    )
    assert texts[-1] == ("chat.update", summary["text"])
    # On demand or scheduled, a sweep that finds a broken node alerts in the alert channel.
    assert len(alerts_for(bot, BROKEN)) == 1


def test_cli_sweep_json_reports_every_windows_node_and_records_nothing(
    sim_factory: Callable[..., RunningSim],
) -> None:
    sim = sim_factory(SCENARIO)
    for node in (BROKEN, KEPT, EMPTY):
        reboot(sim, node)

    for _ in range(2):  # a terminal sweep records no boots: the second run sees the same
        result = run_cli(sim, "-o", "json")
        assert result.returncode == 1, result.stderr
        report = json.loads(result.stdout)
        assert set(report) == {"cluster", "nodes", "findings", "summary"}  # SPEC §3, §12
        assert report["cluster"] == "default"
        nodes = {n["name"]: n for n in report["nodes"]}
        # EMPTY has no pod to probe from: its HNS policies (over WinRM) show the stale state
        assert {name: n["state"] for name, n in nodes.items()} == {
            BROKEN: "failing",
            KEPT: "ok",
            EMPTY: "failing",
        }
        assert all(n["rebooted"] for n in nodes.values())
        assert nodes[BROKEN]["probed"] == ["shop/web-0"] and nodes[EMPTY]["probed"] == []
        assert len(nodes[KEPT]["probed"]) == 2 and nodes[KEPT]["runningPods"] == 3
        broken, empty = report["findings"]
        for finding in (broken, empty):
            assert (finding["check"], finding["severity"]) == ("dns-after-reboot", "error")
            assert {r["id"] for r in finding["remediations"]} >= {"hns-reset", "kube-proxy-restart"}
        assert broken["title"] == f"DNS fails in pods on {BROKEN} (stale HNS policies)"
        assert empty["evidence"][-1] == f"0 running pod(s) on {EMPTY}"
        summary = report["summary"]
        assert {k: summary[k] for k in ("checked", "rebooted", "failing", "unreachable")} == {
            "checked": 3,
            "rebooted": 3,
            "failing": 2,
            "unreachable": 0,
        }
    assert sim.control("GET", f"/sim/v1/slack/messages?channel={ALERTS}")["messages"] == []


def test_an_unreachable_pod_is_could_not_check_not_healthy_and_not_broken(
    sim_factory: Callable[..., RunningSim],
) -> None:
    sim = sim_factory(SCENARIO)
    reboot(sim, BROKEN)
    sim.control("POST", "/sim/v1/faults/exec", {"fail_next": 1, "mode": "500"})
    # nor can HNS be read instead: the node's WinRM listener is down as well
    sim.control("PATCH", f"/sim/v1/hosts/{BROKEN}", {"winrm": False})

    result = run_cli(sim, "--output", "json")
    report = json.loads(result.stdout)
    (node,) = [n for n in report["nodes"] if n["name"] == BROKEN]
    assert node["state"] == "unreachable"
    assert node["probed"] == ["shop/web-0"]
    assert "could not probe" in node["evidence"][0]
    assert [(f["severity"], f["title"]) for f in report["findings"]] == [
        ("warning", "Could not check the node's HNS policies")
    ]
    assert (report["summary"]["unreachable"], report["summary"]["failing"]) == (1, 0)
    assert result.returncode != 1, "an unreachable pod is not a DNS failure"

    text = run_cli(sim).stdout  # the fault is used up: the same node now answers, and fails
    assert "0 could not be checked" in text and f"• {BROKEN}: failing" in text


def test_the_sweep_finding_is_the_node_diagnosis_finding(
    sim_factory: Callable[..., RunningSim],
) -> None:
    sim = sim_factory(SCENARIO)
    for node in (BROKEN, EMPTY):
        reboot(sim, node)

    swept = json.loads(run_cli(sim, "-o", "json").stdout)["findings"]
    for node in (BROKEN, EMPTY):
        diagnosed = json.loads(run_cli(sim, node, "-o", "json", command="node").stdout)
        (from_node,) = [f for f in diagnosed["findings"] if f["check"] == "dns-after-reboot"]
        (from_sweep,) = [f for f in swept if f["evidence"] and node in f["evidence"][-1]]
        assert from_sweep == from_node


# --- failures end one sweep, not the next -------------------------------------------------


def test_api_and_slack_errors_end_one_sweep_or_alert_and_a_later_sweep_alerts(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory(SCENARIO)
    # No leader election, and housekeeping first runs 30 s in: the sweep job (its sweep, then
    # its RDP reconcile) is all that reads the API here.
    bot = bot_factory(sim, SINGLE)
    wait_for_sweeps(bot, 1)
    wait_between_sweep_jobs(bot)  # the next job starts a whole interval later

    # Three Kubernetes API errors: each ends one sweep, with the reason in the log.
    sim.control("POST", "/sim/v1/faults/kube", {"fail_next": 3, "mode": "500"})
    first_boot = reboot(sim, BROKEN)
    bot.wait_for(lambda: alerts_for(bot, BROKEN), timeout=15, what="the alert after the errors")
    stopped = [line for line in bot.log.splitlines() if "the sweep stopped" in line]
    assert len(stopped) == 3, bot.log
    assert all("(500)" in line and "next one runs as scheduled" in line for line in stopped)
    assert sim.control("GET", "/sim/v1/faults")["kube"]["fail_next"] == 0
    _, metrics = bot.get("/metrics")
    errors = 'winpod_errors_total{cluster="default",kind="Unreachable",peer="kubernetes"} 3.0'
    assert errors in metrics

    # Slack fails the next boot's alert (its client retries a server error twice, so three
    # 500s): the claim on that boot is given back and a later sweep posts the alert once.
    sim.control("POST", "/sim/v1/faults/slack", {"fail_next": 3, "mode": "500"})
    second_boot = reboot(sim, BROKEN)
    assert second_boot != first_boot
    bot.wait_for(
        lambda: len(alerts_for(bot, BROKEN)) == 2, timeout=15, what="the alert, second try"
    )
    assert f"could not post the alert for {BROKEN}" in bot.log
    wait_for_sweeps(bot, 2)
    assert len(alerts_for(bot, BROKEN)) == 2


# --- leader election needs Lease permission (one token in the simulator: a fake here) ------


class LeaseRefusingCluster:
    """A cluster whose ServiceAccount may not touch Leases, as a 403 maps to `Refused`."""

    context = "fake"

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        raise Refused(f'leases.coordination.k8s.io "{name}" is forbidden (403)')

    def list(self, *args: Any, **kwargs: Any) -> list[KubeObject]:
        raise AssertionError("not used")

    def create(self, *args: Any, **kwargs: Any) -> KubeObject:
        raise AssertionError("not used")

    def patch(self, *args: Any, **kwargs: Any) -> KubeObject:
        raise AssertionError("not used")

    def replace(self, *args: Any, **kwargs: Any) -> KubeObject:
        raise AssertionError("not used")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not used")


def test_leader_election_without_lease_permission_refuses_with_the_way_out() -> None:
    elector = LeaderElector(LeaseRefusingCluster(), "winpod", "me", lambda: None, lambda: None)
    with pytest.raises(Refused) as refused:
        elector.check_permission()
    message = str(refused.value)
    assert "Leases" in message and "namespace winpod" in message
    assert "kubernetes.leader_election: false" in message
    assert refused.value.exit_code == 3
