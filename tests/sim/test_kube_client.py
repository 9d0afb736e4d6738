"""The simulated API server through the official `kubernetes` Python client, over HTTPS."""

from __future__ import annotations

import gc
import ipaddress
import json
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

if TYPE_CHECKING:
    from tests.conftest import RunningSim

pytestmark = pytest.mark.wire

TEST_NET_3 = ipaddress.ip_network("203.0.113.0/24")


@pytest.fixture(scope="module")
def api(seed_sim: RunningSim) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(seed_sim.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _status(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return int(caught.value.status)


# --- reads ------------------------------------------------------------------------------------


def test_lists_nodes_and_pods_across_namespaces(core: client.CoreV1Api) -> None:
    nodes = {n.metadata.name for n in core.list_node().items}
    assert {"akswin000000", "akswin000002", "hvwin000004", "aks-linux-0"} <= nodes

    pods = core.list_pod_for_all_namespaces()
    assert pods.metadata.resource_version
    by_name = {(p.metadata.namespace, p.metadata.name): p for p in pods.items}
    assert by_name[("web", "iis-healthy")].status.phase == "Running"
    assert by_name[("web", "iis-0")].status.container_statuses[0].state.waiting.reason == (
        "ContainerCreating"
    )
    assert ("kube-system", "coredns-5d78c9869d-ax0q") in by_name


def test_label_and_field_selectors_filter_lists(core: client.CoreV1Api) -> None:
    iis = core.list_namespaced_pod("web", label_selector="app=iis").items
    assert {p.metadata.name for p in iis} == {"iis-healthy", "iis-0"}
    not_iis = core.list_pod_for_all_namespaces(label_selector="app notin (iis),app").items
    assert {p.metadata.name for p in not_iis} == {"api-0", "nginx-7c5d"}

    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=akswin000000")
    assert {p.metadata.name for p in on_node.items} == {"iis-healthy", "nginx-7c5d"}

    events = core.list_namespaced_event("web", field_selector="involvedObject.name=iis-0")
    assert [e.reason for e in events.items] == ["FailedCreatePodSandBox"]
    reboots = core.list_event_for_all_namespaces(
        field_selector="involvedObject.name=akswin000002,reason=Rebooted"
    )
    assert reboots.items[0].message == "Node akswin000002 has been rebooted, boot id: 7"


def test_get_one_object_and_missing_ones(core: client.CoreV1Api) -> None:
    node = core.read_node("akswin000002")
    assert node.status.node_info.boot_id == "7"
    assert node.status.addresses[0].type == "InternalIP"
    assert ipaddress.ip_address(node.status.addresses[0].address).is_loopback

    assert _status(core.read_namespaced_pod, "no-such-pod", "web") == 404
    assert _status(core.read_node, "no-such-node") == 404


def test_not_found_body_is_a_kubernetes_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_service("nope", "default")
    body = json.loads(caught.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'services "nope" not found'


def test_wrong_token_is_refused(seed_sim: RunningSim) -> None:
    configuration = client.Configuration(
        host=seed_sim.urls["kube_api"], api_key={"authorization": "Bearer not-the-token"}
    )
    configuration.ssl_ca_cert = str(seed_sim.ca)
    with client.ApiClient(configuration) as wrong, pytest.raises(ApiException) as caught:
        client.CoreV1Api(wrong).list_node()
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["reason"] == "Unauthorized"


# --- writes -----------------------------------------------------------------------------------


def test_service_create_replace_patch_delete(core: client.CoreV1Api) -> None:
    name = _unique("svc")
    created = core.create_namespaced_service(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {"team": "a"}},
            "spec": {"selector": {"app": "iis"}, "ports": [{"port": 80}]},
        },
    )
    cluster_ip = ipaddress.ip_address(created.spec.cluster_ip)
    assert cluster_ip in ipaddress.ip_network("10.0.0.0/16")
    assert created.spec.type == "ClusterIP"
    assert created.spec.ports[0].target_port == 80
    assert (
        _status(
            core.create_namespaced_service,
            "default",
            {"metadata": {"name": name}, "spec": {"ports": [{"port": 81}]}},
        )
        == 409
    )

    created.metadata.labels["team"] = "b"
    replaced = core.replace_namespaced_service(name, "default", created)
    assert replaced.metadata.labels == {"team": "b"}
    assert replaced.spec.cluster_ip == created.spec.cluster_ip
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    stale = created  # still carries the resourceVersion from before the replace
    stale.metadata.labels["team"] = "c"
    assert _status(core.replace_namespaced_service, name, "default", stale) == 409

    merged = core.patch_namespaced_service(
        name,
        "default",
        {"metadata": {"labels": {"tier": "web"}}},
        _content_type="application/merge-patch+json",
    )
    assert merged.metadata.labels == {"team": "b", "tier": "web"}
    strategic = core.patch_namespaced_service(
        name, "default", {"spec": {"ports": [{"port": 443, "name": "https"}]}}
    )
    assert sorted(p.port for p in strategic.spec.ports) == [80, 443]
    json_patched = core.patch_namespaced_service(
        name, "default", [{"op": "remove", "path": "/metadata/labels/tier"}]
    )
    assert json_patched.metadata.labels == {"team": "b"}

    deleted = core.delete_namespaced_service(name, "default")
    assert deleted.metadata.name == name
    assert _status(core.read_namespaced_service, name, "default") == 404


def test_cluster_ips_are_unique(core: client.CoreV1Api) -> None:
    names = [_unique("ip") for _ in range(3)]
    ips = {
        core.create_namespaced_service(
            "default", {"metadata": {"name": n}, "spec": {"ports": [{"port": 80}]}}
        ).spec.cluster_ip
        for n in names
    }
    existing = {
        s.spec.cluster_ip
        for s in core.list_service_for_all_namespaces().items
        if s.metadata.name not in names
    }
    assert len(ips) == 3 and not ips & existing
    for n in names:
        core.delete_namespaced_service(n, "default")


def test_create_in_unknown_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'namespaces "no-such-ns" not found'


def test_dry_run_changes_nothing(core: client.CoreV1Api) -> None:
    name = _unique("dry")
    core.create_namespaced_config_map("default", {"metadata": {"name": name}}, dry_run="All")
    assert _status(core.read_namespaced_config_map, name, "default") == 404
    core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    core.delete_namespaced_config_map(name, "default", dry_run="All")
    assert core.read_namespaced_config_map(name, "default").metadata.name == name
    core.delete_namespaced_config_map(name, "default")


def test_daemonset_lifecycle(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    name = _unique("dns-keeper")
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "winpod"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "windows"},
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}],
                },
            },
        },
    }
    created = apps.create_namespaced_daemon_set("winpod", body)
    assert created.metadata.generation == 1
    patched = apps.patch_namespaced_daemon_set(
        name,
        "winpod",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
                    }
                }
            }
        },
    )
    assert patched.spec.template.spec.containers[0].image == "registry.k8s.io/pause:3.10"
    assert patched.metadata.generation == 2

    status = apps.patch_namespaced_daemon_set_status(
        name,
        "winpod",
        {
            "status": {
                "desiredNumberScheduled": 6,
                "currentNumberScheduled": 6,
                "numberReady": 6,
                "numberMisscheduled": 0,
            }
        },
    )
    assert status.status.number_ready == 6
    # A write to the object itself leaves the status alone, as on a real cluster.
    relabelled = apps.patch_namespaced_daemon_set(
        name, "winpod", {"metadata": {"labels": {"x": "y"}}}
    )
    assert relabelled.status.number_ready == 6

    listed = apps.list_namespaced_daemon_set("winpod", label_selector="x=y").items
    assert [d.metadata.name for d in listed] == [name]
    apps.delete_namespaced_daemon_set(name, "winpod")
    assert _status(apps.read_namespaced_daemon_set, name, "winpod") == 404


