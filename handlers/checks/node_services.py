"""`node-services`: kubelet, kube-proxy or the container runtime is not running on the node."""

from __future__ import annotations

from handlers.context import Context
from handlers.errors import WinpodError
from handlers.model import Finding
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer

CHECK_ID = "node-services"
SERVICES = ("kubelet", "kubeproxy", "containerd")
DOCS = ("https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",)


@check(
    CHECK_ID,
    title="Node services",
    scopes=("node", "pod"),
    explanation=Explanation(
        cause=(
            "A Windows node needs kubelet, kube-proxy (service kubeproxy) and containerd running; "
            "without kube-proxy, Services stop working in its pods, without the others pods stop "
            "being created."
        ),
        signals=("Get-Service kubelet, kubeproxy, containerd over WinRM",),
        fixes=(
            "kube-proxy-restart restarts kubeproxy",
            "kubelet / containerd: look at their logs on the node (C:\\k\\*.log) and start them",
        ),
        links=DOCS,
    ),
)
def node_services(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, "not a Windows node")
    try:
        services = context.node_status().get("services") or {}
    except WinpodError as exc:
        return could_not_check(CHECK_ID, f"the services on {context.node_name}", exc)
    states = {name: str(services.get(name, "missing")) for name in SERVICES}
    evidence = tuple(f"{name}: {state}" for name, state in states.items())
    down = [name for name, state in states.items() if state != "Running"]
    if not down:
        return [
            Finding(CHECK_ID, "ok", "kubelet, kubeproxy and containerd are running", "", evidence)
        ]
    node = context.node_name or ""
    remediations = (offer("kube-proxy-restart", node),) if "kubeproxy" in down else ()
    return [
        Finding(
            CHECK_ID,
            "error",
            f"Not running on {node}: {', '.join(down)}",
            "Pods on this node lose Services without kube-proxy and cannot be created or "
            "managed without kubelet and containerd.",
            evidence,
            remediations,
            DOCS,
        )
    ]
