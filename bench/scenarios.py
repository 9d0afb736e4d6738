"""Big scenarios generated on the fly: a Windows fleet for the sweep, seed copies for diagnose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from bench.harness import ROOT

SEED = ROOT / "sim" / "scenarios" / "seed.yaml"
APP_IMAGE = "mcr.microsoft.com/dotnet/framework/aspnet:4.8-windowsservercore-ltsc2019"
PODS_PER_NODE = 10
# With two or more running pods a node's DNS works despite stale policies (the keeper
# workaround), so a broken node carries exactly one.
PODS_PER_BROKEN_NODE = 1


def node_name(index: int) -> str:
    return f"akswin{index:06d}"


def rebooted_nodes(nodes: int, rebooted: int) -> list[str]:
    """The nodes the sweep benchmark reboots, spread over the fleet."""
    step = max(1, nodes // rebooted)
    return [node_name(index) for index in range(0, nodes, step)][:rebooted]


def fleet(nodes: int, rebooted: int) -> Iterator[dict[str, Any]]:
    """`nodes` healthy Windows nodes, never rebooted (the benchmark reboots `rebooted` of
    them through the control API); those carry one pod, the others PODS_PER_NODE."""
    yield {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "aks-linux-0"}}
    yield {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleet"}}
    to_reboot = set(rebooted_nodes(nodes, rebooted))
    for index in range(nodes):
        name = node_name(index)
        yield {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": "windows"}},
            "status": {"nodeInfo": {"bootID": "1"}},
        }
        for pod in range(PODS_PER_BROKEN_NODE if name in to_reboot else PODS_PER_NODE):
            yield {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"app-{index:06d}-{pod}", "namespace": "fleet"},
                "spec": {
                    "nodeName": name,
                    "nodeSelector": {"kubernetes.io/os": "windows"},
                    "containers": [{"name": "app", "image": APP_IMAGE}],
                },
            }


def seed_copies(copies: int) -> Iterator[dict[str, Any]]:
    """The seed scenario `copies` times over, each copy's Windows nodes, pods and events renamed
    `…-cNN`, so that every copy keeps a node of its own (one pod on the DNS-broken node, and so
    on). The Linux node and the Hyper-V host stay single: VMs are told apart by name."""
    documents = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    shared = {"aks-linux-0", "hv01"}
    copied = [d for d in documents if d["metadata"]["name"] not in shared]
    yield from (d for d in documents if d["metadata"]["name"] in shared)
    windows = {d["metadata"]["name"] for d in copied if d["kind"] == "Node"}
    for index in range(copies):
        suffix = f"-c{index:02d}"
        for document in copied:
            yield _renamed(document, windows, suffix)


def _renamed(document: dict[str, Any], nodes: set[str], suffix: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    copy["metadata"]["name"] += suffix
    spec = copy.get("spec") or {}
    if spec.get("nodeName") in nodes:
        spec["nodeName"] += suffix
    involved = copy.get("involvedObject") or {}
    if involved.get("kind") == "Node":
        copy["message"] = str(copy["message"]).replace(involved["name"], involved["name"] + suffix)
    if involved:
        involved["name"] += suffix
    return copy


def seed_problem_pods(copies: int) -> list[str]:
    """NAMESPACE/POD of every broken pod of every copy, the seed's problems interleaved."""
    documents = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    problems = [
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in documents
        if d["kind"] == "Pod" and d["metadata"]["name"] != "iis-healthy"
    ]
    return [f"{ref}-c{index:02d}" for index in range(copies) for ref in problems]
