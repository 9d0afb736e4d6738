"""`runtime-wedged`: HCS/containerd stuck on a node: exec fails with "The RPC server is
unavailable", pods stay Terminating long past their grace period, the shim cannot be deleted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from handlers.checks.hostprocess_pod import is_hostprocess
from handlers.context import Context, event_line
from handlers.errors import ExecFailed, WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable, offer
from handlers.transports import KubeObject

CHECK_ID = "runtime-wedged"
DOCS = (
    "https://github.com/microsoft/hcsshim/issues/1680",
    "https://github.com/kubernetes/kubernetes/issues/117086",
    "https://github.com/containerd/containerd/issues/9529",
    "https://github.com/microsoft/Windows-Containers/issues/430",
)
# HCS could not start a process in a container because its RPC endpoint is gone (hcsshim#1680):
# `hcs::System::CreateProcess <id>: The RPC server is unavailable.` (RPC_S_SERVER_UNAVAILABLE,
# 0x6ba / HRESULT 0x800706ba), or the call broke mid-way (0x6be). Only with the HCS call in the
# text: gMSA's nltest prints the same RPC error for an unreachable domain controller.
HCS_RPC = re.compile(
    r"hcs(?:shim)?::System::\w+.{0,300}?"  # i18n: matches HCS's text
    r"(?:RPC server is unavailable|remote procedure call failed"
    r"|0x800706b[ae]|\(0x6b[ae]\))",
    re.I | re.S,
)
# containerd cannot tear down a container's shim (W-C#430, containerd#9529).
SHIM_STUCK = re.compile(
    r"failed to delete shim|close wait error|containers in the non-exited state",  # i18n: regex
    re.I,
)
# The API server sets deletionTimestamp to the time of the delete plus the grace period; kubelet
# confirms within seconds after that. A pod still there another grace period later is stuck.
DEFAULT_GRACE_S = 30
# A command every Windows container image has (cmd.exe), to see whether exec works now.
PROBE_MARK = "winpod-runtime-probe"
PROBE = ["cmd", "/c", "echo", PROBE_MARK]
NAMED_PODS = 10


def pod_ref(pod: KubeObject) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _time(stamp: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def overdue_terminating(pods: list[KubeObject], now: datetime | None = None) -> list[KubeObject]:
    """Pods Terminating another grace period past their deletionTimestamp that no finalizer
    holds (a finalizer keeps a pod whatever the runtime does)."""
    now = now or datetime.now(UTC)
    stuck = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        deadline = _time(meta.get("deletionTimestamp"))
        if deadline is None or meta.get("finalizers"):
            continue
        grace = meta.get("deletionGracePeriodSeconds")
        grace_s = DEFAULT_GRACE_S if grace is None else max(int(grace), DEFAULT_GRACE_S)
        if now > deadline + timedelta(seconds=grace_s):
            stuck.append(pod)
    return stuck


def _node_ready(node: KubeObject) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True"


@check(
    CHECK_ID,
    title=N_("Container runtime (HCS/containerd)"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "On Windows, containerd starts and stops containers through the Host Compute "
            "Service (HCS) and one shim per container. When that chain wedges, nothing new "
            "can run inside the node's containers: exec and exec probes fail with "
            "'hcs::System::CreateProcess …: The RPC server is unavailable', kubelet cannot stop "
            "containers, so deleted pods stay Terminating long past their grace period, and "
            "containerd logs 'failed to delete shim' / 'close wait error'. Kubernetes does not "
            "treat a probe that cannot start as failed, so nothing heals by itself."
        ),
        signals=(
            N_(
                "events: Liveness/Readiness probe errored: … hcs::System::CreateProcess …: The "
                "RPC server is unavailable.: unknown (0x800706ba)"
            ),
            N_(
                "pods on the node Terminating a grace period past their deletionTimestamp "
                "(no finalizer holding them)"
            ),
            N_(
                "events: failed to delete shim, close wait error: context deadline exceeded, "
                "Pod still has one or more containers in the non-exited state"
            ),
            N_("exec into a running pod of the node fails now (cmd /c echo)"),
        ),
        fixes=(
            N_(
                "restart containerd, then kubelet (containerd-restart, high risk: two approvers; "
                "it runs detached because restarting the runtime cuts exec sessions and "
                "HostProcess containers such as kube-proxy or the CNI)"
            ),
            N_("if that does not help: drain the node and reboot it"),
        ),
        links=DOCS,
    ),
)
def runtime_wedged(context: Context) -> list[Finding]:
    if not context.windows_node or context.node is None:
        return not_applicable(CHECK_ID, N_("not on a Windows node"))
    node = str(context.node_name)
    pods = context.pods_on_node()
    events = context.pod_events() if context.kind == "Pod" else context.node_pod_warnings()
    hcs = [e for e in events if HCS_RPC.search(str(e.get("message", "")))]
    shim = [e for e in events if SHIM_STUCK.search(str(e.get("message", "")))]
    evidence = [event_line(e) for e in (hcs[:2] + shim[:2])]
    stuck = overdue_terminating(pods)
    if stuck and not _node_ready(context.node):
        evidence.append(
            _(
                "{count} pod(s) Terminating past their grace period, but {node} is not Ready: "
                "kubelet is not there to finish them (see node-services)"
            ).format(count=len(stuck), node=node)
        )
        stuck = []
    if stuck:
        named = ", ".join(pod_ref(p) for p in stuck[:NAMED_PODS])
        more = len(stuck) - NAMED_PODS
        evidence.append(
            (
                _("Terminating past their grace period on {node}: {pods} and {more} more")
                if more > 0
                else _("Terminating past their grace period on {node}: {pods}")
            ).format(node=node, pods=named, more=more)
        )
    if not hcs and not shim and not stuck:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Container runtime answers"),
                _("no HCS or shim errors and no pod stuck terminating on {node}").format(node=node),
                tuple(evidence),
            )
        ]
    answers, probe_line = _probe(context, pods)
    if probe_line:
        evidence.append(probe_line)
    if not stuck and answers:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Container runtime answers"),
                _(
                    "exec works on {node} again and no pod is stuck terminating: the errors above "
                    "are from before"
                ).format(node=node),
                tuple(evidence),
            )
        ]
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Container runtime wedged (HCS/containerd)"),
            _(
                "containerd/HCS on {node} is stuck: processes cannot be started in its "
                "containers and pods there cannot finish terminating. Restart containerd and "
                "kubelet (containerd-restart runs detached: it cuts exec sessions and "
                "HostProcess containers on the node), or drain and reboot the node."
            ).format(node=node),
            tuple(evidence),
            (offer("containerd-restart", node),),
            DOCS,
        )
    ]


def _probe(context: Context, pods: list[KubeObject]) -> tuple[bool | None, str]:
    """Whether exec into a running pod of the node works now: True, False, or None when no pod
    or no exec transport could tell."""
    pod_exec = context.transports.pod_exec
    candidates = [
        p
        for p in ([context.pod] if context.kind == "Pod" and context.pod else []) + pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        and not is_hostprocess(p)
        and (p.get("spec") or {}).get("containers")
    ]
    if pod_exec is None or not candidates:
        return None, ""
    pod = candidates[0]
    meta, container = pod["metadata"], pod["spec"]["containers"][0].get("name")
    timeout = context.settings.sweep.probe_timeout.total_seconds()
    try:
        result = context.once(
            ("runtime-probe", pod_ref(pod)),
            lambda: pod_exec.run(meta["namespace"], meta["name"], container, PROBE, timeout),
        )
    except ExecFailed as exc:
        return False, _("exec into {pod} fails now: {error}").format(pod=pod_ref(pod), error=exc)
    except WinpodError as exc:
        return None, _("exec into {pod} could not be tried: {error}").format(
            pod=pod_ref(pod), error=exc
        )
    if PROBE_MARK in result.stdout:
        return True, _("exec into {pod} works now (cmd /c echo)").format(pod=pod_ref(pod))
    return False, _("exec into {pod} fails now (exit {code}, no output)").format(
        pod=pod_ref(pod), code=result.exit_code
    )
