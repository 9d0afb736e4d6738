"""The runtime and csi-proxy vocabulary (SPEC §10): a wedged runtime as the real clients see it
(exec fails with HCS's RPC error on the status channel, graceful deletes stay Terminating, a
forced one goes through), and what containerd-restart and csi-proxy-start change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream
from sim_process import SCENARIOS, start_sim

from sim.host_scripts import run_script
from sim.scenario import ScenarioError, load_scenario


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[k8s.CoreV1Api]:
    sim = start_sim(SCENARIOS / "check_runtime_wedged.yaml", tmp_path_factory.mktemp("runtime"))
    try:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=str(sim.kubeconfig), client_configuration=configuration
        )
        yield k8s.CoreV1Api(k8s.ApiClient(configuration))
    finally:
        sim.stop()


def _exec_status(core: k8s.CoreV1Api, pod: str) -> tuple[str, dict[str, object]]:
    response = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "web",
        command=["cmd", "/c", "echo", "hi"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    try:
        response.run_forever(timeout=5)
        return response.read_stdout(), json.loads(response.read_channel(3))
    finally:
        response.close()
        response.sock.shutdown()


@pytest.mark.wire
def test_exec_on_a_wedged_node_fails_with_the_hcs_rpc_error(core: k8s.CoreV1Api) -> None:
    stdout, status = _exec_status(core, "app-0")

    assert stdout == ""
    assert status["status"] == "Failure"
    assert status["reason"] == "InternalError"
    message = str(status["message"])
    assert message.startswith("Internal error occurred: error executing command in container")
    assert "hcs::System::CreateProcess" in message
    assert message.endswith("The RPC server is unavailable.: unknown")
    assert _exec_status(core, "probe-0") == ("hi\r\n", {"metadata": {}, "status": "Success"})


@pytest.mark.wire
def test_a_graceful_delete_on_a_wedged_node_stays_terminating_until_forced(
    core: k8s.CoreV1Api,
) -> None:
    answered = core.delete_namespaced_pod("app-0", "web")

    assert answered.metadata.deletion_timestamp is not None
    assert answered.metadata.deletion_grace_period_seconds == 30
    still = core.read_namespaced_pod("app-0", "web")
    assert still.metadata.deletion_timestamp == answered.metadata.deletion_timestamp

    core.delete_namespaced_pod("app-0", "web", grace_period_seconds=0)
    with pytest.raises(k8s.ApiException) as gone:
        core.read_namespaced_pod("app-0", "web")
    assert gone.value.status == 404


@pytest.mark.wire
def test_a_delete_on_a_healthy_node_goes_through(core: k8s.CoreV1Api) -> None:
    core.delete_namespaced_pod("gmsa-0", "web")

    with pytest.raises(k8s.ApiException) as gone:
        core.read_namespaced_pod("gmsa-0", "web")
    assert gone.value.status == 404


def test_containerd_restart_ends_the_wedge_and_the_stuck_pods() -> None:
    world = load_scenario(SCENARIOS / "check_runtime_wedged.yaml")
    host = world.hosts["akswin-wedged"]
    script = (Path(__file__).parents[2] / "handlers/scripts/containerd-restart.ps1").read_text()

    output = run_script(world, host, "containerd-restart", {}, script)

    assert output.exit_code == 0
    assert json.loads(output.stdout)["after"] == {"containerd": "Running", "kubelet": "Running"}
    assert host.runtime == "ok"
    assert world.find("pods", "web", "old-0") is None
    assert world.find("pods", "web", "app-0") is not None


def test_a_stuck_containerd_is_restarted_only_by_a_script_that_ends_its_process() -> None:
    world = load_scenario(SCENARIOS / "check_runtime_wedged.yaml")
    host = world.hosts["akswin-wedged"]
    host.services["containerd"] = "StopPending"

    plain = run_script(world, host, "containerd-restart", {}, "Stop-Service containerd")
    assert plain.exit_code == 1
    assert host.runtime == "wedged"

    killing = run_script(world, host, "containerd-restart", {}, "Stop-Process -Id $procId")
    assert killing.exit_code == 0
    assert json.loads(killing.stdout)["killed"] is True
    assert host.runtime == "ok"


def test_csi_proxy_start_readies_the_plugins_that_need_it_and_refuses_when_absent() -> None:
    world = load_scenario(SCENARIOS / "check_csi_proxy.yaml")

    missing = run_script(world, world.hosts["ekswin-missing"], "csi-proxy-start", {})
    assert missing.exit_code == 1
    assert "not installed" in json.loads(missing.stdout)["refused"]

    started = run_script(world, world.hosts["akswin-stopped"], "csi-proxy-start", {})
    assert started.exit_code == 0
    assert world.hosts["akswin-stopped"].services["csi-proxy"] == "Running"
    plugin = world.find("pods", "kube-system", "csi-azuredisk-node-win-7x2kq")
    assert plugin is not None
    ready = {c["type"]: c["status"] for c in plugin["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_an_unknown_runtime_state_is_a_scenario_error(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: w1, labels: {kubernetes.io/os: windows}}\n"
        "---\napiVersion: sim.winpod.io/v1\nkind: WindowsHost\nmetadata: {name: w1}\n"
        "spec: {runtime: broken}\n"
    )

    with pytest.raises(ScenarioError, match=r"spec\.runtime: must be one of ok, wedged"):
        load_scenario(scenario)
