"""`dns-after-reboot`: DNS fails in Windows pods because HNS lost the DNS VIP's policy."""

from __future__ import annotations

from dataclasses import dataclass, replace

from handlers import hns, probes
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding, RemediationRef
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer
from handlers.transports import KubeObject

CHECK_ID = "dns-after-reboot"
DOCS = (
    "https://github.com/Azure/acs-engine/issues/2027",
    "https://github.com/Azure/aks-engine/pull/3956",
)
DNS_POD_SERVICE = "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/"
SUMMARY = N_(
    "After a reboot the HNS load-balancer policy for the DNS Service IP is stale, so lookups "
    "through {dns} fail while a kube-dns pod answers directly. Reset the HNS policies (or "
    "restart kube-proxy), or work around it per pod or with a second pod on the node."
)
# Windows pods get one DNS suffix, their namespace's: `kubernetes.default` fails there on a
# healthy node while the full name resolves, so only full names are probed (probes.API_NAME).
SINGLE_SUFFIX = N_(
    "winpod probes the full name {name} only: on Windows a partial name such as "
    "kubernetes.default fails on a healthy node too (pods get one DNS suffix, their "
    "namespace's), which is not stale HNS."
)


PROBES_PER_NODE = 2  # pods of a node whose DNS is probed: one may be an odd one out
LOOKUPS = "dns-lookups"  # the Context key of a node's probe results (a sweep provides them)
# A sweep provides True: a node script per failing node (a HostProcess pod each, on managed
# clusters) only to choose buttons would make its cost follow the failures' count.
OFFERS_WITHOUT_NODE_SCRIPTS = "dns-offers-without-node-scripts"


@dataclass(frozen=True)
class PodLookup:
    """DNS probed in one pod of a node: through the cluster DNS Service, then (when that
    failed) straight to a kube-dns pod. `error` when the pod could not be probed at all."""

    pod: str
    ok: bool = False
    direct_ok: bool = False
    direct_tried: bool = False
    error: str | None = None
    evidence: tuple[str, ...] = ()

    @property
    def needs_direct(self) -> bool:
        return self.error is None and not self.ok and not self.direct_tried


def probe_pods(pods: list[KubeObject]) -> list[KubeObject]:
    """The running pods, with an address, whose DNS a node diagnosis probes."""
    return [p for p in pods if (p.get("status") or {}).get("podIP")][:PROBES_PER_NODE]


def lookup_through_service(pod_context: Context) -> PodLookup:
    ref = pod_context.target.ref
    try:
        result = probes.nslookup(pod_context)
    except WinpodError as exc:
        line = _("{pod}: could not probe: {error}").format(pod=ref, error=exc)
        return PodLookup(ref, error=str(exc), evidence=(line,))
    return PodLookup(ref, ok=result.ok, evidence=(f"{ref}: {result.evidence()}",))


def lookup_direct(pod_context: Context, lookup: PodLookup, server: str) -> PodLookup:
    ref = lookup.pod
    try:
        result = probes.nslookup(pod_context, server=server)
    except WinpodError as exc:
        line = _("{pod}: could not probe: {error}").format(pod=ref, error=exc)
        return replace(lookup, direct_tried=True, error=str(exc), evidence=(*lookup.evidence, line))
    return replace(
        lookup,
        direct_tried=True,
        direct_ok=result.ok,
        evidence=(*lookup.evidence, f"{ref}: {result.evidence()}"),
    )


def node_lookups(context: Context) -> tuple[PodLookup, ...]:
    """DNS probed in up to PROBES_PER_NODE running pods of the node, one after the other
    (the sweep runs the same two steps for many nodes at once and provides the results)."""

    def probe() -> tuple[PodLookup, ...]:
        assert context.node is not None
        found = []
        for pod in probe_pods(context.running_pods_on_node()):
            pod_context = Context(context.transports, context.settings, "Pod", pod, context.node)
            lookup = lookup_through_service(pod_context)
            if lookup.needs_direct:
                servers = context.kube_dns_pod_ips()
                if servers:
                    lookup = lookup_direct(pod_context, lookup, servers[0])
            found.append(lookup)
        return tuple(found)

    return context.once(LOOKUPS, probe)


def node_remediations(
    node: str, pod_ref: str | None, kube_proxy_restartable: bool = True
) -> tuple[RemediationRef, ...]:
    offered = [offer("kube-proxy-restart", node)] if kube_proxy_restartable else []
    offered.append(offer("hns-reset", node))
    if pod_ref:
        offered.append(offer("pod-dns-override", pod_ref))
    offered.append(offer("dns-keeper", "cluster"))
    return tuple(offered)


def _reboot_evidence(context: Context) -> list[str]:
    facts = context.node_facts
    evidence = (
        [_("node {node} boot ID {boot}").format(node=context.node_name, boot=facts.boot_id)]
        if facts
        else []
    )
    reboots = context.node_reboots()
    for event in reboots[-1:]:
        when = event.get("lastTimestamp") or event.get("eventTime") or ""
        evidence.append(
            _("event {reason} {time}: {message}").format(
                reason="Rebooted", time=when, message=event.get("message")
            )
        )
    return evidence


