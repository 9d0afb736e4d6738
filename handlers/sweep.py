"""The post-reboot DNS sweep's Windows side: find rebooted nodes, probe DNS in their pods.

Boot ids come from the caller (a watch on Nodes in the bot, see `handlers.node_watch`) or
from one paged list; pods are read only for the nodes to probe (`spec.nodeName=`), so what a
sweep reads follows the reboots, not the fleet. Up to two DNS probes per node run
`sweep.concurrency` at a time, and each node's finding is the `dns-after-reboot` check's own,
decided on the probes made here. Persistence (which boot was seen, which alert was sent)
belongs to the caller, which passes what it knows in and records what comes out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from config.addresses import plain_ip
from config.settings import Settings
from handlers.checks import default_registry
from handlers.checks.dns_after_reboot import (
    CHECK_ID,
    LOOKUPS,
    OFFERS_WITHOUT_NODE_SCRIPTS,
    PodLookup,
    lookup_direct,
    lookup_through_service,
    probe_pods,
)
from handlers.context import Context, Transports
from handlers.errors import WinpodError
from handlers.i18n import _
from handlers.model import Finding, NodeFacts
from handlers.node_watch import WINDOWS_NODES, boot_id, list_boots
from handlers.transports import KubeObject

RECENT_REBOOT = timedelta(hours=1)  # a first-seen node alerts only for a reboot this recent
NodeState = Literal["ok", "failing", "no-network", "unreachable", "no-pods", "not-probed"]


@dataclass(frozen=True)
class NodeReport:
    name: str
    boot_id: str
    rebooted: bool
    state: NodeState
    running_pods: int | None  # None: the node's pods were not read (it was not probed)
    probed: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    finding: Finding | None = None
    # For an alert's header, like a diagnosis's: what the Node says, when it last rebooted.
    facts: NodeFacts | None = None
    booted_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bootID": self.boot_id,
            "rebooted": self.rebooted,
            "state": self.state,
            "runningPods": self.running_pods,
            "probed": list(self.probed),
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class SweepReport:
    nodes: tuple[NodeReport, ...]
    duration_ms: int
    api_requests: int
    probes: int

    @property
    def findings(self) -> list[Finding]:
        return [n.finding for n in self.nodes if n.finding is not None]

    def count(self, *states: NodeState) -> int:
        return sum(1 for n in self.nodes if n.state in states)

    def summary(self) -> dict[str, int]:
        return {
            "checked": len(self.nodes),
            "rebooted": sum(1 for n in self.nodes if n.rebooted),
            "failing": self.count("failing", "no-network"),
            "unreachable": self.count("unreachable"),
            "duration_ms": self.duration_ms,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [n.to_json() for n in self.nodes],
            "findings": [f.to_json() for f in self.findings],
            "summary": self.summary(),
        }


class _Counter:
    """API reads a sweep made (reads run on many threads)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


@dataclass
class _Node:
    """One node to probe: its Context (which the check then decides on), pods, probes."""

    name: str
    context: Context | None = None
    running: list[KubeObject] = field(default_factory=list)
    lookups: list[PodLookup] = field(default_factory=list)
    waiting: int = 0
    finding: Finding | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def context_node(self) -> KubeObject | None:
        return None if self.context is None else self.context.node


def _event_time(event: KubeObject | None) -> datetime:
    if not event:
        return datetime.min.replace(tzinfo=UTC)
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _current_boots(transports: Transports, reads: _Counter) -> dict[str, str]:
    if transports.watchable is not None:
        boots, _version = list_boots(transports.watchable)
    else:
        nodes = transports.cluster.list("Node", label_selector=WINDOWS_NODES)
        boots = {str(n["metadata"]["name"]): boot_id(n) for n in nodes}
    reads.add()
    return boots


def _recent_reboots(transports: Transports, names: set[str], reads: _Counter) -> set[str]:
    """Which of these first-seen nodes have a `Rebooted` event under RECENT_REBOOT old."""
    reads.add()
    latest: dict[str, datetime] = {}
    for event in transports.cluster.list("Event", field_selector="reason=Rebooted"):
        involved = str((event.get("involvedObject") or {}).get("name") or "")
        if involved in names:
            latest[involved] = max(latest.get(involved, _event_time(None)), _event_time(event))
    now = datetime.now(UTC)
    return {name for name, when in latest.items() if now - when <= RECENT_REBOOT}


