"""`node-services`: kubelet, kube-proxy or the container runtime is not running on the node."""

from __future__ import annotations

from handlers import hns
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer

CHECK_ID = "node-services"
DOCS = ("https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",)


@check(
    CHECK_ID,
    title=N_("Node services"),
    scopes=("node", "pod"),
    explanation=Explanation(
        cause=(
            N_(
                "A Windows node needs kubelet, kube-proxy and containerd running; without "
                "kube-proxy, Services stop working in its pods, without the others pods stop being "
                "created. kube-proxy is a Windows service (kubeproxy on AKS and aks-engine, "
                "kube-proxy with kubeadm and Calico) or a HostProcess pod (sig-windows-tools)."
            )
        ),
        signals=(
            N_(
                "Get-Service kubelet, kubeproxy, kube-proxy, containerd on the node "
                "(node-status.ps1)"
            ),
            N_("a kube-proxy pod in kube-system on the node when there is no kube-proxy service"),
        ),
        fixes=(
            N_(
                "kube-proxy-restart restarts kube-proxy's service, or deletes its HostProcess pod "
                "so that its DaemonSet starts a new one"
            ),
            N_(
                "kubelet / containerd: look at their logs on the node (C:\\k\\*.log) and start them"
            ),
        ),
        links=DOCS,
    ),
)
def node_services(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    try:
        services = context.node_status().get("services") or {}
    except WinpodError as exc:
        return could_not_check(
            CHECK_ID, _("the services on {node}").format(node=context.node_name), exc
        )
    node = context.node_name or ""
    states = {"kubelet": str(services.get("kubelet", "NotFound"))}
    kube_proxy = hns.kube_proxy_service(services)
    restartable = True
    if kube_proxy is not None:
        states[kube_proxy] = str(services[kube_proxy])
    else:
        kube_proxy, state, restartable = _kube_proxy_pod(context)
        states[kube_proxy] = state
    states["containerd"] = str(services.get("containerd", "NotFound"))
    evidence = tuple(f"{name}: {state}" for name, state in states.items())
    down = [name for name, state in states.items() if state not in ("Running", "Running, Ready")]
    if not down:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("{listed} are running").format(listed=_listed(list(states))),
                "",
                evidence,
            )
        ]
    offered = kube_proxy in down and restartable
    remediations = (offer("kube-proxy-restart", node),) if offered else ()
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Not running on {node}: {services}").format(node=node, services=", ".join(down)),
            _(
                "Pods on this node lose Services without kube-proxy and cannot be "
                "created or managed without kubelet and containerd."
            ),
            evidence,
            remediations,
            DOCS,
        )
    ]


def _kube_proxy_pod(context: Context) -> tuple[str, str, bool]:
    """(evidence name, state, whether a restart can help) for kube-proxy without a service."""
    try:
        pod = hns.kube_proxy_pod(context.transports.cluster, context.node_name or "")
    except WinpodError as exc:
        return (
            "kube-proxy",
            _("no service, and its pod could not be read ({error})").format(error=exc),
            False,
        )
    if pod is None:
        # Neither a service nor a pod: there is nothing a restart could start.
        return (
            "kube-proxy",
            _("not installed (no kubeproxy or kube-proxy service, no pod)"),
            False,
        )
    phase = (pod.get("status") or {}).get("phase")
    state = "Running, Ready" if hns.pod_ready(pod) else _("{phase}, not Ready").format(phase=phase)
    return _("kube-proxy pod {pod}").format(pod=pod["metadata"]["name"]), state, True


def _listed(names: list[str]) -> str:
    return _("{names} and {last}").format(names=", ".join(names[:-1]), last=names[-1])
