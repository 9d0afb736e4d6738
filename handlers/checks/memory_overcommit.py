"""`memory-overcommit`: pods without memory limits on a Windows node that can run out of memory."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import Context, event_line
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable
from handlers.transports import KubeObject

CHECK_ID = "memory-overcommit"
DOCS = (
    "https://kubernetes.io/docs/concepts/configuration/windows-resource-management/#resource-management-memory",
    "https://kubernetes.io/docs/concepts/configuration/windows-resource-management/#resource-reservation",
    "https://github.com/Azure/AKS/issues/1941",
    "https://github.com/Azure/AKS/issues/1461",
)
# Windows' text for ERROR_COMMITMENT_LIMIT (1455, 0x800705AF): the commit charge hit the limit.
PAGING_FILE = re.compile(
    r"paging file is too small|0x800705af|ERROR_COMMITMENT_LIMIT",  # i18n: Windows' text
    re.I,
)
# Available memory below this share of the node's memory (or below LOW_AVAILABLE_MB) is low.
LOW_AVAILABLE_SHARE = 0.10
LOW_AVAILABLE_MB = 1024
NAMED_PODS = 10
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?$")
_UNIT = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
}


def mebibytes(quantity: object) -> int | None:
    """A Kubernetes memory quantity ("16Gi", "16777216Ki", "17179869184") in MiB, or None."""
    match = _QUANTITY.match(str(quantity or "").strip())
    if match is None:
        return None
    return int(float(match[1]) * _UNIT[match[2]] / 2**20)


def has_memory_limit(pod: KubeObject) -> bool:
    """Whether every app container of the pod sets resources.limits.memory."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return bool(containers) and all(
        ((c.get("resources") or {}).get("limits") or {}).get("memory") for c in containers
    )


def _pod_ref(pod: KubeObject) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


@dataclass(frozen=True)
class MemoryPicture:
    """What a diagnosis learnt about the node's memory."""

    capacity_mb: int | None
    allocatable_mb: int | None
    total_mb: int | None
    available_mb: int | None

    @property
    def unreserved(self) -> bool:
        return (
            self.capacity_mb is not None
            and self.allocatable_mb is not None
            and self.allocatable_mb >= self.capacity_mb
        )

    @property
    def low(self) -> bool:
        if self.available_mb is None:
            return False
        total = self.total_mb or self.capacity_mb or 0
        return self.available_mb < max(LOW_AVAILABLE_MB, total * LOW_AVAILABLE_SHARE)