def _policy_evidence(context: Context) -> tuple[list[str], hns.DnsVip | None]:
    try:
        status = context.node_status()
    except WinpodError as exc:
        return [_("could not read HNS state on the node: {error}").format(error=exc)], None
    vip = hns.dns_vip_of_status(status)
    networks = hns.describe_networks(hns.as_list(status.get("hnsNetworks")))
    return [
        _(
            "HNS on {node} ({module}): networks {networks}; {count} policy lists/load "
            "balancers; {vip}"
        ).format(
            node=context.node_name,
            module=status.get("hnsModule"),
            networks=networks or _("none"),
            count=status.get("policyListCount"),
            vip=vip.describe(),
        )
    ], vip


def _kube_proxy_restartable(context: Context) -> bool:
    """Whether kube-proxy-restart can work here: kube-proxy is a service (either name) or a
    HostProcess pod. Unknown (node-status unreadable, or not read in a sweep) counts as yes:
    the restart's plan says why when there is nothing to restart."""
    if context.once(OFFERS_WITHOUT_NODE_SCRIPTS, lambda: False):
        return True
    try:
        services = context.node_status().get("services") or {}
    except WinpodError:
        return True
    if hns.kube_proxy_service(services) is not None:
        return True
    try:
        return hns.kube_proxy_pod(context.transports.cluster, context.node_name or "") is not None
    except WinpodError:
        return True


def _answers() -> str:
    return (
        _("the cluster DNS Service answers.") + " " + _(SINGLE_SUFFIX).format(name=probes.API_NAME)
    )


def _running_pods(count: int, node: str) -> str:
    return _("{count} running pod(s) on {node}").format(count=count, node=node)


def _vip_title(vip: hns.DnsVip, masked: bool) -> str:
    if vip.state == "stale" and masked:
        return _(
            "HNS policies for the DNS Service IP reference endpoints that are gone (stale) — "
            "masked while two or more pods run"
        )
    if vip.state == "stale":
        return _("HNS policies for the DNS Service IP reference endpoints that are gone (stale)")
    if masked:
        return _(
            "HNS has no policy for the DNS Service IP (stale after reboot) — masked while two "
            "or more pods run"
        )
    return _("HNS has no policy for the DNS Service IP (stale after reboot)")


@check(
    CHECK_ID,
    title=N_("DNS after a node reboot"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "After a Windows node reboots, the HNS load-balancer policy for the cluster DNS "
            "Service IP can be missing (stale policies), so DNS lookups fail in every pod of the "
            "node until the policies are rebuilt (acs-engine#2027). It comes back after every "
            "reboot. Not this: Windows pods get one DNS suffix (their namespace's), so "
            "`kubernetes.default` fails on a healthy node while `kubernetes.default.svc."
            "cluster.local` resolves (kubernetes.io dns-pod-service); winpod probes full names "
            "only."
        ),
        signals=(
            N_(
                "nslookup kubernetes.default.svc.cluster.local (the full name, never a partial "
                "one) fails in the pod"
            ),
            N_("the same lookup sent straight to a kube-dns pod IP succeeds"),
            N_(
                "node bootID changed / Rebooted event; no Get-HnsPolicyList entry (v1) or HCN "
                "load balancer (v2) holds the DNS VIP, or those that do reference endpoints "
                "that Get-HnsEndpoint no longer shows"
            ),
            N_("fewer than two running pods on the node (a second pod masks the problem)"),
        ),
        fixes=(
            N_(
                "kube-proxy-restart: restart kube-proxy, its service or its HostProcess pod "
                "(often enough)"
            ),
            N_(
                "hns-reset: stop kube-proxy and kubelet, remove HNS policy lists, then the pod "
                "network (never the management network), start kubelet and kube-proxy (pods "
                "lose network for about a minute)"
            ),
            N_("pod-dns-override: point the pod's DNS at the kube-dns pod IPs"),
            N_("dns-keeper: a DaemonSet keeps two pods on every Windows node"),
        ),
        links=(*DOCS, DNS_POD_SERVICE),
    ),
)
def dns_after_reboot(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    if context.kind == "Node":
        return _node_dns(context)
    assert context.pod is not None
    status = context.pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return not_applicable(CHECK_ID, N_("the pod is not running, so DNS cannot be probed in it"))
    try:
        through_service = probes.nslookup(context)
    except WinpodError as exc:
        return could_not_check(CHECK_ID, N_("DNS in the pod"), exc)
    if through_service.ok:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("DNS works in the pod"),
                _answers(),
                (through_service.evidence(),),
            )
        ]
    try:
        dns_ip = context.service_ip("kube-system", "kube-dns")
        pod_ips = context.kube_dns_pod_ips()
    except WinpodError as exc:
        return could_not_check(CHECK_ID, N_("where DNS fails"), exc)
    direct = probes.nslookup(context, server=pod_ips[0]) if pod_ips else None
    evidence = [through_service.evidence()]
    if direct is not None:
        evidence.append(direct.evidence())
    if direct is None or not direct.ok:
        return [
            Finding(
                CHECK_ID,
                "warning",
                _("DNS fails, but so does a direct query to kube-dns"),
                _(
                    "The pod cannot reach a kube-dns pod either, so this is not the stale-policy "
                    "DNS problem: the pod has no working network (see apiserver-unreachable)."
                ),
                tuple(evidence),
                (),
                DOCS,
            )
        ]
    policy, vip = _policy_evidence(context)
    if vip is not None and vip.state == "programmed":
        # HNS still has the VIP policy: not the reboot problem; kube-proxy is the usual suspect.
        evidence.extend(policy)
        return [
            Finding(
                CHECK_ID,
                "warning",
                _("DNS through the cluster DNS Service fails, but HNS has its policy"),
                _(
                    "Lookups through {dns} fail while a kube-dns pod answers directly, yet the "
                    "node's HNS still has the DNS VIP policy, so this is not the stale-policy "
                    "problem. Check kube-proxy on the node (see node-services)."
                ).format(dns=dns_ip),
                tuple(evidence),
                (offer("kube-proxy-restart", context.node_name or ""),),
                DOCS,
            )
        ]
    evidence.extend(_reboot_evidence(context))
    evidence.extend(policy)
    running = context.running_pods_on_node()
    evidence.append(_running_pods(len(running), context.node_name or ""))
    return [
        Finding(
            CHECK_ID,
            "error",
            _("DNS through the cluster DNS Service fails (stale HNS policies)"),
            _(SUMMARY).format(dns=dns_ip),
            tuple(evidence),
            node_remediations(
                context.node_name or "", context.target.ref, _kube_proxy_restartable(context)
            ),
            DOCS,
        )
    ]


