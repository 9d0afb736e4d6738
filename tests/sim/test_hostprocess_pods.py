"""The simulator's HostProcess pods through the official `kubernetes` client (SPEC §9):
admission as the API server and Pod Security do it, the node's kubelet running winpod's script,
the log, and a kubelet that is away."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from sim_process import SEED, RunningSim, start_sim

from handlers.node_scripts import for_the_wire, render

pytestmark = pytest.mark.wire

IMAGE = "mcr.microsoft.com/oss/kubernetes/windows-host-process-containers-base-image:v1.0.0"
NODE_STATUS = (
    "# winpod-script: node-status\nparam([string]$DnsServiceIP = '10.0.0.10')\n"
    "Write-Output 'the simulator runs the recognised script, not this text'\n"
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SEED, tmp_path_factory.mktemp("hostprocess-pods"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def core(sim: RunningSim) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(sim.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def hostprocess_pod(
    node: str, script: str = NODE_STATUS, host_network: bool = True, **container: Any
) -> dict[str, Any]:
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"hp-{uuid.uuid4().hex[:6]}"},
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "restartPolicy": "Never",
            "securityContext": {"windowsOptions": {"hostProcess": True}},
            "containers": [
                {
                    "name": "script",
                    "image": IMAGE,
                    "command": ["powershell.exe", "-NoProfile", "-EncodedCommand", encoded],
                    **container,
                }
            ],
        },
    }


def until(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_pod(name, "winpod").status.phase)


def test_a_hostprocess_pod_runs_the_script_on_its_node_and_logs_its_output(
    sim: RunningSim, core: client.CoreV1Api
) -> None:
    body = hostprocess_pod("akswin000001")
    name = body["metadata"]["name"]
    core.create_namespaced_pod("winpod", body)

    until(lambda: phase(core, name) == "Succeeded", "Succeeded pod")

    pod = core.read_namespaced_pod(name, "winpod")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    log = core.read_namespaced_pod_log(name, "winpod")
    result = json.loads(next(line for line in log.splitlines() if line.startswith("{")))
    assert result["script"] == "node-status" and result["host"] == "akswin000001"
    assert sim.control("GET", "/sim/v1/stats")["hostprocess_pods"] >= 1


def test_a_hostprocess_pod_without_host_network_is_invalid(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("winpod", hostprocess_pod("akswin000001", host_network=False))

    assert caught.value.status == 422
    assert "spec.hostNetwork: Invalid value: false" in json.loads(caught.value.body)["message"]


def test_pod_security_refuses_hostprocess_outside_a_privileged_namespace(
    core: client.CoreV1Api,
) -> None:
    body = hostprocess_pod("akswin000001")

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", body)

    assert caught.value.status == 403
    status = json.loads(caught.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'pods "{body["metadata"]["name"]}" is forbidden: violates PodSecurity '
        '"baseline:latest": host namespaces (hostNetwork=true), hostProcess (pod and '
        'container "script" must not set securityContext.windowsOptions.hostProcess=true)'
    )


def test_while_kubelet_is_away_log_and_exec_fail_and_the_status_waits(
    sim: RunningSim, core: client.CoreV1Api
) -> None:
    sim.control("POST", "/sim/v1/hostprocess", {"kubelet_restart_s": 3})
    try:
        body = hostprocess_pod("akswin000003", for_the_wire(render("hns-reset")))
        name = body["metadata"]["name"]
        core.create_namespaced_pod("winpod", body)
        # the script ran (kubelet stopped and started again), its pod is not seen to end
        until(
            lambda: any(
                h.startswith("hns-reset")
                for h in sim.control("GET", "/sim/v1/hosts/akswin000003")["history"]
            ),
            "hns-reset on the host",
        )
        assert phase(core, name) == "Running"
        with pytest.raises(ApiException) as log_refused:
            core.read_namespaced_pod_log(name, "winpod")
        with pytest.raises(ApiException) as exec_refused:
            stream(
                core.connect_get_namespaced_pod_exec,
                "legacy-0",
                "web",
                command=["hostname"],
                stderr=True,
                stdout=True,
                _preload_content=True,
            )
        assert log_refused.value.status == 502
        assert "10250: connect: connection refused" in log_refused.value.body
        assert "Handshake status 502" in str(exec_refused.value)
    finally:
        sim.control("POST", "/sim/v1/hostprocess", {"kubelet_restart_s": 1})

    until(lambda: phase(core, name) in ("Succeeded", "Failed"), "the pod's end", timeout=10)
    assert '"script":"hns-reset"' in core.read_namespaced_pod_log(name, "winpod").replace(" ", "")


def test_an_image_from_an_unknown_registry_never_pulls(core: client.CoreV1Api) -> None:
    body = hostprocess_pod("akswin000001", image="registry.invalid/winpod/host:1")
    name = body["metadata"]["name"]
    core.create_namespaced_pod("winpod", body)

    waiting = until(
        lambda: (core.read_namespaced_pod(name, "winpod").status.container_statuses or [None])[0],
        "a container status",
    ).state.waiting

    assert waiting.reason == "ErrImagePull"
    assert "registry.invalid: no such host" in waiting.message
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(name, "winpod")
    assert caught.value.status == 400
    assert "is waiting to start: ErrImagePull" in caught.value.body
