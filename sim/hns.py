"""A simulated host's HNS objects as `Get-HnsNetwork`, `Get-HnsPolicyList` (v1, hns.psm1 and the
in-box module), `Get-HnsLoadBalancer` (v2, hns.v2.psm1 / HCN) and `Get-HnsEndpoint` print them
(`ConvertTo-Json`, keys as Windows spells them).

kube-proxy programs one load balancer per Service port; the DNS Service gets one for 53/UDP and
53/TCP referencing the kube-dns endpoints. After a reboot the persisted lists survive but the
endpoints are re-created with new ids (`WindowsHost.hns_generation`): the lists still hold the DNS
VIP and reference ids that `Get-HnsEndpoint` no longer shows (SPEC §16 `dns: stale-policies`).
"""

from __future__ import annotations

import uuid

from sim.scenario import API_CLUSTER_IP, DNS_CLUSTER_IP
from sim.world import Obj, WindowsHost, World

_UDP, _TCP = 17, 6
# HCN load-balancer State 2: applied (networkhealth.ps1 LoadBalancerPolicyState).
_APPLIED = 2


def _id(host: WindowsHost, *parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([host.name, *map(str, parts)]))).upper()


def networks(host: WindowsHost) -> list[Obj]:
    """`Get-HnsNetwork`: the management network's vSwitch holds the node's address."""
    return [
        {
            "ID": n.id,
            "Name": n.name,
            "Type": n.type,
            "ManagementIP": host.address,
            "Subnets": [] if n.management else [{"AddressPrefix": "10.244.0.0/16"}],
        }
        for n in host.networks
    ]


def _dns_backends(world: World) -> list[str]:
    return [
        str((p.get("status") or {}).get("podIP"))
        for p in world.iter("pods", "kube-system")
        if ((p.get("metadata") or {}).get("labels") or {}).get("k8s-app") == "kube-dns"
        and (p.get("status") or {}).get("podIP")
    ]


def endpoints(world: World, host: WindowsHost) -> list[Obj]:
    """`Get-HnsEndpoint`: the kube-dns backends as (remote) endpoints of the pod network."""
    pod_network = host.pod_network
    if pod_network is None:
        return []
    return [
        {
            "ID": _id(host, host.hns_generation, ip),
            "IPAddress": ip,
            "VirtualNetworkName": pod_network.name,
            "IsRemoteEndpoint": True,
            "State": 3,
        }
        for ip in _dns_backends(world)
    ]


def _referenced(world: World, host: WindowsHost) -> list[str]:
    generation = host.hns_generation - (1 if host.dns == "stale-policies" else 0)
    return [_id(host, generation, ip) for ip in _dns_backends(world)]


def _vips(dns_ip: str) -> list[tuple[str, int, int]]:
    """(VIP, port, protocol) of each Service load balancer kube-proxy programs."""
    return [(dns_ip, 53, _UDP), (dns_ip, 53, _TCP), (API_CLUSTER_IP, 443, _TCP)]


PROGRAMMED = len(_vips(DNS_CLUSTER_IP))  # what a started kube-proxy leaves


def policy_lists(world: World, host: WindowsHost, dns_ip: str = DNS_CLUSTER_IP) -> list[Obj]:
    """`Get-HnsPolicyList` on a v1 host (empty on a v2 host, where kube-proxy uses HCN)."""
    if host.hns_api != "v1":
        return []
    references = [f"/endpoints/{e}" for e in _referenced(world, host)]
    lists = [
        {
            "ID": _id(host, "policylist", vip, port, protocol),
            "Policies": [
                {
                    "Type": "ELB",
                    "VIPs": [vip],
                    "ExternalPort": port,
                    "InternalPort": port,
                    "Protocol": protocol,
                    "ILB": True,
                }
            ],
            "References": references if vip == dns_ip else [],
        }
        for vip, port, protocol in _vips(dns_ip)
    ]
    return lists[: host.policy_lists]


def load_balancers(world: World, host: WindowsHost, dns_ip: str = DNS_CLUSTER_IP) -> list[Obj]:
    """`Get-HnsLoadBalancer` (hns.v2.psm1) on a v2 host: HCN load balancers."""
    if host.hns_api != "v2":
        return []
    references = _referenced(world, host)
    balancers = [
        {
            "ID": _id(host, "loadbalancer", vip, port, protocol),
            "HostComputeEndpoints": references if vip == dns_ip else [],
            "FrontendVIPs": [vip],
            "PortMappings": [
                {"Protocol": protocol, "InternalPort": port, "ExternalPort": port, "Flags": 0}
            ],
            "State": _APPLIED,
            "SchemaVersion": {"Major": 2, "Minor": 0},
        }
        for vip, port, protocol in _vips(dns_ip)
    ]
    return balancers[: host.policy_lists]


def _slice_addresses(world: World) -> list[str]:
    found: dict[str, None] = {}
    for endpoint_slice in world.iter("endpointslices"):
        for endpoint in endpoint_slice.get("endpoints") or []:
            found.update(dict.fromkeys(str(a) for a in endpoint.get("addresses") or []))
    return list(found)


def stale_endpoint_id(host: WindowsHost, ip: str) -> str:
    return _id(host, "stale", ip)


def remote_endpoints(world: World, host: WindowsHost) -> list[Obj]:
    """Every remote endpoint kube-proxy made on this host: one per EndpointSlice address that
    is not a pod of this node, then the stale ones (`network.staleRemoteEndpoints`) that no
    EndpointSlice holds any more."""
    pod_network = host.pod_network
    if pod_network is None:
        return []
    local = {
        str((p.get("status") or {}).get("podIP"))
        for p in world.iter("pods")
        if (p.get("spec") or {}).get("nodeName") == host.name
    }
    live = [ip for ip in _slice_addresses(world) if ip not in local and ip != host.address]
    entries = [(_id(host, host.hns_generation, ip), ip) for ip in live]
    entries += [(stale_endpoint_id(host, ip), ip) for ip in host.stale_endpoint_ips]
    return [
        {
            "ID": endpoint_id,
            "IPAddress": ip,
            "VirtualNetworkName": pod_network.name,
            "IsRemoteEndpoint": True,
        }
        for endpoint_id, ip in entries
    ]


def load_balancer_states(world: World, host: WindowsHost) -> list[Obj]:
    """Every HNS load balancer with its State: those kube-proxy applied (2), then
    `network.unappliedLoadBalancers` it could not apply (1: 0x803b0013, the port exists)."""
    applied = [
        {"ID": _id(host, "loadbalancer", vip, port, protocol), "State": _APPLIED, "VIPs": [vip]}
        for vip, port, protocol in _vips(DNS_CLUSTER_IP)
    ][: host.policy_lists]
    unapplied = [
        {"ID": _id(host, "unapplied", i), "State": 1, "VIPs": [f"10.0.{200 + i // 250}.{i % 250}"]}
        for i in range(host.unapplied_load_balancers)
    ]
    return applied + unapplied
