"""The simulator's control API: hosts, reboots, fault knobs and counters, bad input."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from sim_process import RunningSim
from slack_sdk import WebClient

pytestmark = pytest.mark.wire


def refused(sim: RunningSim, method: str, path: str, body: Any = None) -> tuple[int, str]:
    """The status and `error` message of a control call that must fail."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim.control(method, path, body)
    error = caught.value
    payload = json.loads(error.read())
    error.close()
    return error.code, payload["error"]


@pytest.fixture(scope="module")
def core(seed_sim: RunningSim) -> Iterator[k8s.CoreV1Api]:
    api_client = k8s_config.new_client_from_config(config_file=str(seed_sim.kubeconfig))
    with api_client:
        yield k8s.CoreV1Api(api_client)


def test_healthz_and_the_seed_hosts(seed_sim: RunningSim) -> None:
    assert seed_sim.control("GET", "/sim/v1/healthz") == {"ok": True}
    hosts = {h["name"]: h for h in seed_sim.control("GET", "/sim/v1/hosts")["hosts"]}
    assert {"akswin000000", "akswin000001", "akswin000002"} <= set(hosts)
    assert "aks-linux-0" not in hosts
    assert hosts["akswin000002"]["dns"] == "stale-policies"
    assert seed_sim.control("GET", "/sim/v1/hosts/akswin000000")["dns"] == "ok"


def test_an_unknown_host_is_404(seed_sim: RunningSim) -> None:
    status, message = refused(seed_sim, "GET", "/sim/v1/hosts/nosuchnode")
    assert status == 404 and "nosuchnode" in message
    status, _ = refused(seed_sim, "POST", "/sim/v1/hosts/nosuchnode/reboot")
    assert status == 404


def test_a_patched_host_reads_back_changed(seed_sim: RunningSim) -> None:
    patch = {
        "dns": "stale-policies",
        "services": {"kubeproxy": "Stopped"},
        "sandboxImage": "mcr.microsoft.com/oss/kubernetes/pause:1.4.1",
        "winrm": False,
    }
    seed_sim.control("PATCH", "/sim/v1/hosts/akswin000001", patch)

    host = seed_sim.control("GET", "/sim/v1/hosts/akswin000001")
    assert host["dns"] == "stale-policies"
    assert host["services"] == {
        "kubelet": "Running",
        "kubeproxy": "Stopped",
        "containerd": "Running",
    }
    assert host["sandboxImage"] == "mcr.microsoft.com/oss/kubernetes/pause:1.4.1"
    assert host["winrm"] is False

    seed_sim.control("PATCH", "/sim/v1/hosts/akswin000001", {"dns": "ok", "winrm": True})
    assert seed_sim.control("GET", "/sim/v1/hosts/akswin000001")["dns"] == "ok"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"dns": "broken"}, "dns must be one of"),
        ({"services": {"kubelet": "Sleeping"}}, "services.kubelet"),
        ({"services": ["kubelet"]}, "services must map"),
        ({"winrm": "yes"}, "winrm must be true or false"),
        ({"vm": {"macAddressSpoofing": False}}, "not a Hyper-V VM"),
        ({"vm": {"hypervHost": "hv9"}}, "vm may only set macAddressSpoofing"),
        ({"color": "blue"}, "unknown field(s) color"),
        (["dns", "ok"], "must be a JSON object"),
    ],
)
def test_a_bad_host_patch_is_400_and_changes_nothing(
    seed_sim: RunningSim, patch: Any, expected: str
) -> None:
    before = seed_sim.control("GET", "/sim/v1/hosts/akswin000000")
    status, message = refused(seed_sim, "PATCH", "/sim/v1/hosts/akswin000000", patch)
    assert status == 400
    assert expected in message
    assert seed_sim.control("GET", "/sim/v1/hosts/akswin000000") == before


def test_a_vm_host_can_lose_mac_spoofing(sim_factory: Any, tmp_path: Any) -> None:
    scenario = tmp_path / "vm.yaml"
    scenario.write_text(
        "apiVersion: v1\nkind: Node\n"
        "metadata: {name: winvm0, labels: {kubernetes.io/os: windows}}\n---\n"
        "apiVersion: sim.winpod.io/v1\nkind: WindowsHost\nmetadata: {name: winvm0}\n"
        "spec: {vm: {hypervHost: hv01, macAddressSpoofing: true}}\n"
    )
    sim = sim_factory(scenario)
    sim.control("PATCH", "/sim/v1/hosts/winvm0", {"vm": {"macAddressSpoofing": False}})
    host = sim.control("GET", "/sim/v1/hosts/winvm0")
    assert host["vm"] == {"hypervHost": "hv01", "macAddressSpoofing": False}
    assert sim.control("GET", "/sim/v1/hosts/hv01")["role"] == "hyperv"


