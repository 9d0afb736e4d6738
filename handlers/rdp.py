"""RDP access to a Windows node (SPEC §6): a selector-less LoadBalancer Service on 3389 plus an
EndpointSlice (or v1 Endpoints where that is all the API serves) holding the node's address.

Everything winpod creates carries its labels and an expiry annotation; winpod never deletes a
Service without those labels, whatever its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from config.addresses import plain_host
from config.settings import Settings, format_duration, parse_duration
from handlers import names
from handlers.context import IP_ADDRESS_TYPES, node_address, node_facts
from handlers.errors import BadInput, NotFound
from handlers.i18n import _
from handlers.transports import Cluster, KubeObject

PORT = 3389
EXPIRES = "winpod.io/expires-at"
REQUESTED_BY = "winpod.io/requested-by"
# The node's full name: a label value holds at most 63 characters, a node name up to 253.
NODE = "winpod.io/node"
LABELS = {"app.kubernetes.io/managed-by": "winpod", "winpod.io/rdp": "true"}
SELECTOR = "app.kubernetes.io/managed-by=winpod,winpod.io/rdp=true"
OPEN_WORLD = {"0.0.0.0/0", "::/0"}
# Private blocks: a range that reaches past one of them into public addresses is a typo of one
# or the other (`10.0.0.0/7` holds the public 11.0.0.0/8), never what someone meant to allow.
PRIVATE_BLOCKS = tuple(
    ipaddress.ip_network(block)
    for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Session:
    node: str
    service: str
    expires_at: datetime
    source_ranges: tuple[str, ...]
    address: str | None

    @property
    def connect(self) -> str:
        return f"mstsc.exe /v:{self.address}" if self.address else _("(no address yet)")


def service_name(node: str) -> str:
    """`winpod-rdp-<node>` as a valid Service name (DNS-1035 label, ≤ 63 characters)."""
    base = "winpod-rdp-" + node.lower().replace(".", "-")
    if len(base) <= 63:
        return base
    digest = hashlib.sha256(node.encode()).hexdigest()[:8]
    return f"{base[:54].rstrip('-')}-{digest}"


def parse_ttl(text: str | None, settings: Settings) -> timedelta:
    ttl = settings.rdp.default_ttl if not text else _duration(text)
    if ttl < settings.rdp.min_ttl:  # sub-second TTLs showed as "0s" and failed once approved
        shortest = format_duration(settings.rdp.min_ttl)
        raise BadInput(
            _("ttl {ttl} is shorter than {shortest} (rdp.min_ttl)").format(
                ttl=text or format_duration(ttl), shortest=shortest
            )
        )
    if ttl > settings.rdp.max_ttl:
        maximum = format_duration(settings.rdp.max_ttl)
        raise BadInput(
            _("ttl {ttl} is longer than rdp.max_ttl ({maximum})").format(
                ttl=text or format_duration(ttl), maximum=maximum
            )
        )
    return ttl


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"ttl: {exc}") from None


def source_ranges(requested: str | None, settings: Settings) -> list[str]:
    """The CIDRs allowed to connect: the request's, else rdp.source_ranges. A request may not
    reach more than rdp.max_addresses addresses in all (`0.0.0.0/1,128.0.0.0/1` is the whole
    internet in two pieces) unless each of its ranges is listed in rdp.source_ranges."""
    configured = list(settings.rdp.source_ranges)
    raw = [r.strip() for r in requested.split(",")] if requested else configured
    if not raw:
        raise BadInput(_("no source range: give from=CIDR or configure rdp.source_ranges"))
    networks = [_network(value, settings) for value in raw]
    ranges = [str(network) for network in networks]
    if requested and not set(ranges) <= {_listed(value) for value in configured}:
        covered = _addresses(networks)
        if covered > settings.rdp.max_addresses:
            raise BadInput(
                _(
                    "refusing to open RDP to {covered} addresses (more than rdp.max_addresses, "
                    "{limit}); give narrower ranges, or list them in rdp.source_ranges if you "
                    "really mean it"
                ).format(covered=f"{covered:,}", limit=f"{settings.rdp.max_addresses:,}")
            )
        for network in networks:
            _refuse_mixed(network)
    return ranges


def _network(value: str, settings: Settings) -> Network:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadInput(
            _("{value} is not a CIDR such as 198.51.100.0/24").format(value=repr(value[:60]))
        ) from None
    listed = str(network) in settings.rdp.source_ranges
    if str(network) in OPEN_WORLD and not listed:
        raise BadInput(
            _(
                "refusing to open RDP to the whole internet ({network}); list it in "
                "rdp.source_ranges explicitly if you really mean it"
            ).format(network=network)
        )
    if network.network_address != ipaddress.ip_address(value.partition("/")[0]) and not listed:
        raise BadInput(
            _(
                "{value} has bits set past its /{prefix}: it would allow all of {network}; "
                "write {network} if you mean that, or /{longest} for one address"
            ).format(
                value=value[:60],
                prefix=network.prefixlen,
                network=network,
                longest=network.max_prefixlen,
            )
        )
    if network == IPV4_MAPPED or _holds(IPV4_MAPPED, network):
        raise BadInput(
            _("{network} is IPv4 written as IPv6; write the IPv4 range itself").format(
                network=network
            )
        )
    return network


def _refuse_mixed(network: Network) -> None:
    for block in PRIVATE_BLOCKS:
        if _holds(network, block):
            raise BadInput(
                _(
                    "{network} holds the private range {block} and public addresses around it; "
                    "give the private or the public range, not both in one"
                ).format(network=network, block=block)
            )


def _listed(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return value


def _holds(outer: Network, inner: Network) -> bool:
    """`outer` is wider than `inner` and contains all of it."""
    return (
        outer.version == inner.version
        and outer.prefixlen < inner.prefixlen
        and int(outer.network_address) <= int(inner.network_address)
        and int(inner.broadcast_address) <= int(outer.broadcast_address)
    )


def _addresses(networks: list[Network]) -> int:
    """How many addresses the ranges reach together, overlaps counted once."""
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return sum(n.num_addresses for n in ipaddress.collapse_addresses(v4)) + sum(
        n.num_addresses for n in ipaddress.collapse_addresses(v6)
    )


def check_node(cluster: Cluster, node_name: str, settings: Settings) -> tuple[KubeObject, str]:
    """The node must exist, run Windows and be Ready; returns it and its address."""
    name = names.node_name(node_name)
    try:
        node = cluster.get("Node", name)
    except NotFound:
        raise NotFound(
            _("node {node} not found in context {context}").format(
                node=name, context=cluster.context
            )
        ) from None
    if not node_facts(node).windows:
        raise BadInput(
            _("node {node} is not a Windows node; RDP is for Windows nodes").format(node=name)
        )
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        raise BadInput(_("node {node} is not Ready; RDP would not reach it").format(node=name))
    # an EndpointSlice holds IP addresses only, whatever winrm.address_type says
    wanted = (
        settings.winrm.address_type
        if settings.winrm.address_type in IP_ADDRESS_TYPES
        else "InternalIP"
    )
    return node, node_address(node, wanted, "RDP")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expiry(service: KubeObject) -> datetime | None:
    value = ((service.get("metadata") or {}).get("annotations") or {}).get(EXPIRES)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _ours(service: KubeObject) -> bool:
    labels = (service.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in LABELS.items())


def _node_of(service: KubeObject) -> str:
    meta = service.get("metadata") or {}
    return str(
        (meta.get("annotations") or {}).get(NODE) or (meta.get("labels") or {}).get(NODE, "")
    )


def _refuse_other_node(service: KubeObject, namespace: str, node: str) -> None:
    """`a.b` and `a-b` share a Service name: one node's session is never the other's."""
    other = _node_of(service)
    if other != node:
        raise BadInput(
            _(
                "Service {service} gives RDP to node {other}, not {node}; close that session first"
            ).format(service=f"{namespace}/{service['metadata']['name']}", other=other, node=node)
        )


def manifests(
    node: str, address: str, namespace: str, ranges: list[str], expires_at: datetime, requester: str
) -> tuple[KubeObject, KubeObject, KubeObject]:
    """(Service, EndpointSlice, v1 Endpoints fallback) for one node."""
    name = service_name(node)
    labels = {**LABELS, NODE: node} if len(node) <= 63 else dict(LABELS)
    annotations = {EXPIRES: _stamp(expires_at), REQUESTED_BY: requester, NODE: node}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": ranges,
            "ports": [{"name": "rdp", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                **labels,
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "winpod.io",
            },
        },
        "addressType": "IPv6" if ":" in address else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "rdp", "port": PORT, "protocol": "TCP"}],
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "subsets": [
            {
                "addresses": [{"ip": address}],
                "ports": [{"name": "rdp", "port": PORT, "protocol": "TCP"}],
            }
        ],
    }
    return service, endpoint_slice, endpoints


def open_access(
    cluster: Cluster,
    namespace: str,
    node: str,
    address: str,
    ranges: list[str],
    expires_at: datetime,
    requester: str,
) -> tuple[str, bool]:
    """Create the objects, or extend an open session; returns (service name, extended)."""
    service, endpoint_slice, endpoints = manifests(
        node, address, namespace, ranges, expires_at, requester
    )
    name = service["metadata"]["name"]
    try:
        existing = cluster.get("Service", name, namespace)
    except NotFound:
        existing = None
    if existing is not None:
        if not _ours(existing):
            raise BadInput(
                _("Service {service} exists and is not winpod's; left alone").format(
                    service=f"{namespace}/{name}"
                )
            )
        _refuse_other_node(existing, namespace, node)
        cluster.patch(
            "Service",
            name,
            {
                "metadata": {"annotations": service["metadata"]["annotations"]},
                "spec": {"loadBalancerSourceRanges": ranges},
            },
            namespace,
        )
        return name, True
    cluster.create("Service", service, namespace)
    try:
        cluster.create("EndpointSlice", endpoint_slice, namespace)
    except NotFound:  # an API without discovery.k8s.io/v1: fall back to v1 Endpoints
        cluster.create("Endpoints", endpoints, namespace)
    return name, False


def wait_for_address(
    cluster: Cluster, namespace: str, name: str, timeout: timedelta, poll_s: float = 1.0
) -> str | None:
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        address = _ingress_address(cluster.get("Service", name, namespace))
        if address is not None:
            return address
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def _ingress_address(service: KubeObject) -> str | None:
    """The load balancer's first address that is a plain IP or host name: it is shown to people
    as `mstsc.exe /v:ADDRESS`, so a status written by anyone else cannot put more there."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        for value in (entry.get("ip"), entry.get("hostname")):
            address = plain_host(str(value)) if value else None
            if address is not None:
                return address
    return None


