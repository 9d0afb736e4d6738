"""`hns-stale-endpoints`: remote HNS endpoints that no EndpointSlice backs, and HNS load
balancers kube-proxy could not apply (`hcnCreateLoadBalancer failed … (0x803b0013)`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from handlers.context import Context, event_line
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding, RemediationRef, Severity
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer
from handlers.transports import KubeObject

CHECK_ID = "hns-stale-endpoints"
DOCS = (
    "https://github.com/kubernetes/kubernetes/issues/130963",
    "https://github.com/microsoft/Windows-Containers/issues/631",
    "https://github.com/microsoft/SDN/blob/master/Kubernetes/windows/debug/networkhealth.ps1",
)
# HCN load-balancer State 2: applied (networkhealth.ps1 LoadBalancerPolicyState).
APPLIED = 2
# What kube-proxy logs (and its events repeat) when HNS holds leftovers: the port of a load
# balancer already exists (k/k#137530), or an object exists after an HNS restart (k/k#139519).
KUBE_PROXY_TEXT = re.compile(
    r"0x803b0013|hcnCreateLoadBalancer failed|already exists\.? \(0xb7\)", re.IGNORECASE
)


@dataclass(frozen=True)
class Endpoint:
    id: str
    ip: str

    def describe(self) -> str:
        return f"{self.id} ({self.ip})"


@dataclass(frozen=True)
class HnsPicture:
    """The node's remote endpoints that no EndpointSlice holds, its load balancers that are not
    applied, and how many remote endpoints there are in all."""

    stale: tuple[Endpoint, ...]
    unapplied: tuple[dict[str, Any], ...]
    remote_count: int


def slice_addresses(context: Context) -> set[str]:
    """Every address any EndpointSlice of the cluster holds (ready or not)."""

    def fetch() -> set[str]:
        slices = context.transports.cluster.list("EndpointSlice")
        return {
            str(address)
            for endpoint_slice in slices
            for endpoint in endpoint_slice.get("endpoints") or []
            for address in endpoint.get("addresses") or []
        }

    return context.once("endpointslice-addresses", fetch)


def hns_picture(context: Context) -> HnsPicture:
    """Read the node's HNS endpoints and load balancers (`hns-endpoints.ps1`) and compare them
    with the EndpointSlices."""
    listing = context.node_script("hns-endpoints")
    held = slice_addresses(context)
    remote = [e for e in listing.get("remoteEndpoints") or [] if isinstance(e, dict)]
    # sorted: a plan made again from an unchanged node names the same endpoints in order
    stale = tuple(
        sorted(
            (
                Endpoint(str(e.get("ID")), str(e.get("IPAddress")))
                for e in remote
                if str(e.get("IPAddress")) not in held
            ),
            key=lambda e: (e.ip, e.id),
        )
    )
    unapplied = tuple(
        b
        for b in listing.get("loadBalancers") or []
        if isinstance(b, dict) and b.get("State") != APPLIED
    )
    return HnsPicture(stale, unapplied, len(remote))


def _kube_proxy_pod_events(context: Context) -> list[KubeObject]:
    """Events of kube-proxy's HostProcess pod on the node (sig-windows-tools), if it has one."""
    pod = next(
        (
            p
            for p in context.pods_on_node()
            if p["metadata"].get("namespace") == "kube-system"
            and str((p["metadata"].get("labels") or {}).get("k8s-app", "")).startswith("kube-proxy")
        ),
        None,
    )
    if pod is None:
        return []
    name = pod["metadata"]["name"]
    return context.once(
        ("kube-proxy-pod-events", name),
        lambda: context.transports.cluster.list(
            "Event", namespace="kube-system", field_selector=f"involvedObject.name={name}"
        ),
    )


def _kube_proxy_events(context: Context) -> list[KubeObject]:
    events = [
        *context.node_events(),
        *_kube_proxy_pod_events(context),
        *(context.pod_events() if context.kind == "Pod" else []),
    ]
    return [e for e in events if KUBE_PROXY_TEXT.search(str(e.get("message", "")))]