def test_lease_lifecycle_with_conflicts(api: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api)
    name = _unique("winpod-leader")
    created = leases.create_namespaced_lease(
        "winpod",
        {
            "metadata": {"name": name},
            "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
        },
    )
    assert created.spec.holder_identity == "replica-a"

    created.spec.holder_identity = "replica-b"
    taken = leases.replace_namespaced_lease(name, "winpod", created)
    assert taken.spec.holder_identity == "replica-b"
    # The other replica still holds the old resourceVersion: its takeover must fail.
    created.spec.holder_identity = "replica-c"
    assert _status(leases.replace_namespaced_lease, name, "winpod", created) == 409
    assert leases.read_namespaced_lease(name, "winpod").spec.holder_identity == "replica-b"

    patched = leases.patch_namespaced_lease(name, "winpod", {"spec": {"leaseTransitions": 3}})
    assert patched.spec.lease_transitions == 3
    leases.delete_namespaced_lease(name, "winpod")
    assert _status(leases.read_namespaced_lease, name, "winpod") == 404


def test_load_balancer_service_gets_an_ingress_ip(core: client.CoreV1Api) -> None:
    name = _unique("winpod-rdp")
    created = core.create_namespaced_service(
        "winpod",
        {
            "metadata": {"name": name},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerSourceRanges": ["198.51.100.0/24"],
                "ports": [{"port": 3389, "protocol": "TCP", "targetPort": 3389}],
            },
        },
    )
    assert not (created.status.load_balancer and created.status.load_balancer.ingress)
    assert 30000 <= created.spec.ports[0].node_port <= 32767

    deadline = time.monotonic() + 3
    ingress = None
    while time.monotonic() < deadline and not ingress:
        time.sleep(0.1)
        ingress = core.read_namespaced_service(name, "winpod").status.load_balancer.ingress
    assert ingress, "no ingress IP within 3 s"
    assert ipaddress.ip_address(ingress[0].ip) in TEST_NET_3
    core.delete_namespaced_service(name, "winpod")