def close_access(cluster: Cluster, namespace: str, node: str) -> bool:
    """Delete winpod's objects for `node`; False when there was nothing of winpod's to close."""
    name = service_name(node)
    try:
        service = cluster.get("Service", name, namespace)
    except NotFound:
        return False
    if not _ours(service):
        raise BadInput(
            _("Service {service} is not winpod's; winpod never deletes it").format(
                service=f"{namespace}/{name}"
            )
        )
    _refuse_other_node(service, namespace, node)
    cluster.delete("Service", name, namespace)
    for kind in ("EndpointSlice", "Endpoints"):
        with contextlib.suppress(NotFound):
            cluster.delete(kind, name, namespace)
    return True


def sessions(cluster: Cluster, namespace: str) -> list[Session]:
    found = []
    for service in cluster.list("Service", namespace=namespace, label_selector=SELECTOR):
        if not _ours(service):
            continue
        meta = service.get("metadata") or {}
        address = _ingress_address(service)
        found.append(
            Session(
                node=_node_of(service),
                service=str(meta.get("name")),
                expires_at=_expiry(service) or datetime.now(UTC),
                source_ranges=tuple(
                    (service.get("spec") or {}).get("loadBalancerSourceRanges") or ()
                ),
                address=address,
            )
        )
    return found


def reconcile(cluster: Cluster, namespace: str, now: datetime) -> list[Session]:
    """Delete every expired session winpod created; returns what it closed."""
    closed = []
    for session in sessions(cluster, namespace):
        if (
            session.expires_at <= now
            and session.node
            and close_access(cluster, namespace, session.node)
        ):
            closed.append(session)
    return closed


def describe(session: Session) -> dict[str, Any]:
    return {
        "node": session.node,
        "service": session.service,
        "expiresAt": _stamp(session.expires_at),
        "sourceRanges": list(session.source_ranges),
        "address": session.address,
    }
