"""WindowsHost networks, HNS API, kube-proxy form and outage knobs in scenario files (SPEC §16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim import kube_proxy
from sim.scenario import ScenarioError, load_scenario

NODE = """apiVersion: v1
kind: Node
metadata: {name: win0, labels: {kubernetes.io/os: windows}}
---
apiVersion: sim.winpod.io/v1
kind: WindowsHost
metadata: {name: win0}
"""


def host(tmp_path: Path, spec: str) -> dict[str, Any]:
    path = tmp_path / "scenario.yaml"
    path.write_text(NODE + spec + "\n", encoding="utf-8")
    return load_scenario(path).hosts["win0"].snapshot()


def test_networks_default_by_network_type(tmp_path: Path) -> None:
    aks = host(tmp_path, "spec: {}")
    flannel = host(tmp_path, "spec: {network: {type: overlay}}")

    assert [(n["name"], n["type"], n["management"]) for n in aks["networks"]] == [
        ("ext", "L2Bridge", True),
        ("azure", "L2Bridge", False),
    ]
    assert [(n["name"], n["type"], n["management"]) for n in flannel["networks"]] == [
        ("External", "L2Bridge", True),
        ("vxlan0", "Overlay", False),
    ]
    assert aks["managementUp"] is True and aks["hnsApi"] == "v1"


def test_kube_proxy_services_are_keyed_by_their_windows_names(tmp_path: Path) -> None:
    assert host(tmp_path, "spec: {}")["services"] == {
        "kubelet": "Running",
        "containerd": "Running",
        "kubeproxy": "Running",
    }
    kubeadm = host(tmp_path, "spec: {services: {kube-proxy: Stopped}}")["services"]
    assert kubeadm == {"kubelet": "Running", "containerd": "Running", "kube-proxy": "Stopped"}
    pod = host(tmp_path, "spec: {kubeProxy: hostprocess-pod}")
    assert pod["services"] == {"kubelet": "Running", "containerd": "Running"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("spec: {network: {type: vxlan}}", "spec.network.type"),
        ("spec: {hnsApi: v3}", "spec.hnsApi"),
        ("spec: {managementOutage: soon}", "spec.managementOutage"),
        ("spec: {kubeProxy: hostprocess-pod, services: {kubeproxy: Running}}", "spec.services"),
        ("spec: {networks: [{type: L2Bridge}]}", "spec.networks"),
    ],
)
def test_bad_values_name_their_field(tmp_path: Path, spec: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        host(tmp_path, spec)


KUBE_PROXY_POD = """---
apiVersion: v1
kind: Pod
metadata: {name: kube-proxy-windows-abcde, namespace: kube-system, labels: {k8s-app: kube-proxy}}
spec:
  nodeName: win0
  hostNetwork: true
  containers: [{name: kube-proxy, image: "sigwindowstools/kube-proxy:v1.30.4"}]
"""


def test_a_deleted_kube_proxy_pod_is_replaced_and_reprograms_hns(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    spec = "spec: {kubeProxy: hostprocess-pod, dns: stale-policies}\n"
    path.write_text(NODE + spec + KUBE_PROXY_POD, encoding="utf-8")
    world = load_scenario(path)
    kube_proxy.install(world)

    world.delete("pods", "kube-system", "kube-proxy-windows-abcde")

    [replacement] = [
        p
        for p in world.iter("pods", "kube-system")
        if p["metadata"]["labels"] == {"k8s-app": "kube-proxy"}
    ]
    assert replacement["metadata"]["name"].startswith("kube-proxy-windows-")
    assert replacement["metadata"]["name"] != "kube-proxy-windows-abcde"
    assert replacement["status"]["phase"] == "Running"
    assert world.hosts["win0"].dns == "ok"
