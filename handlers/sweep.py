"""The post-reboot DNS sweep's Windows side: find rebooted nodes, probe DNS in their pods.

One list of Windows nodes, one list of running pods, one list of `Rebooted` events and the
kube-dns facts per sweep — never one call per node; then at most two DNS probes per node,
`sweep.concurrency` at a time. Persistence (which boot was seen, which alert was sent) belongs to
the caller, which passes what it knows in and records what comes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from config.addresses import plain_ip
from config.settings import Settings
from handlers import probes
from handlers.checks.dns_after_reboot import DOCS, SUMMARY, node_remediations
from handlers.context import Context, Transports, node_facts
from handlers.errors import WinpodError
from handlers.model import Finding
from handlers.transports import KubeObject

WINDOWS_NODES = "kubernetes.io/os=windows"
RECENT_REBOOT = timedelta(hours=1)  # a first-seen node alerts only for a reboot this recent
PROBES_PER_NODE = 2
NodeState = Literal["ok", "failing", "no-network", "unreachable", "no-pods", "not-probed"]


@dataclass(frozen=True)
class NodeReport:
    name: str
    boot_id: str
    rebooted: bool
    state: NodeState
    running_pods: int
    probed: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    finding: Finding | None = None

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


@dataclass
class _Facts:
    nodes: list[KubeObject]
    # The pods a probe may use (the first PROBES_PER_NODE) and how many run, per node: the
    # list of every running pod is dropped after counting, it is the sweep's biggest object.
    probe_pods: dict[str, list[KubeObject]]
    running_pods: dict[str, int]
    reboots: dict[str, KubeObject]
    dns_ip: str
    dns_pod_ips: list[str]
    requests: int = 5


@dataclass
class _Probe:
    node: str
    pod: KubeObject
    ok: bool = False
    direct_ok: bool = False
    direct_tried: bool = False
    error: str | None = None
    evidence: list[str] = field(default_factory=list)


def _gather(transports: Transports) -> _Facts:
    cluster = transports.cluster
    # Pods first: the list of every running pod is the sweep's biggest object, and it is gone
    # (counted, the first PROBES_PER_NODE kept per node) before anything else is parsed.
    probe_pods: dict[str, list[KubeObject]] = {}
    running_pods: dict[str, int] = {}
    for pod in cluster.list("Pod", field_selector="status.phase=Running"):
        host = str((pod.get("spec") or {}).get("nodeName") or "")
        if host and (pod.get("status") or {}).get("podIP"):
            running_pods[host] = running_pods.get(host, 0) + 1
            kept = probe_pods.setdefault(host, [])
            if len(kept) < PROBES_PER_NODE:
                kept.append(pod)
    nodes = cluster.list("Node", label_selector=WINDOWS_NODES)
    names = {n["metadata"]["name"] for n in nodes}
    reboots: dict[str, KubeObject] = {}
    for event in cluster.list("Event", field_selector="reason=Rebooted"):
        involved = str((event.get("involvedObject") or {}).get("name") or "")
        if involved in names and _event_time(event) >= _event_time(reboots.get(involved)):
            reboots[involved] = event
    dns = cluster.get("Service", "kube-dns", "kube-system")
    dns_pods = cluster.list("Pod", namespace="kube-system", label_selector="k8s-app=kube-dns")
    return _Facts(
        nodes,
        {name: probe_pods.get(name, []) for name in names},
        {name: running_pods.get(name, 0) for name in names},
        reboots,
        # addresses that go into probe commands: plain IPs only (config/addresses.py)
        plain_ip(str((dns.get("spec") or {}).get("clusterIP") or "")) or "",
        [
            ip
            for p in dns_pods
            if (p.get("status") or {}).get("phase") == "Running"
            and (ip := plain_ip(str(p["status"].get("podIP") or "")))
        ],
    )


def _event_time(event: KubeObject | None) -> datetime:
    if not event:
        return datetime.min.replace(tzinfo=UTC)
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def sweep(
    transports: Transports,
    settings: Settings,
    known_boots: Mapping[str, str],
    also_probe: set[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepReport:
    """Decide which Windows nodes rebooted (against `known_boots`: node → last seen boot id)
    and probe DNS on those, plus the nodes in `also_probe` (open alerts awaiting recovery)."""
    started = time.monotonic()
    facts = _gather(transports)
    now = datetime.now(UTC)
    rebooted: dict[str, bool] = {}
    for node in facts.nodes:
        name, boot = node["metadata"]["name"], node_facts(node).boot_id
        previous = known_boots.get(name)
        if previous is None:
            event = facts.reboots.get(name)
            rebooted[name] = event is not None and now - _event_time(event) <= RECENT_REBOOT
        else:
            rebooted[name] = previous != boot
    to_probe = [
        n
        for n in facts.nodes
        if rebooted[n["metadata"]["name"]] or n["metadata"]["name"] in (also_probe or ())
    ]
    probes_run = _probe_all(transports, settings, facts, to_probe, progress)
    reports = []
    for node in facts.nodes:
        name = node["metadata"]["name"]
        reports.append(_report(node, rebooted[name], facts, probes_run.get(name)))
    return SweepReport(
        tuple(reports),
        int((time.monotonic() - started) * 1000),
        facts.requests,
        sum(len(p) for p in probes_run.values()),
    )


def _probe_all(
    transports: Transports,
    settings: Settings,
    facts: _Facts,
    nodes: list[KubeObject],
    progress: Callable[[int, int], None] | None,
) -> dict[str, list[_Probe]]:
    planned = [
        (n["metadata"]["name"], pod)
        for n in nodes
        for pod in facts.probe_pods[n["metadata"]["name"]]
    ]
    results: dict[str, list[_Probe]] = {n["metadata"]["name"]: [] for n in nodes}
    if not planned:
        return results
    remaining = {name: sum(1 for n, _ in planned if n == name) for name in results}
    # A node without a pod to probe is done from the start, so the count reaches the total.
    done_nodes = {name for name, left in remaining.items() if left == 0}
    with ThreadPoolExecutor(
        max_workers=settings.sweep.concurrency, thread_name_prefix="probe"
    ) as pool:
        pending = {
            pool.submit(_probe, transports, settings, facts, node, pod) for node, pod in planned
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                probe = future.result()
                if _needs_direct_lookup(probe, facts):
                    # Queued behind the first lookups still waiting: every exec is its own
                    # task, so the pool never idles while a node waits for its second one.
                    pending.add(pool.submit(_probe_direct, transports, settings, facts, probe))
                    continue
                _record(probe, results, remaining, done_nodes, len(nodes), progress)
    return results


def _record(
    probe: _Probe,
    results: dict[str, list[_Probe]],
    remaining: dict[str, int],
    done_nodes: set[str],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    results[probe.node].append(probe)
    remaining[probe.node] -= 1
    if remaining[probe.node] == 0:
        done_nodes.add(probe.node)
        if progress is not None:
            progress(len(done_nodes), total)


def _probe(
    transports: Transports, settings: Settings, facts: _Facts, node: str, pod: KubeObject
) -> _Probe:
    """The lookup through the cluster DNS Service."""
    result = _Probe(node, pod)
    context = Context(transports, settings, "Pod", pod, None)
    try:
        through_service = probes.nslookup(context)
        result.ok = through_service.ok
        result.evidence.append(f"{_ref(pod)}: {through_service.evidence()}")
    except WinpodError as exc:
        result.error = str(exc)
        result.evidence.append(f"{_ref(pod)}: could not probe: {exc}")
    return result


def _needs_direct_lookup(result: _Probe, facts: _Facts) -> bool:
    return (
        result.error is None
        and not result.ok
        and not result.direct_tried
        and bool(facts.dns_pod_ips)
    )


def _probe_direct(
    transports: Transports, settings: Settings, facts: _Facts, result: _Probe
) -> _Probe:
    """The same lookup sent straight to a kube-dns pod, after the Service failed."""
    result.direct_tried = True
    context = Context(transports, settings, "Pod", result.pod, None)
    try:
        direct = probes.nslookup(context, server=facts.dns_pod_ips[0])
        result.direct_ok = direct.ok
        result.evidence.append(f"{_ref(result.pod)}: {direct.evidence()}")
    except WinpodError as exc:
        result.error = str(exc)
        result.evidence.append(f"{_ref(result.pod)}: could not probe: {exc}")
    return result


def _ref(pod: KubeObject) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _report(
    node: KubeObject, rebooted: bool, facts: _Facts, node_probes: list[_Probe] | None
) -> NodeReport:
    name = node["metadata"]["name"]
    boot = node_facts(node).boot_id
    running = facts.running_pods[name]
    if node_probes is None:
        return NodeReport(name, boot, rebooted, "not-probed", running)
    if not node_probes:
        note = f"{name} has no running pod to probe DNS from" + (
            ""
            if running
            else "; with fewer than two running pods, stale HNS policies "
            "break DNS for the next pod (dns-keeper keeps two on every node)"
        )
        return NodeReport(name, boot, rebooted, "no-pods", running, (), (note,))
    probed = tuple(
        f"{p.pod['metadata']['namespace']}/{p.pod['metadata']['name']}" for p in node_probes
    )
    evidence = [line for p in node_probes for line in p.evidence]
    answered = [p for p in node_probes if p.error is None]
    if not answered:
        return NodeReport(name, boot, rebooted, "unreachable", running, probed, tuple(evidence))
    if any(p.ok for p in answered):
        return NodeReport(name, boot, rebooted, "ok", running, probed, tuple(evidence))
    event = facts.reboots.get(name)
    if event is not None:
        evidence.append(
            f"event Rebooted {event.get('lastTimestamp') or ''}: {event.get('message')}"
        )
    evidence.append(
        f"node {name} boot ID {boot}; {running} running pod(s)"
        + (" — fewer than two, so nothing masks the stale policies" if running < 2 else "")
    )
    if not any(p.direct_ok for p in answered):
        finding = Finding(
            "dns-after-reboot",
            "warning",
            f"DNS fails on {name}, and so does a direct query to kube-dns",
            "The pods cannot reach a kube-dns pod either: the node has no working "
            "pod network (see apiserver-unreachable), not stale DNS policies.",
            tuple(evidence),
            (),
            DOCS,
        )
        return NodeReport(
            name, boot, rebooted, "no-network", running, probed, tuple(evidence), finding
        )
    finding = Finding(
        "dns-after-reboot",
        "error",
        f"DNS fails in pods on {name} after its reboot (stale HNS policies)",
        SUMMARY.format(dns=facts.dns_ip),
        tuple(evidence),
        node_remediations(name, probed[0]),
        DOCS,
    )
    return NodeReport(name, boot, rebooted, "failing", running, probed, tuple(evidence), finding)
