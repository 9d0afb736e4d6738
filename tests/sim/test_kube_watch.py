"""Watches, paging and traffic counters of the simulated API server, through the official
client's `watch.Watch` and list calls over HTTPS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from tests.conftest import RunningSim

pytestmark = pytest.mark.wire

WINDOWS = "kubernetes.io/os=windows"


@pytest.fixture(scope="module")
def core(seed_sim: RunningSim) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(seed_sim.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def events(core: client.CoreV1Api, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of one watch that ends by its timeoutSeconds, each object as a plain dict."""
    return [
        {"type": e["type"], "object": e["raw_object"]}
        for e in watch.Watch().stream(core.list_node, timeout_seconds=1, **kwargs)
    ]


def test_a_watch_without_resource_version_starts_with_the_current_state(
    core: client.CoreV1Api,
) -> None:
    seen = events(core, label_selector=WINDOWS)

    assert {e["type"] for e in seen} == {"ADDED"}
    names = {e["object"]["metadata"]["name"] for e in seen}
    assert {"akswin000000", "akswin000002"} <= names
    assert "aks-linux-0" not in names  # the label selector holds for watches too


def test_a_watch_from_a_list_sees_a_reboot_as_a_modified_node(
    seed_sim: RunningSim, core: client.CoreV1Api
) -> None:
    listed = core.list_node(label_selector=WINDOWS)
    seed_sim.control("POST", "/sim/v1/hosts/akswin000000/reboot")

    seen = events(core, label_selector=WINDOWS, resource_version=listed.metadata.resource_version)

    modified = [e for e in seen if e["type"] == "MODIFIED"]
    assert [e["object"]["metadata"]["name"] for e in modified] == ["akswin000000"]
    boot = modified[0]["object"]["status"]["nodeInfo"]["bootID"]
    assert boot != next(
        n.status.node_info.boot_id for n in listed.items if n.metadata.name == "akswin000000"
    )
    assert int(modified[0]["object"]["metadata"]["resourceVersion"]) > int(
        listed.metadata.resource_version
    )


def test_a_live_watch_hears_changes_as_they_happen(
    seed_sim: RunningSim, core: client.CoreV1Api
) -> None:
    rv = core.list_node().metadata.resource_version
    heard: list[dict[str, Any]] = []
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(
            core.list_node, resource_version=rv, timeout_seconds=10, deserialize=False
        ):
            heard.append(event)
            if event["type"] == "MODIFIED":
                watcher.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    seed_sim.control("POST", "/sim/v1/hosts/akswin000002/reboot")
    thread.join(timeout=15)

    assert [e["object"]["metadata"]["name"] for e in heard if e["type"] == "MODIFIED"] == [
        "akswin000002"
    ]


def test_a_too_old_resource_version_is_410_gone(
    seed_sim: RunningSim, core: client.CoreV1Api
) -> None:
    rv = core.list_node().metadata.resource_version
    seed_sim.control("POST", "/sim/v1/hosts/akswin000000/reboot")
    seed_sim.control("POST", "/sim/v1/kube/compact")

    with pytest.raises(ApiException) as caught:
        events(core, resource_version=rv)

    assert caught.value.status == 410
    assert "Expired: too old resource version" in str(caught.value.reason)
    # listing again gives a resourceVersion the watch accepts
    fresh = core.list_node().metadata.resource_version
    assert all(e["type"] in ("ADDED", "MODIFIED") for e in events(core, resource_version=fresh))


def test_bookmarks_carry_the_current_resource_version(core: client.CoreV1Api) -> None:
    rv = core.list_node().metadata.resource_version
    seen = list(
        watch.Watch().stream(
            core.list_node,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=3,
            deserialize=False,
        )
    )

    bookmarks = [e for e in seen if e["type"] == "BOOKMARK"]
    assert bookmarks, "a 3 s watch with bookmarks allowed should carry at least one"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert set(bookmarks[-1]["object"]) == {"kind", "apiVersion", "metadata"}


def test_a_pod_watch_by_node_sees_only_that_nodes_pods(
    seed_sim: RunningSim, core: client.CoreV1Api
) -> None:
    seen = list(
        watch.Watch().stream(
            core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=akswin000000",
            timeout_seconds=1,
            deserialize=False,
        )
    )
    assert {e["object"]["spec"]["nodeName"] for e in seen} == {"akswin000000"}


def test_pods_are_listed_by_node_in_pages(seed_sim: RunningSim, core: client.CoreV1Api) -> None:
    everything = core.list_pod_for_all_namespaces().items
    names: list[str] = []
    first = core.list_pod_for_all_namespaces(limit=2)
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == len(everything) - 2
    page = first
    while True:
        names += [f"{p.metadata.namespace}/{p.metadata.name}" for p in page.items]
        if not page.metadata._continue:
            break
        page = core.list_pod_for_all_namespaces(limit=2, _continue=page.metadata._continue)
    assert sorted(names) == sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in everything)
    assert len(names) == len(set(names))

    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=akswin000002")
    assert {p.spec.node_name for p in on_node.items} == {"akswin000002"}
    assert on_node.items


def test_stats_count_bytes_per_resource_as_spec_15_says(
    seed_sim: RunningSim, core: client.CoreV1Api
) -> None:
    seed_sim.control("POST", "/sim/v1/stats/reset")
    core.list_node()
    core.list_pod_for_all_namespaces(field_selector="spec.nodeName=akswin000002")
    events(core)

    stats = seed_sim.control("GET", "/sim/v1/stats")
    assert set(stats) >= {"kube", "exec", "winrm", "hostprocess_pods"}
    kube = stats["kube"]
    assert kube["requests"] == 3
    nodes, pods = kube["by_resource"]["nodes"], kube["by_resource"]["pods"]
    assert nodes["requests"] == 2 and nodes["watches"] == 1
    assert pods["requests"] == 1
    assert kube["bytes_out"] == nodes["bytes_out"] + pods["bytes_out"]
    assert nodes["bytes_out"] > pods["bytes_out"] > 0

    zeroed = seed_sim.control("POST", "/sim/v1/stats/reset")
    assert zeroed["kube"] == {"requests": 0, "bytes_out": 0, "by_resource": {}}


def test_an_object_leaving_the_selector_is_deleted_from_the_watch(
    core: client.CoreV1Api,
) -> None:
    rv = core.list_node(label_selector="agentpool=legacy").metadata.resource_version
    core.patch_node("akswin000003", {"metadata": {"labels": {"agentpool": "retired"}}})
    core.patch_node("akswin000003", {"metadata": {"labels": {"agentpool": "legacy"}}})

    seen = events(core, label_selector="agentpool=legacy", resource_version=rv)

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [
        ("DELETED", "akswin000003"),
        ("ADDED", "akswin000003"),
    ]
