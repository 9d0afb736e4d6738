"""kube-proxy as a HostProcess DaemonSet pod (sig-windows-tools; SPEC §10, §16): when its pod
on a `kubeProxy: hostprocess-pod` host is deleted, the DaemonSet controller creates a
replacement, which starts (Running, Ready) a moment later and re-programs the node's HNS load
balancers, as a started kube-proxy does."""

from __future__ import annotations

import asyncio
import copy
import secrets

from sim.host_scripts import program_policies
from sim.network import is_kube_proxy_pod
from sim.world import Obj, Resource, World, now_iso

# How long the replacement pod takes to start.
START_S = 0.5


def install(world: World) -> None:
    world.after_delete.append(lambda resource, obj: _on_delete(world, resource, obj))


def _on_delete(world: World, resource: Resource, pod: Obj) -> None:
    if resource.plural != "pods" or not is_kube_proxy_pod(pod):
        return
    node = (pod.get("spec") or {}).get("nodeName")
    host = world.hosts.get(str(node))
    if host is None or host.kube_proxy != "hostprocess-pod":
        return
    meta = pod["metadata"]
    base = meta.get("generateName") or meta["name"].rsplit("-", 1)[0] + "-"
    replacement = {
        "metadata": {
            key: copy.deepcopy(value)
            for key, value in meta.items()
            if key in ("namespace", "labels", "annotations", "ownerReferences", "generateName")
        },
        "spec": copy.deepcopy(pod.get("spec") or {}),
        "status": {"phase": "Pending", "hostIP": host.address, "startTime": now_iso()},
    }
    replacement["metadata"]["name"] = base + secrets.token_hex(3)[:5]
    created = world.create("pods", meta["namespace"], replacement)
    name = created["metadata"]["name"]

    def start() -> None:
        if world.find("pods", meta["namespace"], name) is None:
            return
        containers = (created.get("spec") or {}).get("containers") or []
        world.patch(
            "pods",
            meta["namespace"],
            name,
            {
                "status": {
                    "phase": "Running",
                    "podIP": host.address,  # hostNetwork: the node's address
                    "podIPs": [{"ip": host.address}],
                    "conditions": [
                        {"type": t, "status": "True"}
                        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                    ],
                    "containerStatuses": [
                        {
                            "name": c.get("name", "kube-proxy"),
                            "image": c.get("image", ""),
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "state": {"running": {"startedAt": now_iso()}},
                        }
                        for c in containers
                    ],
                }
            },
            "application/merge-patch+json",
        )
        program_policies(world, host)
        host.history.append(f"kube-proxy pod {name} started")

    try:
        asyncio.get_running_loop().call_later(START_S, start)
    except RuntimeError:  # no event loop (a world used directly, as in unit tests)
        start()
