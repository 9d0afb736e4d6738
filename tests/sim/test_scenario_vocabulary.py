"""The scenario vocabulary the advice checks read: /version from the kubelets, RuntimeClasses,
the gMSA CRD only when present, default memory reservations and `WindowsHost.spec.memory`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from sim_process import SCENARIOS, RunningSim, start_sim

from sim.scenario import ScenarioError, load_scenario

SCENARIO = SCENARIOS / "check_image_os_mismatch.yaml"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SCENARIOS / "check_os_lifecycle.yaml", tmp_path_factory.mktemp("vocab"))
    try:
        yield running
    finally:
        running.stop()


def _client(sim: RunningSim) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(sim.kubeconfig), client_configuration=configuration)
    return k8s.ApiClient(configuration)


@pytest.mark.wire
def test_version_is_the_newest_kubelet(sim: RunningSim) -> None:
    version = k8s.VersionApi(_client(sim)).get_code()

    assert (version.git_version, version.major, version.minor) == ("v1.33.2", "1", "33")


@pytest.mark.wire
def test_windows_nodes_reserve_memory_unless_the_scenario_says(sim: RunningSim) -> None:
    node = k8s.CoreV1Api(_client(sim)).read_node("akswin2022")

    assert node.status.capacity["memory"] == "16Gi"
    assert node.status.allocatable["memory"] == "13108Mi"  # 16384 - 16384 // 5


@pytest.mark.wire
def test_without_gmsa_specs_the_crd_is_absent_from_discovery(sim: RunningSim) -> None:
    groups = k8s.ApisApi(_client(sim)).get_api_versions()

    names = {group.name for group in groups.groups}
    assert "node.k8s.io" in names
    assert "windows.k8s.io" not in names


def test_runtime_classes_and_host_memory_load() -> None:
    world = load_scenario(SCENARIO)

    hyperv = world.find("runtimeclasses", None, "runhcs-wcow-hypervisor")
    assert hyperv is not None and hyperv["handler"] == "runhcs-wcow-hypervisor"
    assert world.installed_crds == set()
    gmsa = load_scenario(SCENARIOS / "check_gmsa.yaml")
    assert gmsa.installed_crds == {"gmsacredentialspecs"}
    memory = load_scenario(SCENARIOS / "check_memory_overcommit.yaml")
    assert memory.hosts["akswin-lowmem"].snapshot()["memory"] == {
        "totalMB": 16384,
        "availableMB": 310,
    }


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            "apiVersion: sim.winpod.io/v1\nkind: WindowsHost\nmetadata: {name: w1}\n"
            "spec: {memory: {availableMB: lots}}\n",
            "spec.memory.availableMB",
        ),
        (
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            "metadata: {name: widgets.example.com}\n",
            "metadata.name",
        ),
    ],
)
def test_bad_vocabulary_names_the_field(tmp_path: Path, document: str, field: str) -> None:
    scenario = tmp_path / "bad.yaml"
    node = "apiVersion: v1\nkind: Node\nmetadata: {name: w1, labels: {kubernetes.io/os: windows}}\n"
    scenario.write_text(node + "---\n" + document)

    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_scenario(scenario)
