"""`csi-proxy`: a CSI node plugin that is not a HostProcess pod cannot reach the host's csi-proxy
service through its named pipes (`\\\\.\\pipe\\csi-proxy-…`)."""

from __future__ import annotations

import re

from handlers.checks.cni_not_ready import is_ready
from handlers.checks.hostprocess_pod import is_hostprocess
from handlers.context import Context, event_line
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable, offer
from handlers.transports import KubeObject

CHECK_ID = "csi-proxy"
DOCS = (
    "https://github.com/kubernetes-csi/csi-proxy",
    "https://github.com/kubernetes-sigs/aws-ebs-csi-driver/issues/1322",
    "https://github.com/Azure/AKS/issues/2568",
    "https://github.com/kubernetes/enhancements/tree/master/keps/sig-windows/3636-windows-csi-host-process-pods",
)
# The pipe in any escaping a log or event gives it: \\.\pipe\csi-proxy-filesystem-v1,
# \\\\.\\\\pipe\\\\csi-proxy-…, //./pipe/csi-proxy-…
CSI_PIPE = re.compile(r"pipe[\\/]+csi-proxy", re.I)
# The sidecar every CSI node plugin runs; DaemonSets named like csi-azuredisk-node-win,
# ebs-csi-node-windows, csi-smb-node-win.
REGISTRAR = "node-driver-registrar"
CSI_WINDOWS_DAEMONSET = re.compile(r"csi.*win|win.*csi", re.I)
SERVICE = "csi-proxy"


def is_csi_node_plugin(pod: KubeObject) -> bool:
    spec = pod.get("spec") or {}
    if any(
        REGISTRAR in str(c.get("name", "")) or REGISTRAR in str(c.get("image", ""))
        for c in spec.get("containers") or []
    ):
        return True
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(
        o.get("kind") == "DaemonSet" and CSI_WINDOWS_DAEMONSET.search(str(o.get("name", "")))
        for o in owners
    )


def pod_ref(pod: KubeObject) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _status_messages(pod: KubeObject) -> list[str]:
    """What the pod's containers last said: waiting messages and the termination message (the
    log tail with terminationMessagePolicy FallbackToLogsOnError)."""
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for holder in (status.get("state") or {}, status.get("lastState") or {}):
            for state in holder.values():
                if isinstance(state, dict) and state.get("message"):
                    found.append(f"{status.get('name')}: {state['message']}")
    return found


