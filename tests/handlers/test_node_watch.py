"""Boot ids kept by list + watch (`handlers.node_watch`) against the simulator's API server,
through the real client: reboots seen live, across a watch gap, after a 410, after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from config.settings import KubernetesSettings
from handlers.node_watch import NodeWatch
from handlers.transports.kube import KubeCluster, load_configuration

if TYPE_CHECKING:
    from tests.sim_process import RunningSim

pytestmark = pytest.mark.wire

SCENARIO = "sweep_cluster.yaml"
NODE = "akswin000020"
WINDOWS = {"akswin000020", "akswin000021", "akswin000022"}


@pytest.fixture
def sim(sim_factory: Callable[..., RunningSim]) -> RunningSim:
    return sim_factory(SCENARIO)


@pytest.fixture
def cluster(sim: RunningSim) -> KubeCluster:
    configuration, context = load_configuration(KubernetesSettings(kubeconfig=str(sim.kubeconfig)))
    return KubeCluster(configuration, context)


@pytest.fixture
def watches(cluster: KubeCluster) -> Iterator[Callable[[], NodeWatch]]:
    started: list[NodeWatch] = []

    def start() -> NodeWatch:
        watch = NodeWatch(cluster, watch_timeout_s=5, backoff_s=(0.05, 0.2))
        started.append(watch)
        watch.boots(10)
        return watch

    yield start
    for watch in started:
        watch.stop()


def reboot(sim: RunningSim, node: str = NODE) -> str:
    return str(sim.control("POST", f"/sim/v1/hosts/{node}/reboot")["bootID"])


def eventually_boot(watch: NodeWatch, node: str, boot: str, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while watch.boots(1).get(node) != boot:
        assert time.monotonic() < deadline, f"{node} still at {watch.boots(1).get(node)}"
        time.sleep(0.05)


def test_the_first_list_holds_every_windows_node_and_a_reboot_arrives_by_watch(
    sim: RunningSim, watches: Callable[[], NodeWatch]
) -> None:
    watch = watches()
    assert set(watch.boots(1)) == WINDOWS  # the Linux node is not watched

    boot = reboot(sim)
    eventually_boot(watch, NODE, boot)
    assert watch.lists == 1  # seen through the watch, not by listing again
    # the rebooted node is kept whole for the sweep (no read needed); the others are not
    kept = watch.rebooted_nodes(WINDOWS)
    assert list(kept) == [NODE]
    assert kept[NODE]["status"]["nodeInfo"]["bootID"] == boot


def test_a_reboot_during_a_watch_gap_is_caught_up_from_the_resource_version(
    sim: RunningSim, watches: Callable[[], NodeWatch]
) -> None:
    watch = watches()
    # the connection drops and the next attempts fail: the watch backs off meanwhile
    sim.control("POST", "/sim/v1/faults/kube", {"fail_next": 3, "mode": "500"})
    sim.control("POST", "/sim/v1/kube/watches/close")
    boot = reboot(sim)

    eventually_boot(watch, NODE, boot)
    assert watch.lists == 1


def test_a_410_after_compaction_lists_again_and_sees_the_reboot(
    sim: RunningSim, watches: Callable[[], NodeWatch]
) -> None:
    watch = watches()
    sim.control("POST", "/sim/v1/faults/kube", {"fail_next": 2, "mode": "500"})
    sim.control("POST", "/sim/v1/kube/watches/close")
    boot = reboot(sim)
    sim.control("POST", "/sim/v1/kube/compact")  # the gap's history is gone: 410 Gone

    eventually_boot(watch, NODE, boot)
    assert watch.lists == 2


def test_a_restarted_watch_lists_afresh_and_trusts_no_old_resource_version(
    sim: RunningSim, watches: Callable[[], NodeWatch]
) -> None:
    first = watches()
    first.stop()
    boot = reboot(sim)
    sim.control("POST", "/sim/v1/kube/compact")

    second = watches()
    assert second.boots(1)[NODE] == boot
    assert second.lists == 1
