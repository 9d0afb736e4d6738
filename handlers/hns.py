"""HNS state as the HNS cmdlets print it (`ConvertTo-Json` of `Get-HnsPolicyList`,
`Get-HnsLoadBalancer`, `Get-HnsEndpoint`), read the same way from a live node and from saved
output: does a load balancer hold the cluster DNS VIP, and do its references still exist?

Two shapes hold a Service VIP: v1 policy lists (hns.psm1 and the in-box module) carry
`Policies[].VIPs` and `References` like `/endpoints/<id>`; v2 HCN load balancers (hns.v2.psm1)
carry `FrontendVIPs`, `PortMappings` and bare endpoint ids in `HostComputeEndpoints`. After a
reboot the persisted lists still hold the VIP but reference endpoints that no longer exist:
present is not healthy. Also: which form kube-proxy takes on a node (service or pod).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from handlers.i18n import _
from handlers.transports import Cluster, KubeObject

VipState = Literal["programmed", "stale", "missing"]


@dataclass(frozen=True)
class DnsVip:
    """What HNS has for the DNS Service VIP."""

    vip: str
    holders: int  # policy lists and load balancers that hold the VIP
    references: int  # distinct endpoints they reference
    missing: int  # of those, how many Get-HnsEndpoint no longer shows

    @property
    def state(self) -> VipState:
        if self.holders == 0:
            return "missing"
        if self.missing:
            return "stale"
        return "programmed"

    def describe(self) -> str:
        if self.state == "missing":
            return _("no policy list or load balancer holds DNS VIP {vip}").format(vip=self.vip)
        return _(
            "{holders} policy list(s)/load balancer(s) hold DNS VIP {vip}, referencing "
            "{references} endpoint(s), {missing} of them gone"
        ).format(
            holders=self.holders, vip=self.vip, references=self.references, missing=self.missing
        )


def as_list(value: Any) -> list[Any]:
    """`ConvertTo-Json` prints one object bare and none as null."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def describe_networks(networks: Iterable[dict[str, Any]]) -> str:
    """`Get-HnsNetwork` output as `ext (L2Bridge), azure (L2Bridge)`."""
    return ", ".join(f"{n.get('Name')} ({n.get('Type')})" for n in networks if isinstance(n, dict))


def _endpoint_id(reference: object) -> str:
    return str(reference).rsplit("/", 1)[-1].strip("{}").upper()


def _holds_v1(policy_list: dict[str, Any], vip: str) -> bool:
    return any(vip in as_list(p.get("VIPs")) for p in as_list(policy_list.get("Policies")))


def _holds_v2(balancer: dict[str, Any], vip: str) -> bool:
    return vip in as_list(balancer.get("FrontendVIPs"))


def dns_vip(
    vip: str,
    policy_lists: Iterable[dict[str, Any]],
    load_balancers: Iterable[dict[str, Any]],
    endpoints: Iterable[dict[str, Any]],
) -> DnsVip:
    lists = [p for p in policy_lists if isinstance(p, dict) and _holds_v1(p, vip)]
    balancers = [b for b in load_balancers if isinstance(b, dict) and _holds_v2(b, vip)]
    referenced = {_endpoint_id(r) for p in lists for r in as_list(p.get("References"))}
    referenced |= {
        _endpoint_id(e) for b in balancers for e in as_list(b.get("HostComputeEndpoints"))
    }
    existing = {_endpoint_id(e.get("ID")) for e in endpoints if isinstance(e, dict)}
    return DnsVip(vip, len(lists) + len(balancers), len(referenced), len(referenced - existing))


def dns_vip_of_status(status: dict[str, Any]) -> DnsVip:
    """The DNS VIP's state from node-status.ps1's JSON (which carries the cmdlets' objects)."""
    return dns_vip(
        str(status.get("dnsVip") or ""),
        as_list(status.get("dnsPolicyLists")),
        as_list(status.get("dnsLoadBalancers")),
        as_list(status.get("dnsEndpoints")),
    )


KUBE_PROXY_SERVICES = ("kubeproxy", "kube-proxy")


def kube_proxy_service(services: dict[str, Any]) -> str | None:
    """The name kube-proxy's Windows service is installed under, or None (not a service)."""
    return next((name for name in KUBE_PROXY_SERVICES if name in services), None)


def kube_proxy_pod(cluster: Cluster, node: str) -> KubeObject | None:
    """kube-proxy's HostProcess pod on `node` (a sig-windows-tools DaemonSet), if any."""
    pods = cluster.list("Pod", namespace="kube-system", field_selector=f"spec.nodeName={node}")
    return next((p for p in pods if _is_kube_proxy(p)), None)


def _is_kube_proxy(pod: KubeObject) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get("k8s-app", "")).startswith("kube-proxy")


def pod_ready(pod: KubeObject) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
