"""The node remediations of the second wave on the HostProcess transport (no WinRM anywhere):
`containerd-restart`, `csi-proxy-start`, `hns-endpoint-cleanup` and `widen-dynamic-ports` run
in a script pod on the node, through the `winpod remediate` CLI, verified; the WinRM runs of the
same are in tests/handlers/checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_process import ROOT, SCENARIOS, RunningSim, config_without_winrm, start_sim

pytestmark = pytest.mark.wire


@pytest.fixture
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSim]:
    running = start_sim(SCENARIOS / request.param, tmp_path / "sim")
    try:
        config_without_winrm(running)
        yield running
    finally:
        running.stop()


def remediate(sim: RunningSim, remediation: str, node: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bot", "remediate", remediation, node, "--yes"]
    return subprocess.run(
        [*argv, "--config", str(sim.config)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )


def script_pods_left(sim: RunningSim) -> list[str]:
    pods = sim.control("GET", "/sim/v1/stats")
    assert pods["winrm"] == 0  # nothing went over WinRM
    listed = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(sim.kubeconfig),
            "get",
            "pods",
            "-n",
            "winpod",
            "-o",
            "name",
            "-l",
            "app.kubernetes.io/managed-by=winpod",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listed.stdout.split()


@pytest.mark.parametrize("sim", ["check_runtime_wedged.yaml"], indirect=True)
def test_containerd_restart_in_a_hostprocess_pod(sim: RunningSim) -> None:
    run = remediate(sim, "containerd-restart", "akswin-wedged")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "in a HostProcess pod on akswin-wedged" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = sim.control("GET", "/sim/v1/hosts/akswin-wedged")
    assert host["runtime"] == "ok"
    assert script_pods_left(sim) == []


@pytest.mark.parametrize("sim", ["check_csi_proxy.yaml"], indirect=True)
def test_csi_proxy_start_in_a_hostprocess_pod(sim: RunningSim) -> None:
    run = remediate(sim, "csi-proxy-start", "akswin-stopped")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "in a HostProcess pod on akswin-stopped" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = sim.control("GET", "/sim/v1/hosts/akswin-stopped")
    assert host["services"]["csi-proxy"] == "Running"
    assert script_pods_left(sim) == []


@pytest.mark.parametrize("sim", ["check_hns_stale_endpoints.yaml"], indirect=True)
def test_hns_endpoint_cleanup_in_a_hostprocess_pod(sim: RunningSim) -> None:
    run = remediate(sim, "hns-endpoint-cleanup", "akswin-stale")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "in a HostProcess pod on akswin-stale" in run.stdout
    assert "removed 3:" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = sim.control("GET", "/sim/v1/hosts/akswin-stale")
    assert host["network"]["staleRemoteEndpoints"] == 0
    assert script_pods_left(sim) == []


@pytest.mark.parametrize("sim", ["check_port_exhaustion.yaml"], indirect=True)
def test_widen_dynamic_ports_in_a_hostprocess_pod(sim: RunningSim) -> None:
    before = sim.control("GET", "/sim/v1/hosts/akswin-ports")["ports"]

    run = remediate(sim, "widen-dynamic-ports", "akswin-ports")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "in a HostProcess pod on akswin-ports" in run.stdout
    assert "Verification — fixed" in run.stdout
    after = sim.control("GET", "/sim/v1/hosts/akswin-ports")["ports"]
    assert after["dynamicCount"] > before["dynamicCount"]
    assert script_pods_left(sim) == []
