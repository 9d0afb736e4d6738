"""`cni-not-ready`: the pod network is not set up on the node: CNI errors in sandbox events, or
the node's CNI pod not Ready, or started only after the pods that failed (after a reboot)."""

from __future__ import annotations

import re
from datetime import datetime

from handlers.context import Context, event_line
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, offer
from handlers.transports import KubeObject

CHECK_ID = "cni-not-ready"
DOCS = (
    "https://github.com/projectcalico/calico/issues/8577",
    "https://github.com/tigera/operator/issues/3193",
    "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",
)
# The stable parts of what kubelet and the CNI plugins say when the pod network is missing:
# the plugin's own failure (`plugin type="calico" … failed (add)`), Calico's unauthorised
# datastore, flannel still waiting for its network, kubelet's "network plugin not ready".
CNI_FAILURE = re.compile(
    r"plugin type=\"?[\w.-]+\"?.{0,80}failed \((add|delete|check)\)"  # i18n: CNI texts
    r"|connection is unauthorized"
    r"|Waiting for the Network to be created"
    r"|NetworkPluginNotReady"
    r"|cni plugin not initialized"
    r"|failed to (set ?up|setup) network for sandbox"
    r"|network is not ready",
    re.I,
)
# DaemonSets that run a Windows node's CNI (Calico, flannel, Antrea; their Windows variants).
CNI_DAEMONSET = re.compile(r"calico-node-windows|flannel.*windows|antrea-agent-windows", re.I)


def cni_pod(pods: list[KubeObject]) -> KubeObject | None:
    """The node's CNI pod: one owned by a known CNI DaemonSet."""
    for pod in pods:
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        if any(
            o.get("kind") == "DaemonSet" and CNI_DAEMONSET.search(str(o.get("name", "")))
            for o in owners
        ):
            return pod
    return None


def is_ready(pod: KubeObject) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _started(pod: KubeObject) -> datetime | None:
    stamp = (pod.get("status") or {}).get("startTime")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _ref(pod: KubeObject) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


@check(
    CHECK_ID,
    title=N_("Pod network (CNI)"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=(
            N_(
                "A Windows pod gets its network from the node's CNI plugin (Calico, flannel, "
                "Azure CNI…). When that plugin is not ready, every new sandbox on the node fails: "
                "Calico's Windows node pod may hold an expired token ('connection is "
                "unauthorized'), "
                "or after a reboot application pods start before calico-node-windows and stay "
                "without a network; flannel waits for its network to be created."
            )
        ),
        signals=(
            N_(
                'FailedCreatePodSandBox: plugin type="calico" … failed (add): error getting '
                "ClusterInformation: connection is unauthorized: Unauthorized"
            ),
            N_("flannel: Waiting for the Network to be created"),
            N_("NetworkPluginNotReady … cni plugin not initialized"),
            N_(
                "the node's CNI pod (calico-node-windows, kube-flannel-ds-windows) not Ready, or "
                "started after the pods that failed"
            ),
        ),
        fixes=(
            N_(
                "delete the node's CNI pod so that its DaemonSet starts a fresh one "
                "(cni-pod-restart)"
            ),
            N_("then delete the pods that failed, so that their controllers recreate them"),
        ),
        links=DOCS,
    ),
)
def cni_not_ready(context: Context) -> list[Finding]:
    if not context.windows_node:
        return [
            Finding(
                CHECK_ID, "ok", _("Not a Windows node"), _("the CNI check is for Windows nodes")
            )
        ]
    node = str(context.node_name)
    pods = context.pods_on_node()
    cni = cni_pod(pods)
    if context.kind == "Pod":
        assert context.pod is not None
        failing = (
            [context.pod] if (context.pod.get("status") or {}).get("phase") != "Running" else []
        )
        events = context.pod_events() if failing else []
    else:
        failing = [p for p in pods if (p.get("status") or {}).get("phase") == "Pending"]
        events = [
            e
            for e in context.node_pod_warnings()
            if (e.get("involvedObject") or {}).get("name")
            in {(p.get("metadata") or {}).get("name") for p in failing}
        ]
    cni_events = [e for e in events if CNI_FAILURE.search(str(e.get("message", "")))]
    evidence = [event_line(e) for e in cni_events[:3]]
    if cni is None:
        evidence.append(
            _("no CNI pod (calico-node-windows, flannel) found on {node}").format(node=node)
        )
    else:
        evidence.append(_cni_line(cni))
    # Without a CNI text, a sandbox that failed on its network while the CNI pod was down, or
    # before the CNI pod started (the reboot race), points here too; other failures do not.
    network_sandbox = [
        e
        for e in events
        if e.get("reason") == "FailedCreatePodSandBox" and "network" in str(e.get("message", ""))
    ]
    late = cni is not None and bool(network_sandbox) and _started_after(cni, failing)
    cni_down = cni is not None and bool(failing) and not is_ready(cni)
    if network_sandbox and not cni_events:
        evidence.insert(0, event_line(network_sandbox[0]))
    if not cni_events and not cni_down and not late:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Pod network ready"),
                _("no CNI error for the pods here, and the node's CNI pod is not behind them"),
                tuple(evidence),
            )
        ]
    if late:
        evidence.append(_("the CNI pod started after the pods that failed (a reboot race)"))
    offers = (offer("cni-pod-restart", node),) if cni is not None else ()
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Pod network not ready (CNI)"),
            (
                _(
                    "new pod sandboxes on {node} fail because its pod network (CNI) is not "
                    "ready: restart the node's CNI pod, then delete the pods that failed"
                )
                if cni is not None
                else _(
                    "new pod sandboxes on {node} fail because its pod network (CNI) is not "
                    "ready; no CNI pod was found on the node: check the CNI DaemonSet"
                )
            ).format(node=node),
            tuple(evidence),
            offers,
            DOCS,
        )
    ]


def _started_after(cni: KubeObject, failing: list[KubeObject]) -> bool:
    cni_started = _started(cni)
    if cni_started is None:
        return False
    return any((started := _started(p)) is not None and started < cni_started for p in failing)


def _cni_line(cni: KubeObject) -> str:
    started = _started(cni)
    ready = is_ready(cni)
    if started and ready:
        line = _("CNI pod {pod}: Ready, started {time} UTC")
    elif started:
        line = _("CNI pod {pod}: not Ready, started {time} UTC")
    else:
        line = _("CNI pod {pod}: Ready") if ready else _("CNI pod {pod}: not Ready")
    return line.format(pod=_ref(cni), time=f"{started:%Y-%m-%d %H:%M:%S}" if started else "")