@check(
    CHECK_ID,
    title=N_("Memory overcommit"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=(
            N_(
                "Windows has no out-of-memory process killer: when pods use more memory than the "
                "node has, Windows pages, then fails to create or terminate pods "
                "('The paging file is too small for this operation to complete.'). Pods without a "
                "memory limit can take it all, and a node whose allocatable memory equals its "
                "capacity keeps nothing back for Windows, kubelet and containerd."
            )
        ),
        signals=(
            N_("pods on the node without resources.limits.memory"),
            N_("node status: allocatable memory equal to capacity (no system/kube reserved)"),
            N_("low available memory on the node (node-memory.ps1: Win32_OperatingSystem)"),
            N_("event: The paging file is too small for this operation to complete (0x800705AF)"),
        ),
        fixes=(
            N_("give every container resources.limits.memory (and requests close to real use)"),
            N_(
                "reserve memory for the system: kubelet --system-reserved=memory=2Gi and "
                "--kube-reserved=memory=… (or the node pool's kubelet config)"
            ),
            N_("move memory-heavy pods to larger nodes, or add nodes"),
        ),
        links=DOCS,
    ),
)
def memory_overcommit(context: Context) -> list[Finding]:
    if not context.windows_node or context.node is None:
        return not_applicable(CHECK_ID, N_("not on a Windows node"))
    node = context.node_name
    status = context.node.get("status") or {}
    evidence: list[str] = []
    picture, script_problem = _memory_picture(context, status)
    if picture.capacity_mb is not None and picture.allocatable_mb is not None:
        reserved = picture.capacity_mb - picture.allocatable_mb
        evidence.append(
            f"node {node}: memory capacity {picture.capacity_mb} MiB, allocatable "
            f"{picture.allocatable_mb} MiB"
            + (" (no system/kube reservation)" if picture.unreserved else f" ({reserved} reserved)")
        )
    if picture.available_mb is not None:
        evidence.append(
            (
                _("node {node}: {available} MB of {total} MB available (low)")
                if picture.low
                else _("node {node}: {available} MB of {total} MB available")
            ).format(node=node, available=picture.available_mb, total=picture.total_mb)
        )
    elif script_problem:
        evidence.append(_("available memory unknown: {problem}").format(problem=script_problem))
    active = [
        p
        for p in context.pods_on_node()
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    unlimited = [_pod_ref(p) for p in active if not has_memory_limit(p)]
    if unlimited:
        named = ", ".join(unlimited[:NAMED_PODS])
        more = len(unlimited) - NAMED_PODS
        evidence.append(
            (
                _("pods without a memory limit on {node}: {pods} and {more} more")
                if more > 0
                else _("pods without a memory limit on {node}: {pods}")
            ).format(node=node, pods=named, more=more)
        )
    paging = [e for e in _events(context) if PAGING_FILE.search(str(e.get("message", "")))]
    evidence.extend(event_line(e) for e in paging[:3])
    at_risk = picture.unreserved or picture.low
    if paging or (unlimited and at_risk):
        return [_overcommitted(node, picture, unlimited, bool(paging), tuple(evidence))]
    if at_risk:
        why = (
            _("has no memory reserved for the system")
            if picture.unreserved
            else _("is low on memory")
        )
        return [
            Finding(
                CHECK_ID,
                "info",
                _("Node memory is not protected"),
                _(
                    "{node} {why}, but every pod on it has a memory limit. Reserve memory "
                    "for Windows, kubelet and containerd (--system-reserved / "
                    "--kube-reserved)."
                ).format(node=node, why=why),
                tuple(evidence),
                (),
                DOCS,
            )
        ]
    return [
        Finding(
            CHECK_ID,
            "ok",
            _("Node memory is not overcommitted"),
            (
                _("{node} keeps memory reserved for the system and has memory available")
                if unlimited
                else _("every pod on {node} has a memory limit")
            ).format(node=node),
            tuple(evidence),
        )
    ]


def _overcommitted(
    node: str | None,
    picture: MemoryPicture,
    unlimited: list[str],
    paging: bool,
    evidence: tuple[str, ...],
) -> Finding:
    reasons = []
    if picture.unreserved:
        reasons.append(
            _("its allocatable memory equals its capacity (nothing reserved for Windows)")
        )
    if picture.low:
        reasons.append(
            _("only {available} MB of memory is available").format(available=picture.available_mb)
        )
    if paging:
        reasons.append(_("Windows already reports that the paging file is too small"))
    more = len(unlimited) - NAMED_PODS
    pods = (
        " "
        + (
            _("Pods without a memory limit: {pods} and {more} more.")
            if more > 0
            else _("Pods without a memory limit: {pods}.")
        ).format(pods=", ".join(unlimited[:NAMED_PODS]), more=more)
        if unlimited
        else ""
    )
    return Finding(
        CHECK_ID,
        "error" if paging else "warning",
        _("Node memory overcommitted") if paging else _("Pods can exhaust the node's memory"),
        _(
            "Windows has no out-of-memory killer, and on {node} {reasons}.{pods} Set "
            "resources.limits.memory on every container and reserve memory for the "
            "system (kubelet --system-reserved / --kube-reserved)."
        ).format(node=node, reasons="; ".join(reasons), pods=pods),
        evidence,
        (),
        DOCS,
    )


def _memory_picture(context: Context, status: KubeObject) -> tuple[MemoryPicture, str | None]:
    capacity = mebibytes((status.get("capacity") or {}).get("memory"))
    allocatable = mebibytes((status.get("allocatable") or {}).get("memory"))
    try:
        memory = context.node_memory()
        total = int(memory["totalMB"])
        available = int(memory["availableMB"])
    except (WinpodError, KeyError, TypeError, ValueError) as exc:
        return MemoryPicture(capacity, allocatable, None, None), str(exc) or type(exc).__name__
    return MemoryPicture(capacity, allocatable, total, available), None


def _events(context: Context) -> list[KubeObject]:
    """The node's events and its pods' (a pod diagnosis: that pod's)."""
    events = list(context.node_events())
    if context.kind == "Pod":
        events.extend(context.pod_events())
    else:
        events.extend(context.node_pod_warnings())
    return events