@check(
    CHECK_ID,
    title=N_("csi-proxy (Windows CSI node plugins)"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "A CSI node plugin that runs as an ordinary Windows container cannot format disks, "
            "mount volumes or SMB shares itself: it asks the host's csi-proxy service through "
            "named pipes (\\\\.\\pipe\\csi-proxy-filesystem-v1, -disk-, -volume-, -smb-). When "
            "csi-proxy is not installed or not running, the plugin crash-loops with 'open "
            "\\\\.\\pipe\\csi-proxy-filesystem-v1: The system cannot find the file specified.' "
            "and volumes on the node fail to mount. Drivers deployed as HostProcess pods do not "
            "use csi-proxy (KEP-3636)."
        ),
        signals=(
            N_(
                "the node's CSI plugin pod (node-driver-registrar sidecar; "
                "csi-azuredisk-node-win, ebs-csi-node-windows, csi-smb-node-win…) not Ready, "
                "not HostProcess"
            ),
            N_(
                "its containers' or events' text: open \\\\.\\pipe\\csi-proxy-…: The system "
                "cannot find the file specified"
            ),
            N_("FailedMount events: Error while dialing open \\\\.\\pipe\\csi-proxy-…"),
            N_("Get-Service csi-proxy on the node (node-status.ps1): not installed or not Running"),
        ),
        fixes=(
            N_(
                "start the csi-proxy service (csi-proxy-start, medium risk); set it to start "
                "automatically"
            ),
            N_(
                "not installed: install csi-proxy on the node (node image or a csi-proxy "
                "HostProcess DaemonSet), or deploy the CSI driver's HostProcess variant"
            ),
        ),
        links=DOCS,
    ),
)
def csi_proxy(context: Context) -> list[Finding]:
    if not context.windows_node or context.node is None:
        return not_applicable(CHECK_ID, N_("not on a Windows node"))
    node = str(context.node_name)
    plugins = [p for p in context.pods_on_node() if is_csi_node_plugin(p)]
    needing = [p for p in plugins if not is_hostprocess(p)]
    events = context.pod_events() if context.kind == "Pod" else context.node_pod_warnings()
    texts = [event_line(e) for e in events if CSI_PIPE.search(str(e.get("message", "")))]
    texts += [m for p in needing for m in _status_messages(p) if CSI_PIPE.search(m)]
    failing = [p for p in needing if not is_ready(p)]
    evidence = texts[:3] + [_plugin_line(p) for p in plugins]
    if plugins and not needing:
        return [
            _ok(
                _("the CSI node plugins on {node} run as HostProcess pods").format(node=node),
                evidence,
            )
        ]
    if not texts and not failing:
        detail = (
            _("nothing on {node} waits for csi-proxy: the CSI node plugins there are Ready")
            if plugins
            else _("nothing on {node} waits for csi-proxy: no CSI node plugin runs there")
        )
        return [_ok(detail.format(node=node), evidence)]
    try:
        services = context.node_status().get("services") or {}
        state: str | None = str(services[SERVICE]) if SERVICE in services else None
        evidence.append(
            _("service {service}: {state}").format(service=SERVICE, state=state)
            if state
            else _("service {service}: not installed").format(service=SERVICE)
        )
    except WinpodError as exc:
        evidence.append(
            _("service {service}: could not be read ({error})").format(service=SERVICE, error=exc)
        )
        return [
            Finding(
                CHECK_ID,
                "warning",
                _("CSI node plugin may lack csi-proxy"),
                (
                    _(
                        "the CSI node plugin on {node} is not a HostProcess pod and cannot open "
                        "csi-proxy's pipe; whether the csi-proxy service runs could not be read"
                    )
                    if texts
                    else _(
                        "the CSI node plugin on {node} is not a HostProcess pod and is not Ready; "
                        "whether the csi-proxy service runs could not be read"
                    )
                ).format(node=node),
                tuple(evidence),
                (),
                DOCS,
            )
        ]
    if state == "Running":
        if not failing:
            return [
                _ok(
                    _("csi-proxy runs on {node} and its CSI plugins are Ready").format(node=node),
                    evidence,
                )
            ]
        if not texts:
            return [
                _ok(
                    _("csi-proxy runs on {node}; the plugins fail for another reason").format(
                        node=node
                    ),
                    evidence,
                )
            ]
        return [
            Finding(
                CHECK_ID,
                "warning",
                _("CSI plugin cannot use csi-proxy"),
                _(
                    "csi-proxy runs on {node}, yet its CSI plugin still cannot open csi-proxy's "
                    "pipe: the driver may want an API version (v1, v1beta1) this csi-proxy does "
                    "not serve. Upgrade csi-proxy, or deploy the driver's HostProcess variant."
                ).format(node=node),
                tuple(evidence),
                (),
                DOCS,
            )
        ]
    return [_not_running(node, state, evidence)]


def _plugin_line(pod: KubeObject) -> str:
    if is_hostprocess(pod):
        line = (
            _("CSI node plugin {pod}: Ready, HostProcess (no csi-proxy needed)")
            if is_ready(pod)
            else _("CSI node plugin {pod}: not Ready, HostProcess (no csi-proxy needed)")
        )
    else:
        line = (
            _("CSI node plugin {pod}: Ready")
            if is_ready(pod)
            else _("CSI node plugin {pod}: not Ready")
        )
    return line.format(pod=pod_ref(pod))


def _ok(detail: str, evidence: list[str]) -> Finding:
    return Finding(CHECK_ID, "ok", _("csi-proxy not in the way"), detail, tuple(evidence))


def _not_running(node: str, state: str | None, evidence: list[str]) -> Finding:
    # Offered only for a service that exists and is stopped: a pending or paused one is in
    # someone's hands, a missing one must be installed.
    startable = state == "Stopped"
    if state is None:
        advice = _(
            "csi-proxy is not installed: install it on the node (node image, or a csi-proxy "
            "HostProcess DaemonSet), or deploy the CSI driver's HostProcess variant"
        )
    elif startable:
        advice = _("start the csi-proxy service (and set it to start automatically)")
    else:
        advice = _("the csi-proxy service is {state}: look at it on the node").format(state=state)
    return Finding(
        CHECK_ID,
        "error",
        _("CSI node plugin cannot reach csi-proxy"),
        _(
            "the CSI node plugin on {node} is not a HostProcess pod and needs the host's "
            "csi-proxy service, which is not running: volumes there cannot be mounted; {advice}."
        ).format(node=node, advice=advice),
        tuple(evidence),
        (offer("csi-proxy-start", node),) if startable else (),
        DOCS,
    )