def _node_dns(context: Context) -> list[Finding]:
    """DNS probed in the node's pods decides; HNS policies (a node script) only when no pod
    could be probed. The sweep runs this very function on the probes it made."""
    try:
        lookups = node_lookups(context)
    except WinpodError as exc:
        return could_not_check(CHECK_ID, N_("the node's pods"), exc)
    probed = [line for lookup in lookups for line in lookup.evidence]
    answered = [lookup for lookup in lookups if lookup.error is None]
    if answered:
        return [_from_lookups(context, answered, probed)]
    return _from_policies(context, probed)


def _from_lookups(context: Context, answered: list[PodLookup], probed: list[str]) -> Finding:
    name = context.node_name or ""
    evidence = list(probed)
    if any(lookup.ok for lookup in answered):
        return Finding(
            CHECK_ID,
            "ok",
            _("DNS works in pods on {node}").format(node=name),
            _answers(),
            tuple(evidence),
        )
    if not any(lookup.direct_ok for lookup in answered):
        return Finding(
            CHECK_ID,
            "warning",
            _("DNS fails on {node}, and so does a direct query to kube-dns").format(node=name),
            _(
                "The pods cannot reach a kube-dns pod either: the node has no working "
                "pod network (see apiserver-unreachable), not stale DNS policies."
            ),
            tuple(evidence),
            (),
            DOCS,
        )
    running = context.running_pods_on_node()
    evidence.extend(_reboot_evidence(context))
    evidence.append(
        _(
            "{count} running pod(s) on {node} — fewer than two, so nothing masks the stale policies"
        ).format(count=len(running), node=name)
        if len(running) < 2
        else _running_pods(len(running), name)
    )
    return Finding(
        CHECK_ID,
        "error",
        _("DNS fails in pods on {node} (stale HNS policies)").format(node=name),
        _(SUMMARY).format(dns=context.service_ip("kube-system", "kube-dns")),
        tuple(evidence),
        node_remediations(name, answered[0].pod, _kube_proxy_restartable(context)),
        DOCS,
    )


def _from_policies(context: Context, unprobed: list[str]) -> list[Finding]:
    policy, vip = _policy_evidence(context)
    if vip is None:
        return could_not_check(CHECK_ID, N_("the node's HNS policies"), policy[0])
    if vip.state == "programmed":
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("DNS VIP policy present"),
                _("HNS has the DNS Service load-balancer policy on live endpoints"),
                (*unprobed, *policy),
            )
        ]
    evidence = [*unprobed, *_reboot_evidence(context), *policy]
    running = context.running_pods_on_node()
    evidence.append(_running_pods(len(running), context.node_name or ""))
    masked = len(running) >= 2
    return [
        Finding(
            CHECK_ID,
            "warning" if masked else "error",
            _vip_title(vip, masked),
            _(SUMMARY).format(dns=context.service_ip("kube-system", "kube-dns")),
            tuple(evidence),
            node_remediations(context.node_name or "", None, _kube_proxy_restartable(context)),
            DOCS,
        )
    ]
