"""A node's container runtime and csi-proxy as their failures look from the cluster (SPEC §10).

`runtime: wedged` is HCS/containerd stuck (hcsshim#1680, k/k#117086, containerd#9529): every exec
into the node's pods fails with HCS's "The RPC server is unavailable", and a pod deleted on the
node keeps its deletionTimestamp (Terminating) instead of going away, because kubelet cannot stop
its containers. Restarting containerd cures both: the stuck pods finish terminating.

A CSI node plugin that is not a HostProcess pod talks to the host through csi-proxy's named
pipes; while the `csi-proxy` service is not running it crash-loops. The scenario describes the
plugin pod's failure (its status and events); starting the service lets its next start succeed.
"""

from __future__ import annotations

import copy
import secrets
from datetime import UTC, datetime, timedelta

from sim.world import Obj, WindowsHost, World, now_iso

DEFAULT_GRACE_S = 30
# The sidecar every CSI node plugin runs: it registers the driver's socket with kubelet.
REGISTRAR = "node-driver-registrar"


def wedged_host(world: World, pod: Obj) -> WindowsHost | None:
    """The pod's Windows host when its runtime is wedged."""
    host = world.hosts.get(str((pod.get("spec") or {}).get("nodeName") or ""))
    return host if host is not None and host.runtime == "wedged" else None


def exec_failure(pod: Obj) -> Obj:
    """The status kubelet's streaming server sends when containerd cannot start the exec: an
    InternalError wrapping containerd's CRI error, which wraps HCS's."""
    container_id = _container_id(pod)
    cause = (
        "error executing command in container: failed to exec in container: failed to start "
        f'exec "{secrets.token_hex(32)}": hcs::System::CreateProcess {container_id}: '
        "The RPC server is unavailable.: unknown"
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }


def _container_id(pod: Obj) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        container_id = str(status.get("containerID") or "")
        if container_id:
            return container_id.split("://", 1)[-1]
    return secrets.token_hex(32)


def stays_terminating(world: World, pod: Obj, grace_s: int | None) -> Obj | None:
    """A graceful delete of a pod on a wedged node: the API server sets deletionTimestamp (now +
    the grace period) and kubelet never confirms the containers stopped, so the pod stays. Returns
    the pod as it now is, or None when the delete goes through (healthy runtime, or a forced
    delete with grace 0, which the API server honours without kubelet)."""
    if wedged_host(world, pod) is None or grace_s == 0:
        return None
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        return copy.deepcopy(pod)
    if grace_s is None:
        grace_s = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
    deadline = datetime.now(UTC) + timedelta(seconds=grace_s)
    return world.patch(
        "pods",
        meta.get("namespace"),
        meta["name"],
        {
            "metadata": {
                "deletionTimestamp": deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "deletionGracePeriodSeconds": grace_s,
            }
        },
        "application/merge-patch+json",
    )


def restart_containerd(world: World, host: WindowsHost) -> list[str]:
    """containerd restarted: the runtime answers again and kubelet finishes the pods that were
    stuck terminating on this host (they go away). Returns their namespace/name."""
    host.runtime = "ok"
    gone = []
    for pod in list(world.iter("pods")):
        meta = pod["metadata"]
        if (pod.get("spec") or {}).get("nodeName") == host.name and meta.get("deletionTimestamp"):
            world.delete("pods", meta.get("namespace"), meta["name"])
            gone.append(f"{meta.get('namespace')}/{meta['name']}")
    return gone


def is_csi_node_plugin(pod: Obj) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    return any(
        REGISTRAR in str(c.get("name", "")) or f"csi-{REGISTRAR}" in str(c.get("image", ""))
        for c in containers
    )


def _hostprocess(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    holders = [spec, *(spec.get("containers") or [])]
    return any(
        ((h.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
        for h in holders
    )


def csi_proxy_started(world: World, host: WindowsHost) -> list[str]:
    """csi-proxy runs again: the node's CSI plugin pods that need it (not HostProcess) start
    cleanly on their next restart: Running and Ready. Returns their namespace/name."""
    started = now_iso()
    fixed = []
    for pod in list(world.iter("pods")):
        if (pod.get("spec") or {}).get("nodeName") != host.name:
            continue
        if not is_csi_node_plugin(pod) or _hostprocess(pod):
            continue
        meta = pod["metadata"]
        updated = copy.deepcopy(pod)
        restarts = {
            c.get("name"): int(c.get("restartCount") or 0)
            for c in (pod.get("status") or {}).get("containerStatuses") or []
        }
        updated["status"] = {
            **(pod.get("status") or {}),
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": started}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "image": c.get("image"),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": restarts.get(c.get("name"), 0) + 1,
                    "state": {"running": {"startedAt": started}},
                }
                for c in (pod.get("spec") or {}).get("containers") or []
            ],
        }
        world.replace("pods", meta.get("namespace"), meta["name"], updated)
        fixed.append(f"{meta.get('namespace')}/{meta['name']}")
    return fixed
