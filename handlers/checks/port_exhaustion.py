"""`port-exhaustion`: HNS has taken nearly every 64-port block of the node's TCP dynamic port
range (non-DSR load balancers and SNAT): new sandboxes are re-created and DNS stops."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import Context, event_line
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer
from handlers.transports import KubeObject

CHECK_ID = "port-exhaustion"
DOCS = (
    "https://github.com/Azure/AKS/issues/1375",
    "https://github.com/microsoft/SDN/blob/master/Kubernetes/windows/debug/networkhealth.ps1",
    "https://kubernetes.io/docs/concepts/services-networking/windows-networking/",
)
BLOCK = 64  # HNS reserves dynamic ports in blocks of 64
EXHAUSTED_AT = 10  # networkhealth.ps1 PortExhaustionTest fails at this many free blocks or fewer
NODE_PORTS = (30000, 32767)  # Kubernetes' NodePort range: a dynamic range must stay clear of it
SANDBOX_CHANGED = re.compile(
    r"sandbox changed, it will be killed and re-created",  # i18n: kubelet's event text
    re.IGNORECASE,
)
DSR_ADVICE = N_(
    "Enable DSR (Direct Server Return) in kube-proxy (`--enable-dsr=true` with the WinDSR "
    "feature gate, or `winkernel.enableDSR: true` in its config): load balancers with DSR "
    "reserve no dynamic ports for SNAT, which is what exhausts the range."
)


@dataclass(frozen=True)
class PortRange:
    """The TCP dynamic range (`start`, `count` ports) and the excluded ranges (inclusive)."""

    start: int
    count: int
    excluded: tuple[tuple[int, int], ...]

    @property
    def end(self) -> int:
        return self.start + self.count - 1

    @property
    def excluded_ports(self) -> int:
        """Ports of the excluded ranges that lie inside the dynamic range."""
        return sum(max(0, min(b, self.end) - max(a, self.start) + 1) for a, b in self.excluded)

    @property
    def free_blocks(self) -> int:
        return max(0, self.count - self.excluded_ports) // BLOCK

    def describe(self) -> str:
        return _("{start}-{end} ({count} ports, {blocks} blocks of 64)").format(
            start=self.start, end=self.end, count=self.count, blocks=self.count // BLOCK
        )


def widened(ports: PortRange) -> PortRange | None:
    """The range grown downwards as far as it can go clear of the NodePorts and of every
    excluded range below it (its end stays); None when it cannot grow."""
    start = NODE_PORTS[1] + 1
    for low, high in sorted(ports.excluded):
        if high >= start and low < ports.start:
            start = high + 1
    if start >= ports.start:
        return None
    return PortRange(start, ports.end - start + 1, ports.excluded)


def read_ports(context: Context) -> PortRange:
    data = context.node_script("dynamic-ports")
    tcp = data.get("tcp")
    if not isinstance(tcp, dict):
        raise WinpodError(
            _("dynamic-ports printed no range: {errors}").format(
                errors="; ".join(data.get("errors") or [])
            )
        )
    excluded = tuple(
        (int(r["start"]), int(r["end"]))
        for r in data.get("excluded") or []
        if isinstance(r, dict) and "start" in r and "end" in r
    )
    return PortRange(int(tcp["start"]), int(tcp["count"]), excluded)


def _sandbox_events(context: Context) -> list[KubeObject]:
    if context.kind == "Pod":
        events = context.pod_events()
    else:

        def fetch() -> list[KubeObject]:
            pods = {
                (p["metadata"].get("namespace"), p["metadata"].get("name"))
                for p in context.pods_on_node()
            }
            found = context.transports.cluster.list("Event", field_selector="reason=SandboxChanged")
            return [
                e
                for e in found
                if (
                    (e.get("involvedObject") or {}).get("namespace"),
                    (e.get("involvedObject") or {}).get("name"),
                )
                in pods
            ]

        events = context.once("sandbox-changed-events", fetch)
    return [e for e in events if SANDBOX_CHANGED.search(str(e.get("message", "")))]


@check(
    CHECK_ID,
    title=N_("Dynamic port exhaustion"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "HNS reserves the node's TCP dynamic ports in blocks of 64 for every load balancer "
            "without DSR and for SNAT. A node with many Services runs out: at 10 free blocks or "
            "fewer new pod sandboxes fail and are re-created, and DNS through the Service VIP "
            "stops (AKS#1375). Enable DSR (Direct Server Return) in kube-proxy "
            "(`--enable-dsr=true` with the WinDSR feature gate, or `winkernel.enableDSR: true` "
            "in its config): load balancers with DSR reserve no dynamic ports for SNAT, which is "
            "what exhausts the range."
        ),
        signals=(
            N_(
                "netsh int ipv4 show dynamicport tcp against netsh int ipv4 show "
                "excludedportrange protocol=tcp: 10 free 64-port blocks or fewer "
                "(networkhealth.ps1 PortExhaustionTest)"
            ),
            N_("event SandboxChanged: Pod sandbox changed, it will be killed and re-created."),
            N_("DNS lookups through the cluster DNS Service fail on the node"),
        ),
        fixes=(
            N_("enable DSR in kube-proxy (the lasting fix; advice, not automated)"),
            N_(
                "widen-dynamic-ports: widen the range downwards, clear of the NodePorts "
                "30000-32767 and of the excluded ranges (AgentBaker#1352, image-builder#947)"
            ),
        ),
        links=DOCS,
    ),
)
def port_exhaustion(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    events = _sandbox_events(context)
    if context.kind == "Pod" and not events:
        return [Finding(CHECK_ID, "ok", _("No sandbox re-creation"), _("no SandboxChanged event"))]
    node = str(context.node_name)
    try:
        ports = read_ports(context)
    except WinpodError as exc:
        return could_not_check(
            CHECK_ID, _("the dynamic port range of {node}").format(node=node), exc
        )
    evidence = [
        _("TCP dynamic port range {range}").format(range=ports.describe()),
        _(
            "{ports} of its ports excluded ({ranges} excluded ranges: HNS reservations for load "
            "balancers without DSR and SNAT)"
        ).format(ports=ports.excluded_ports, ranges=len(ports.excluded)),
        _("{free} free blocks of 64 (networkhealth.ps1 fails at {limit} or fewer)").format(
            free=ports.free_blocks, limit=EXHAUSTED_AT
        ),
        *(event_line(e) for e in events[:3]),
    ]
    if ports.free_blocks > EXHAUSTED_AT:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("{free} free port blocks on {node}").format(free=ports.free_blocks, node=node),
                _("the dynamic port range has room"),
                tuple(evidence),
            )
        ]
    wider = widened(ports)
    if wider is not None:
        evidence.append(
            _("it can be widened to {range}: {free} free blocks").format(
                range=wider.describe(), free=wider.free_blocks
            )
        )
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Dynamic ports exhausted on {node}").format(node=node),
            _(
                "Only {free} free 64-port blocks are left on {node}: new sandboxes are "
                "re-created and DNS fails."
            ).format(free=ports.free_blocks, node=node)
            + " "
            + _(DSR_ADVICE)
            + " "
            + _("Widening the range buys room now."),
            tuple(evidence),
            (offer("widen-dynamic-ports", node),) if wider is not None else (),
            DOCS,
        )
    ]