def test_a_reboot_changes_boot_id_and_records_a_rebooted_event(
    seed_sim: RunningSim, core: k8s.CoreV1Api
) -> None:
    before = core.read_node("akswin000000").status.node_info.boot_id

    result = seed_sim.control("POST", "/sim/v1/hosts/akswin000000/reboot")

    after = core.read_node("akswin000000").status.node_info.boot_id
    assert after != before
    assert result["bootID"] == after
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=akswin000000,reason=Rebooted"
    ).items
    assert [e.message for e in events] == [f"Node akswin000000 has been rebooted, boot id: {after}"]
    assert seed_sim.control("GET", "/sim/v1/hosts/akswin000000")["dns"] == "stale-policies"


def test_a_kube_fault_fails_the_next_request_once(
    seed_sim: RunningSim, core: k8s.CoreV1Api
) -> None:
    knobs = seed_sim.control("POST", "/sim/v1/faults/kube", {"fail_next": 1, "mode": "500"})
    assert knobs["fail_next"] == 1 and knobs["mode"] == "500"

    with pytest.raises(ApiException) as failed:
        core.list_node()
    assert failed.value.status == 500
    assert "akswin000000" in {n.metadata.name for n in core.list_node().items}
    assert seed_sim.control("GET", "/sim/v1/faults")["kube"]["fail_next"] == 0


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/sim/v1/faults/kube", {"mode": "explode"}, "unknown mode 'explode'"),
        ("/sim/v1/faults/kube", {"fail_next": -1}, "fail_next must be a number"),
        ("/sim/v1/faults/kube", {"latency_ms": "slow"}, "latency_ms must be a number"),
        ("/sim/v1/faults/kube", {"jitter": 1}, "unknown knob 'jitter'"),
        ("/sim/v1/faults/dns", {"fail_next": 1}, "unknown server 'dns'"),
        ("/sim/v1/slack/usergroups", {"oncall": ["U0A"]}, "does not look like a user group"),
        ("/sim/v1/slack/usergroups", {"S0X": "U0A"}, "must be a list of strings"),
        ("/sim/v1/slack/missing", {"channels": ["general"]}, "do not look like Slack IDs"),
        ("/sim/v1/slack/missing", {"teams": []}, "unknown field(s) teams"),
        ("/sim/v1/slack/response_url", {"channel": "#ops"}, "does not look like a Slack channel"),
    ],
)
def test_bad_input_is_400_with_a_message(
    seed_sim: RunningSim, path: str, body: Any, expected: str
) -> None:
    status, message = refused(seed_sim, "POST", path, body)
    assert status == 400
    assert expected in message


def test_bad_json_and_unknown_paths_answer_json(seed_sim: RunningSim) -> None:
    status, message = refused(seed_sim, "GET", "/sim/v1/slack/calls?since=yesterday")
    assert status == 400 and "since" in message
    status, message = refused(seed_sim, "GET", "/sim/v1/slack/messages")
    assert status == 400 and "channel" in message
    status, message = refused(seed_sim, "GET", "/sim/v1/objects/pods")
    assert status == 404 and "/sim/v1/objects/pods" in message
    assert seed_sim.control("GET", "/sim/v1/faults")["kube"]["mode"] in (
        "500",
        "reset",
        "hang",
        "429",
    )


def test_stats_count_requests_per_server_and_reset(
    seed_sim: RunningSim, core: k8s.CoreV1Api
) -> None:
    assert seed_sim.control("POST", "/sim/v1/stats/reset")["requests"]["kube"] == 0
    core.list_node()
    core.list_namespaced_pod("web")
    token = yaml.safe_load(seed_sim.config.read_text())["slack"]["bot_token"]
    WebClient(token=token, base_url=seed_sim.urls["slack_api"]).auth_test()

    requests = seed_sim.control("GET", "/sim/v1/stats")["requests"]
    assert requests["kube"] == 2
    assert requests["slack"] == 1
    assert set(requests) == {"kube", "exec", "winrm", "slack"}

    seed_sim.control("POST", "/sim/v1/stats/reset")
    assert seed_sim.control("GET", "/sim/v1/stats")["requests"]["kube"] == 0