def sweep(
    transports: Transports,
    settings: Settings,
    known_boots: Mapping[str, str],
    also_probe: set[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    boots: Mapping[str, str] | None = None,
    nodes: Callable[[list[str]], Mapping[str, KubeObject]] | None = None,
) -> SweepReport:
    """Decide which Windows nodes rebooted (`boots`, node → current boot id, against
    `known_boots`, node → last seen; `boots` is listed when not given) and probe DNS on those,
    plus the nodes in `also_probe` (open alerts awaiting recovery). `nodes` may hand over the
    Node objects it already has (a watch's); the others are read."""
    started = time.monotonic()
    reads = _Counter()
    current = dict(boots) if boots is not None else _current_boots(transports, reads)
    first_seen = {name for name in current if name not in known_boots}
    recent = _recent_reboots(transports, first_seen, reads) if first_seen else set()
    rebooted = {
        name: (name in recent) if name in first_seen else known_boots[name] != boot
        for name, boot in current.items()
    }
    to_probe = sorted(n for n in current if rebooted[n] or n in (also_probe or ()))
    given = nodes(to_probe) if nodes is not None and to_probe else {}
    probed = (
        _probe_nodes(transports, settings, to_probe, given, progress, reads) if to_probe else {}
    )
    reports = tuple(
        _report(name, current[name], rebooted[name], probed.get(name)) for name in sorted(current)
    )
    return SweepReport(
        reports,
        int((time.monotonic() - started) * 1000),
        reads.value,
        sum(len(node.lookups) for node in probed.values()),
    )


def kube_dns(transports: Transports) -> tuple[str, list[str]]:
    """The cluster DNS Service IP and the running kube-dns pods' IPs, as they go into probe
    commands: plain IPs only (config/addresses.py); anything else is left out."""
    cluster = transports.cluster
    service = cluster.get("Service", "kube-dns", "kube-system")
    dns_ip = plain_ip(str((service.get("spec") or {}).get("clusterIP") or "")) or ""
    dns_pod_ips = [
        ip
        for p in cluster.list("Pod", namespace="kube-system", label_selector="k8s-app=kube-dns")
        if (p.get("status") or {}).get("phase") == "Running"
        and (ip := plain_ip(str(p["status"].get("podIP") or "")))
    ]
    return dns_ip, dns_pod_ips


def _probe_nodes(
    transports: Transports,
    settings: Settings,
    names: list[str],
    given: Mapping[str, KubeObject],
    progress: Callable[[int, int], None] | None,
    reads: _Counter,
) -> dict[str, _Node]:
    """Every node read, probed and decided in one pool; each read, lookup and decision is a
    task of its own, queued as soon as its input is there, so no worker waits on a node."""
    cluster = transports.cluster
    reads.add(2)
    dns_ip, dns_pod_ips = kube_dns(transports)
    check = default_registry().get(CHECK_ID)
    assert check is not None
    nodes = {name: _Node(name) for name in names}
    decided: list[str] = []

    def read(node: _Node) -> list[Step]:
        try:
            known = given.get(node.name)
            if known is None:
                reads.add()
                known = cluster.get("Node", node.name)
            reads.add()
            node.context = Context(transports, settings, "Node", None, known)
            node.context.provide(Context.KUBE_DNS_IP, dns_ip)
            node.context.provide(Context.KUBE_DNS_POD_IPS, dns_pod_ips)
            node.running = node.context.running_pods_on_node()
        except WinpodError as exc:
            node.error = _("could not read {node} or its pods: {error}").format(
                node=node.name, error=exc
            )
            return [Step(finish, node)]
        node.waiting = len(probe_pods(node.running))
        if not node.waiting:
            return [Step(decide, node)]
        return [Step(probe, node, pod) for pod in probe_pods(node.running)]

    def probe(node: _Node, pod: KubeObject) -> list[Step]:
        pod_context = Context(transports, settings, "Pod", pod, node.context_node)
        lookup = lookup_through_service(pod_context)
        if lookup.needs_direct and dns_pod_ips:
            return [Step(direct, node, (pod_context, lookup))]
        return looked_up(node, lookup)

    def direct(node: _Node, probed: tuple[Context, PodLookup]) -> list[Step]:
        pod_context, lookup = probed
        return looked_up(node, lookup_direct(pod_context, lookup, dns_pod_ips[0]))

    def looked_up(node: _Node, lookup: PodLookup) -> list[Step]:
        with node.lock:
            node.lookups.append(lookup)
            node.waiting -= 1
            last = node.waiting == 0
        return [Step(decide, node)] if last else []

    def decide(node: _Node) -> list[Step]:
        """The check's own decision on what this sweep read and probed."""
        assert node.context is not None
        node.context.provide(LOOKUPS, tuple(node.lookups))
        node.context.provide(OFFERS_WITHOUT_NODE_SCRIPTS, True)
        findings = check.run(node.context)
        node.finding = findings[0] if findings else None
        return [Step(finish, node)]

    def finish(node: _Node) -> list[Step]:
        decided.append(node.name)
        if progress is not None:
            progress(len(decided), len(names))
        return []

    _run_steps([Step(read, node) for node in nodes.values()], settings.sweep.concurrency)
    return nodes


def _run_steps(first: list[Step], workers: int) -> None:
    """Run `first` and every step they lead to in a pool of `workers`, in the order they
    become ready. Each finished step queues its successors itself and the caller waits once:
    a loop waiting on every pending future after each step cost the sweep's interpreter work
    that grew with the number of steps in flight (bench/RESULTS.md). The first exception a
    step raises is raised here once every queued step has ended."""
    lock = threading.Lock()
    ended = threading.Event()
    outstanding = len(first)
    failures: list[BaseException] = []

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:

        def run(step: Step) -> None:
            nonlocal outstanding
            following: list[Step] = []
            try:
                following = step.run()
            except BaseException as exc:
                with lock:
                    failures.append(exc)
            with lock:
                outstanding += len(following) - 1
                last = outstanding == 0
            for successor in following:
                pool.submit(run, successor)
            if last:
                ended.set()

        for step in first:
            pool.submit(run, step)
        if first:
            ended.wait()
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class Step:
    """One task of the sweep's pool: a function and its arguments."""

    function: Callable[..., list[Step]]
    node: _Node
    argument: Any = None

    def run(self) -> list[Step]:
        if self.argument is None:
            return self.function(self.node)
        return self.function(self.node, self.argument)


def _report(name: str, boot: str, rebooted: bool, node: _Node | None) -> NodeReport:
    if node is None:
        return NodeReport(name, boot, rebooted, "not-probed", None)
    if node.error is not None:
        return NodeReport(name, boot, rebooted, "unreachable", None, (), (node.error,))
    running = sum(1 for pod in node.running if (pod.get("status") or {}).get("podIP"))
    probed = tuple(lookup.pod for lookup in node.lookups)
    evidence = tuple(line for lookup in node.lookups for line in lookup.evidence)
    finding = node.finding
    if finding is not None and finding.severity == "error":
        evidence = finding.evidence
    answered = [lookup for lookup in node.lookups if lookup.error is None]
    state: NodeState
    if finding is not None and finding.severity == "error":
        state = "failing"
    elif not node.lookups:
        state = "no-pods"
        note = (
            _("{node} has no running pod to probe DNS from").format(node=name)
            if running
            else _(
                "{node} has no running pod to probe DNS from; with fewer than two running pods, "
                "stale HNS policies break DNS for the next pod (dns-keeper keeps two on every "
                "node)"
            ).format(node=name)
        )
        evidence = (*evidence, note)
    elif not answered:
        state = "unreachable"
    elif any(lookup.ok for lookup in answered):
        state = "ok"
    else:
        state = "no-network"
    alertable = (
        finding if finding is not None and finding.severity in ("error", "warning") else None
    )
    facts = None if node.context is None else node.context.node_facts
    booted_at = None
    if alertable is not None and node.context is not None:
        # The check read these events for its evidence already (the context keeps them).
        when = max(map(_event_time, node.context.node_reboots()), default=None)
        booted_at = when if when is not None and when != _event_time(None) else None
    return NodeReport(
        name, boot, rebooted, state, running, probed, evidence, alertable, facts, booted_at
    )