# --- pod exec ---------------------------------------------------------------------------------


def _exec(core: client.CoreV1Api, argv: list[str], **kwargs: Any) -> Any:
    return stream(
        core.connect_get_namespaced_pod_exec,
        "iis-healthy",
        "web",
        command=argv,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        **kwargs,
    )


def test_exec_returns_stdout(core: client.CoreV1Api) -> None:
    with warnings.catch_warnings():
        # websocket-client leaves the socket of a server-closed exec to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        output = _exec(core, ["cmd", "/c", "echo", "hello"])
        gc.collect()
    assert output == "hello\r\n"


def _run(core: client.CoreV1Api, argv: list[str], protocol: str) -> tuple[str, str, str, int]:
    """Run to completion over `protocol`: (negotiated protocol, stdout, stderr, exit code)."""
    response = _exec(
        core, argv, _preload_content=False, _headers={"sec-websocket-protocol": protocol}
    )
    try:
        response.run_forever(timeout=5)
        return (
            response.subprotocol,
            response.read_channel(1),
            response.read_channel(2),
            response.returncode,
        )
    finally:
        response.close()
        # websocket-client's close() does nothing once the server closed; this frees the socket.
        response.sock.shutdown()


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_exec_streams_and_exit_codes(core: client.CoreV1Api, protocol: str) -> None:
    assert _run(core, ["cmd", "/c", "echo", "hi"], protocol) == (protocol, "hi\r\n", "", 0)

    negotiated, stdout, stderr, code = _run(core, ["whoami", "/all"], protocol)
    assert (negotiated, stdout, code) == (protocol, "", 1)
    assert "not simulated" in stderr

    assert _run(core, ["cmd", "/c", "exit", "3"], protocol)[3] == 3


def test_exec_refusals(core: client.CoreV1Api) -> None:
    """Refused before the upgrade, with the API server's Status in the handshake answer."""
    with pytest.raises(ApiException) as missing:
        stream(
            core.connect_get_namespaced_pod_exec,
            "no-such-pod",
            "web",
            command=["cmd", "/c", "echo", "x"],
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
        )
    assert "Handshake status 404" in str(missing.value.reason)
    assert 'pods \\"no-such-pod\\" not found' in str(missing.value.reason)

    with pytest.raises(ApiException) as creating:  # iis-0 is stuck in ContainerCreating
        stream(
            core.connect_get_namespaced_pod_exec,
            "iis-0",
            "web",
            command=["cmd", "/c", "echo", "x"],
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
        )
    assert "Handshake status 400" in str(creating.value.reason)
    assert 'container not found (\\"iis\\")' in str(creating.value.reason)


def test_fault_knobs_split_exec_from_the_rest(seed_sim: RunningSim, core: client.CoreV1Api) -> None:
    seed_sim.control("POST", "/sim/v1/faults/exec", {"fail_next": 1, "mode": "500"})
    with pytest.raises(ApiException) as broken_exec:
        _exec(core, ["cmd", "/c", "echo", "x"])
    assert "Handshake status 500" in str(broken_exec.value.reason)
    assert core.read_namespaced_pod("iis-healthy", "web").metadata.name == "iis-healthy"

    seed_sim.control("POST", "/sim/v1/faults/kube", {"fail_next": 1, "mode": "500"})
    with pytest.raises(ApiException) as broken:
        core.list_node()
    assert broken.value.status == 500
    assert json.loads(broken.value.body)["reason"] == "InternalError"

    # A 429 carries Retry-After, which the client's urllib3 honours by waiting and retrying.
    seed_sim.control(
        "POST", "/sim/v1/faults/kube", {"fail_next": 1, "mode": "429", "retry_after_s": 1}
    )
    started = time.monotonic()
    assert core.list_node().items
    assert time.monotonic() - started >= 0.9