def _pod_symptomatic(pod: KubeObject) -> bool:
    """A pod whose own state says its network may be at fault: not Ready."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") != "True" for c in conditions)


def _remediations(node: str, picture: HnsPicture) -> tuple[RemediationRef, ...]:
    offered = [offer("kube-proxy-restart", node)]
    if picture.stale:
        offered.append(offer("hns-endpoint-cleanup", node))
    return tuple(offered)


@check(
    CHECK_ID,
    title=N_("Stale HNS endpoints and load balancers"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "kube-proxy programs a remote HNS endpoint for every Service backend on another "
            "node and a load balancer per Service port. When it misses a deletion (an HNS "
            "restart, a crash), the endpoint stays: a pod that later gets that IP loses its "
            "network (k/k#130963, W-C#631), and new load balancers fail because their port "
            "already exists (0x803b0013)."
        ),
        signals=(
            N_("remote Get-HnsEndpoint entries whose IP no EndpointSlice holds"),
            N_("HNS load balancers whose State is not 2 (applied)"),
            N_(
                "kube-proxy: hcnCreateLoadBalancer failed in Win32: The specified port already "
                "exists. (0x803b0013)"
            ),
            N_(
                "kube-proxy after an HNS restart: Cannot create a file when that file already "
                "exists. (0xb7)"
            ),
        ),
        fixes=(
            N_("kube-proxy-restart: restart kube-proxy first (it re-applies its load balancers)"),
            N_(
                "hns-endpoint-cleanup: remove only the stale remote endpoints, each named with "
                "its IP in the plan, with an HNS snapshot before and after"
            ),
        ),
        links=DOCS,
    ),
)
def hns_stale_endpoints(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    if context.kind == "Pod":
        assert context.pod is not None
        if not _pod_symptomatic(context.pod) and not _kube_proxy_events(context):
            return [
                Finding(CHECK_ID, "ok", _("The pod's network looks sound"), _("the pod is Ready"))
            ]
    node = str(context.node_name)
    texts = [event_line(e) for e in _kube_proxy_events(context)[-3:]]
    try:
        picture = hns_picture(context)
    except WinpodError as exc:
        if texts:
            return [
                Finding(
                    CHECK_ID,
                    "warning",
                    _("kube-proxy reports HNS leftovers (HNS could not be read)"),
                    _(
                        "kube-proxy on {node} failed to create load balancers; reading HNS "
                        "failed: {error}"
                    ).format(node=node, error=exc),
                    tuple(texts),
                    (offer("kube-proxy-restart", node),),
                    DOCS,
                )
            ]
        return could_not_check(CHECK_ID, _("HNS endpoints on {node}").format(node=node), exc)
    evidence = [
        _("remote endpoint {endpoint}: no EndpointSlice holds {ip}").format(
            endpoint=e.describe(), ip=e.ip
        )
        for e in picture.stale
    ]
    evidence += [
        _("load balancer {id} {vips}: State {state} (not applied)").format(
            id=b.get("ID"),
            vips=", ".join(map(str, b.get("FrontendVIPs") or [])),
            state=b.get("State"),
        )
        for b in picture.unapplied
    ]
    stale_ips = {e.ip: e for e in picture.stale}
    reused = [
        (p, stale_ips[ip])
        for p in context.pods_on_node()
        if (ip := str((p.get("status") or {}).get("podIP") or "")) in stale_ips
    ]
    evidence += [
        _(
            "pod {pod} has IP {ip}, held by stale remote endpoint {endpoint}: it has no network"
        ).format(
            pod=f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}",
            ip=e.ip,
            endpoint=e.id,
        )
        for p, e in reused
    ]
    if not picture.stale and not picture.unapplied:
        note = [
            _("{count} remote endpoints, each held by an EndpointSlice").format(
                count=picture.remote_count
            )
        ]
        if texts:
            note.append(_("kube-proxy reported HNS leftovers earlier; HNS is clean now"))
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("HNS endpoints match the EndpointSlices"),
                _("no stale remote endpoint and no unapplied load balancer on {node}").format(
                    node=node
                ),
                tuple([*note, *texts]),
            )
        ]
    severity: Severity = "error" if reused or picture.unapplied or texts else "warning"
    if picture.stale and picture.unapplied:
        found = _(
            "{stale} remote HNS endpoint(s) no EndpointSlice holds and {unapplied} load "
            "balancer(s) not applied on {node}"
        )
    elif picture.stale:
        found = _("{stale} remote HNS endpoint(s) no EndpointSlice holds on {node}")
    else:
        found = _("{unapplied} load balancer(s) not applied on {node}")
    found = found.format(stale=len(picture.stale), unapplied=len(picture.unapplied), node=node)
    return [
        Finding(
            CHECK_ID,
            severity,
            _("Stale HNS endpoints / load balancers"),
            _(
                "{found}: restart kube-proxy first; if stale endpoints remain, remove exactly "
                "those (hns-endpoint-cleanup)."
            ).format(found=found),
            tuple([*evidence[:12], *texts]),
            _remediations(node, picture),
            DOCS,
        )
    ]
