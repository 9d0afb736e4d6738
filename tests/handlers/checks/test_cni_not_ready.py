"""`cni-not-ready` on the simulator, and `cni-pod-restart` end to end through the CLI."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from sim_process import ROOT

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_cni_not_ready.yaml"
CHECK = "cni-not-ready"


def test_calico_unauthorised_is_a_cni_failure_with_its_pod_named(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/app-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Pod network not ready (CNI)"
    assert "connection is unauthorized" in finding.evidence[0]
    assert "CNI pod calico-system/calico-node-windows-h7x2k: not Ready" in " ".join(
        finding.evidence
    )
    assert cluster.offered(finding) == [("cni-pod-restart", "akswin-calico", "medium")]


def test_a_pod_that_started_before_its_cni_pod_is_the_reboot_race(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/late-0", CHECK)

    assert finding.severity == "error"
    assert "the CNI pod started after the pods that failed (a reboot race)" in finding.evidence
    assert "0x803b0010" in finding.evidence[0]


def test_the_node_diagnosis_sees_it_too(cluster: CheckCluster) -> None:
    assert cluster.node_finding("akswin-calico", CHECK).severity == "error"
    assert cluster.node_finding("akswin-healthy", CHECK).severity == "ok"


def test_a_running_pod_beside_a_long_ready_cni_pod_stays_quiet(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/ok-0", CHECK)

    assert finding.severity == "ok"
    assert finding.remediations == ()


def test_a_sandbox_failing_for_another_reason_is_not_blamed_on_the_cni(
    cluster: CheckCluster,
) -> None:
    assert cluster.pod_finding("web/mismatch-0", CHECK).severity == "ok"
    image = cluster.pod_finding("web/mismatch-0", "image-os-mismatch")
    assert image.severity == "error"


def test_cni_pod_restart_replaces_the_pod_and_the_waiting_pods_get_their_network(
    cluster: CheckCluster,
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "remediate",
            "cni-pod-restart",
            "akswin-calico",
            "--yes",
            "--config",
            str(cluster.sim.config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    assert "deleted calico-system/calico-node-windows-h7x2k" in run.stdout
    assert "Verification — fixed" in run.stdout
    after = cluster.pod("web/app-0", fresh=True)
    assert after.target.phase == "Running"
    assert cluster.only(after, CHECK).severity == "ok"
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "audit",
            "--last",
            "20",
            "--config",
            str(cluster.sim.config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert "cni-pod-restart" in again.stdout
