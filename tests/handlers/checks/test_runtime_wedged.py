"""`runtime-wedged` on the simulator, its look-alikes, and `containerd-restart` end to end
through the CLI over WinRM (run detached, verified)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sim_process import ROOT

from handlers.checks.runtime_wedged import overdue_terminating

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_runtime_wedged.yaml"
CHECK = "runtime-wedged"


def _terminating(stamp: str, grace: int | None = 30, **meta: object) -> dict[str, object]:
    extra = {} if grace is None else {"deletionGracePeriodSeconds": grace}
    return {"metadata": {"name": "p", "deletionTimestamp": stamp, **extra, **meta}}


def test_a_pod_is_stuck_only_a_grace_period_after_its_deletion_timestamp() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    within = _terminating("2026-12-01T11:59:40Z")  # 20 s past the deadline, grace 30 s
    past = _terminating("2026-12-01T11:59:20Z")  # 40 s past
    long_grace = _terminating("2026-12-01T11:55:00Z", 600)  # 5 min past, grace 10 min
    held = _terminating("2026-12-01T10:00:00Z", finalizers=["x/y"])
    running = {"metadata": {"name": "q"}}

    stuck = overdue_terminating([within, past, long_grace, held, running], now)

    assert stuck == [past]


def test_exec_rpc_errors_and_a_pod_stuck_terminating_are_a_wedged_runtime(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-wedged", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Container runtime wedged (HCS/containerd)"
    said = "\n".join(finding.evidence)
    assert "The RPC server is unavailable" in said
    assert "close wait error" in said
    assert "Terminating past their grace period on akswin-wedged: web/old-0" in said
    assert "exec into web/app-0 fails now" in said
    assert "runs detached" in finding.summary
    assert cluster.offered(finding) == [("containerd-restart", "akswin-wedged", "high")]


def test_a_pod_diagnosis_on_the_wedged_node_sees_it_from_its_probe_events(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/app-0", CHECK)

    assert finding.severity == "error"
    assert "hcs::System::CreateProcess" in finding.evidence[0]


def test_on_a_wedged_node_probe_checks_could_not_check_and_the_live_error_is_quoted(
    cluster: CheckCluster,
) -> None:
    # An exec the runtime could not start ran nothing: the probes that needed it cannot tell
    # (no false "API server unreachable"), and runtime-wedged quotes the runtime's own words.
    diagnosis = cluster.pod("web/app-0")
    by_check = {f.check: f for f in diagnosis.findings}

    for probing in ("apiserver-unreachable", "dns-after-reboot", "serviceaccount-token"):
        if probing in by_check:
            assert by_check[probing].severity != "error", by_check[probing].title
    said = "\n".join(by_check[CHECK].evidence)
    assert "exec into web/app-0 fails now" in said
    assert said.count("The RPC server is unavailable") >= 2  # events, and the live probe


def test_grace_periods_finalizers_other_exec_failures_and_gmsa_rpc_errors_stay_quiet(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-calm", CHECK)

    assert finding.severity == "ok"
    assert finding.remediations == ()
    for pod in ("web/probe-0", "web/gmsa-0", "web/leaving-0"):
        assert cluster.pod_finding(pod, CHECK).severity == "ok", pod


def test_a_node_that_is_not_ready_is_not_called_wedged(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-down", CHECK)

    assert finding.severity == "ok"
    assert "akswin-down is not Ready" in " ".join(finding.evidence)


def test_containerd_restart_finishes_the_stuck_pods_and_exec_works_again(
    cluster: CheckCluster,
) -> None:
    dry = _remediate(cluster, "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    assert "web/app-0" in dry.stdout  # the pods that will be affected
    assert "stuck terminating (to finish): web/old-0" in dry.stdout
    assert "Restart-Service kubelet -Force" in dry.stdout

    run = _remediate(cluster, "--yes")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "no pod is stuck terminating on akswin-wedged" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = cluster.sim.control("GET", "/sim/v1/hosts/akswin-wedged")
    assert host["runtime"] == "ok"
    assert host["history"] == ["containerd-restart: web/old-0 finished terminating"]
    after = cluster.node("akswin-wedged", fresh=True)
    finding = cluster.only(after, CHECK)
    assert finding.severity == "ok"
    assert "exec into web/app-0 works now (cmd /c echo)" in finding.evidence


def _remediate(cluster: CheckCluster, flag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "remediate",
            "containerd-restart",
            "akswin-wedged",
            flag,
            "--config",
            str(cluster.sim.config),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )


def test_explain_says_what_it_reads_and_that_the_restart_runs_detached() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot", "explain", CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert "The RPC server is unavailable" in run.stdout
    assert "deletionTimestamp" in run.stdout
    assert "detached" in run.stdout
