"""`csi-proxy` on the simulator, its look-alikes, and `csi-proxy-start` end to end through the
CLI over WinRM (verified), and refused where csi-proxy is not installed."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from sim_process import ROOT

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_csi_proxy.yaml"
CHECK = "csi-proxy"


def test_a_plugin_crash_looping_on_the_pipe_with_csi_proxy_stopped_offers_to_start_it(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-stopped", CHECK)

    assert finding.severity == "error"
    assert finding.title == "CSI node plugin cannot reach csi-proxy"
    said = "\n".join(finding.evidence)
    assert "pipe\\\\csi-proxy-filesystem-v1" in said  # the FailedMount event, escaped
    assert "azuredisk: F1201" in said  # the plugin's own last words
    assert "CSI node plugin kube-system/csi-azuredisk-node-win-7x2kq: not Ready" in said
    assert "service csi-proxy: Stopped" in said
    assert cluster.offered(finding) == [("csi-proxy-start", "akswin-stopped", "medium")]


def test_a_pod_that_cannot_mount_its_volume_sees_it_too(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/db-0", CHECK)

    assert finding.severity == "error"
    assert "FailedMount" in finding.evidence[0]


def test_csi_proxy_not_installed_is_advice_without_an_offer(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("ekswin-missing", CHECK)

    assert finding.severity == "error"
    assert "csi-proxy is not installed" in finding.summary
    assert "service csi-proxy: not installed" in finding.evidence
    assert finding.remediations == ()


def test_a_hostprocess_plugin_and_a_running_csi_proxy_stay_quiet(cluster: CheckCluster) -> None:
    hostprocess = cluster.node_finding("akswin-hostprocess", CHECK)
    fine = cluster.node_finding("akswin-fine", CHECK)

    assert hostprocess.severity == "ok"
    assert "HostProcess" in hostprocess.summary
    assert fine.severity == "ok"
    assert "service csi-proxy: Running" in fine.evidence  # the old crash text is history
    assert fine.remediations == hostprocess.remediations == ()


def test_csi_proxy_start_is_refused_where_csi_proxy_is_not_installed(
    cluster: CheckCluster,
) -> None:
    run = _remediate(cluster, "ekswin-missing")

    assert run.returncode != 0
    assert "csi-proxy is not installed as a service on ekswin-missing" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert cluster.sim.control("GET", "/sim/v1/hosts/ekswin-missing")["history"] == []


def test_csi_proxy_start_starts_the_service_and_the_plugin_becomes_ready(
    cluster: CheckCluster,
) -> None:
    run = _remediate(cluster, "akswin-stopped")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "the CSI node plugins are Ready" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = cluster.sim.control("GET", "/sim/v1/hosts/akswin-stopped")
    assert host["services"]["csi-proxy"] == "Running"
    assert host["history"] == ["csi-proxy-start: kube-system/csi-azuredisk-node-win-7x2kq started"]
    finding = cluster.only(cluster.node("akswin-stopped", fresh=True), CHECK)
    assert finding.severity == "ok"


def _remediate(cluster: CheckCluster, node: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "remediate",
            "csi-proxy-start",
            node,
            "--yes",
            "--config",
            str(cluster.sim.config),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )


def test_explain_names_the_pipe_and_the_hostprocess_way_out() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot", "explain", CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert "\\\\.\\pipe\\csi-proxy-filesystem-v1" in run.stdout
    assert "HostProcess" in run.stdout
    assert "csi-proxy-start" in run.stdout
