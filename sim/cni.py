"""The node's CNI pod as its DaemonSet and the CNI plugin behave: a deleted CNI pod (one owned by
a DaemonSet named like calico-node-windows, kube-flannel-ds-windows or antrea-agent-windows) is
replaced at once by a fresh, Ready one, and the pods of that node that waited for their network
(Pending) get their sandbox: they run.

The scenario sets the CNI pod's readiness (`status.conditions` Ready) and the failing pods'
events; this module only models what restarting the CNI pod changes.
"""

from __future__ import annotations

import copy
import re
import secrets

from sim.world import Obj, World, now_iso

CNI_DAEMONSET = re.compile(r"calico-node-windows|flannel.*windows|antrea-agent-windows", re.I)


def daemonset_of(pod: Obj) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "DaemonSet" and CNI_DAEMONSET.search(str(owner.get("name", ""))):
            return str(owner["name"])
    return None


def after_pod_deleted(world: World, pod: Obj) -> None:
    """A CNI pod was deleted: its replacement starts Ready and the node's pods get a network."""
    daemonset = daemonset_of(pod)
    node = (pod.get("spec") or {}).get("nodeName")
    if daemonset is None or not node:
        return
    started = now_iso()
    meta = pod["metadata"]
    replacement: Obj = {
        "metadata": {
            "name": f"{daemonset}-{secrets.token_hex(3)[:5]}",
            "namespace": meta.get("namespace"),
            "labels": copy.deepcopy(meta.get("labels") or {}),
            "ownerReferences": copy.deepcopy(meta.get("ownerReferences") or []),
        },
        "spec": copy.deepcopy(pod.get("spec") or {}),
        "status": _running(pod, started),
    }
    world.create("pods", meta.get("namespace"), replacement)
    for waiting in list(world.iter("pods")):
        status = waiting.get("status") or {}
        if (waiting.get("spec") or {}).get("nodeName") != node or status.get("phase") != "Pending":
            continue
        updated = copy.deepcopy(waiting)
        updated["status"] = _running(waiting, started)
        wmeta = waiting["metadata"]
        world.replace("pods", wmeta.get("namespace"), wmeta["name"], updated)


def _running(pod: Obj, started: str) -> Obj:
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "phase": "Running",
        "startTime": started,
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
        ],
        "containerStatuses": [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": started}},
            }
            for c in containers
        ],
    }
