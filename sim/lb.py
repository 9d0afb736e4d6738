"""Service networking as the control plane does it: ClusterIPs and node ports allocated on write,
and a load-balancer controller that gives LoadBalancer Services an ingress IP after a delay.

The delay is `World.lb_delay_ms` (milliseconds, default 300): long enough that a client sees
`<pending>` first, as with a cloud load balancer, and changeable at run time (control API).
With `World.lb_enabled` false the cloud does not answer: Services stay `<pending>` while the
controller keeps retrying, so they get their address soon after it is enabled again.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
from collections.abc import Iterator

from sim.world import ApiError, Obj, Resource, World

CLUSTER_IP_RANGE = ipaddress.ip_network("10.0.0.0/16")
# TEST-NET-3 (RFC 5737): documentation addresses that can never be routed to anyone.
INGRESS_RANGE = ipaddress.ip_network("203.0.113.0/24")
NODE_PORTS = range(30000, 32768)
# The first ClusterIPs are the ones the defaults use (10.0.0.1 API, 10.0.0.10 DNS).
_FIRST_DYNAMIC_CLUSTER_IP = 11
# How often the controller retries while the cloud does not answer (`World.lb_enabled` false).
RETRY_S = 0.25


def _invalid(kind: str, name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {field}: {message}',
        {
            "name": name,
            "kind": kind.lower() + "s",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def _other_services(world: World, service: Obj) -> Iterator[Obj]:
    meta = service["metadata"]
    for other in world.iter("services"):
        other_meta = other["metadata"]
        if (other_meta.get("namespace"), other_meta["name"]) != (
            meta.get("namespace"),
            meta["name"],
        ):
            yield other


def _allocate_cluster_ip(used: set[str]) -> str:
    for offset in range(_FIRST_DYNAMIC_CLUSTER_IP, CLUSTER_IP_RANGE.num_addresses - 1):
        candidate = str(CLUSTER_IP_RANGE[offset])
        if candidate not in used:
            return candidate
    raise ApiError(500, "InternalError", "the Service ClusterIP range 10.0.0.0/16 is full")


def admit_service(world: World, service: Obj, current: Obj | None) -> None:
    """Fill in what the API server allocates or defaults on a Service write, in place.

    On update, allocated values the client left out are kept from `current`, as the real
    API server does, so that a `replace` of a fetched-and-edited object keeps its addresses.
    """
    meta = service.setdefault("metadata", {})
    name = meta.get("name", "")
    spec = service.setdefault("spec", {})
    old_spec = (current or {}).get("spec") or {}
    service_type = spec.setdefault("type", "ClusterIP")
    others = list(_other_services(world, service))

    if service_type != "ExternalName":
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        cluster_ip = spec.get("clusterIP")
        used_ips = {(o.get("spec") or {}).get("clusterIP") for o in others} - {None, "None"}
        if not cluster_ip:
            spec["clusterIP"] = _allocate_cluster_ip(used_ips)  # type: ignore[arg-type]
        elif cluster_ip != "None" and cluster_ip in used_ips:
            raise _invalid(
                "Service",
                name,
                "spec.clusterIPs",
                f"Invalid value: []string{{{cluster_ip!r}}}: failed to allocate IP "
                f"{cluster_ip}: provided IP is already allocated",
            )
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")

    wants_node_ports = service_type in ("NodePort", "LoadBalancer")
    used_ports = {
        p["nodePort"]
        for o in others
        for p in (o.get("spec") or {}).get("ports") or []
        if p.get("nodePort")
    }
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
        for p in old_spec.get("ports") or []
    }
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if not wants_node_ports:
            port.pop("nodePort", None)
            continue
        if not port.get("nodePort"):
            port["nodePort"] = old_ports.get((port.get("port"), port["protocol"]))
        if port.get("nodePort") in used_ports:
            raise _invalid(
                "Service",
                name,
                "spec.ports[].nodePort",
                f"Invalid value: {port['nodePort']}: provided port is already allocated",
            )
        if not port.get("nodePort"):
            port["nodePort"] = next((p for p in NODE_PORTS if p not in used_ports), None)
            if port["nodePort"] is None:
                raise ApiError(500, "InternalError", "the node port range is full")
        used_ports.add(port["nodePort"])
    if wants_node_ports:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    else:
        service["status"] = {"loadBalancer": {}}
    service.setdefault("status", {}).setdefault("loadBalancer", {})


def _needs_ingress(service: Obj) -> bool:
    return (service.get("spec") or {}).get("type") == "LoadBalancer" and not (
        (service.get("status") or {}).get("loadBalancer") or {}
    ).get("ingress")


class LoadBalancerController:
    """Assigns each LoadBalancer Service without an ingress a TEST-NET-3 address, once."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._pending: set[str] = set()  # Service uids with an assignment scheduled

    def install(self) -> None:
        """Watch writes from now on, and take care of Services loaded from the scenario."""
        self.world.after_write.append(self.on_write)
        for service in list(self.world.iter("services")):
            self.on_write(self.world.resource("services"), service)

    def on_write(self, resource: Resource, obj: Obj) -> None:
        if resource.plural != "services" or not _needs_ingress(obj):
            return
        meta = obj["metadata"]
        uid = meta["uid"]
        if uid in self._pending:
            return
        self._pending.add(uid)
        args = (meta.get("namespace"), meta["name"], uid)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a World used without servers: no one would notice a delay
            self._assign(*args)
            return
        loop.call_later(max(self.world.lb_delay_ms, 0) / 1000, self._assign, *args)

    def _assign(self, namespace: str | None, name: str, uid: str) -> None:
        self._pending.discard(uid)
        service = self.world.find("services", namespace, name)
        if service is None or service["metadata"]["uid"] != uid or not _needs_ingress(service):
            return
        if not self.world.lb_enabled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no servers, so nobody to retry for: it stays pending
                return
            self._pending.add(uid)
            loop.call_later(RETRY_S, self._assign, namespace, name, uid)
            return
        used = {
            ingress.get("ip")
            for other in self.world.iter("services")
            for ingress in ((other.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            or []
        }
        address = next((str(ip) for ip in INGRESS_RANGE.hosts() if str(ip) not in used), None)
        if address is None:  # like a cloud out of public IPs: the Service stays pending
            return
        status = copy.deepcopy(service.get("status") or {})
        status["loadBalancer"] = {"ingress": [{"ip": address, "ipMode": "VIP"}]}
        self.world.patch(
            "services", namespace, name, {"status": status}, "application/merge-patch+json"
        )
