"""What a simulated pod can reach and what its DNS answers: the network behaviour model (SPEC §8).

Everything here is a pure function of the `World` (plus the per-pod DNS overrides kept below), so
pod exec (`sim.pod_shell`) and tests ask the same questions and get the same answers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sim.scenario import is_windows_node
from sim.world import Obj, WindowsHost, World

CLUSTER_DOMAIN = "cluster.local"
DNS_PORT = 53
# Every public name resolves here (TEST-NET-3, RFC 5737): it never routes anywhere real.
EXTERNAL_ADDRESS = "203.0.113.80"
EXTERNAL_TCP_PORTS = frozenset({80, 443})
# Names ending in one of these are "on the internet"; any other name outside the cluster domain
# gets NXDOMAIN from the upstream resolver, as a made-up name would.
PUBLIC_TLDS = frozenset(
    {
        "com",
        "net",
        "org",
        "io",
        "dev",
        "app",
        "cloud",
        "edu",
        "gov",
        "info",
        "biz",
        "co",
        "me",
        "ms",
        "us",
        "uk",
        "de",
        "fr",
        "cn",
        "jp",
    }
)
CLUSTER_TTL = 5  # CoreDNS `kubernetes` plugin default
EXTERNAL_TTL = 300
# moby#28401: hosts below this build cannot follow the secret volume's symlinks.
SYMLINK_FIX_BUILD = 17074
_BUILD = re.compile(r"^\s*10\.0[ .](\d{4,5})")


# --- pods and nodes --------------------------------------------------------------------------


def node_build(node: Obj | None) -> int | None:
    """The Windows build from `nodeInfo.kernelVersion` (`10.0.17763.2061` or the Docker-era
    `10.0 14393 (14393.1715.amd64fre…)`), None for Linux or unknown nodes."""
    if node is None:
        return None
    kernel = str(((node.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion") or "")
    match = _BUILD.match(kernel)
    return int(match.group(1)) if match else None


def is_linux_pod(world: World, pod: Obj) -> bool:
    node = world.node_of_pod(pod)
    return node is not None and not is_windows_node(node)


def host_of_pod(world: World, pod: Obj) -> WindowsHost | None:
    node_name = (pod.get("spec") or {}).get("nodeName")
    return world.hosts.get(node_name) if node_name else None


def pod_ip(pod: Obj) -> str | None:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return None
    ip = status.get("podIP")
    return str(ip) if ip else None


def token_mounted(pod: Obj) -> bool:
    return (pod.get("spec") or {}).get("automountServiceAccountToken") is not False


def token_readable(world: World, pod: Obj) -> bool:
    """Whether the pod can read its ServiceAccount files (moby#28401 on builds below 17074)."""
    build = node_build(world.node_of_pod(pod))
    return token_mounted(pod) and (build is None or build >= SYMLINK_FIX_BUILD)


# --- per-pod DNS client settings ---------------------------------------------------------------


@dataclass(frozen=True)
class DnsOverride:
    """What `Set-DnsClientServerAddress` / `Set-DnsClient` changed inside one pod."""

    servers: tuple[str, ...] | None = None
    suffix: str | None = None


# Kept beside the World rather than on the Pod object: running a command inside a real pod does
# not change its API object, so the bot must not be able to read the override through the API.
# Keyed by pod uid, so a re-created pod starts with a fresh adapter, as a real one does.
_OVERRIDES: weakref.WeakKeyDictionary[World, dict[str, DnsOverride]] = weakref.WeakKeyDictionary()


def _uid(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def dns_override(world: World, pod: Obj) -> DnsOverride:
    return _OVERRIDES.get(world, {}).get(_uid(pod), DnsOverride())


def set_dns_servers(world: World, pod: Obj, servers: Sequence[str] | None) -> None:
    """Point the pod's adapter at `servers`; None restores the cluster DNS (`-Reset…`)."""
    current = dns_override(world, pod)
    new = DnsOverride(tuple(servers) if servers is not None else None, current.suffix)
    _OVERRIDES.setdefault(world, {})[_uid(pod)] = new


def set_dns_suffix(world: World, pod: Obj, suffix: str) -> None:
    current = dns_override(world, pod)
    _OVERRIDES.setdefault(world, {})[_uid(pod)] = DnsOverride(current.servers, suffix or None)


# --- the pod's adapter -------------------------------------------------------------------------


@dataclass(frozen=True)
class Adapter:
    """The one network adapter a Windows pod sees, as ipconfig / Get-NetAdapter show it."""

    if_index: int
    alias: str
    description: str
    mac: str
    ipv4: str
    mask: str
    gateway: str
    link_local: str
    dns_servers: tuple[str, ...]
    suffix: str
    search_list: tuple[str, ...]


def cluster_dns_ip(world: World) -> str | None:
    service = world.find("services", "kube-system", "kube-dns")
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    return str(ip) if ip and ip != "None" else None


def adapter(world: World, pod: Obj) -> Adapter | None:
    """None when the pod has no IP (not Running): then it has no network at all."""
    ip = pod_ip(pod)
    if ip is None:
        return None
    digest = hashlib.sha256(_uid(pod).encode()).hexdigest()
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    default_suffix = f"{namespace}.svc.{CLUSTER_DOMAIN}"
    override = dns_override(world, pod)
    cluster_dns = cluster_dns_ip(world)
    servers = (
        override.servers
        if override.servers is not None
        else ((cluster_dns,) if cluster_dns else ())
    )
    suffix = override.suffix or default_suffix
    # Windows pods get one DNS suffix, their namespace's (kubernetes.io dns-pod-service):
    # `kubernetes` and the full name resolve, `kubernetes.default` does not.
    search = tuple(dict.fromkeys([suffix, default_suffix]))
    octets = ip.split(".")
    gateway = ".".join([*octets[:3], "1"]) if len(octets) == 4 else ""
    mac = "00-15-5D-" + "-".join(digest[i : i + 2].upper() for i in (0, 2, 4))
    if_index = 7 + int(digest[6:10], 16) % 40
    link_local = str(
        ipaddress.IPv6Address(
            f"fe80::{digest[10:14]}:{digest[14:18]}:{digest[18:22]}:{digest[22:26]}"
        )
    )
    return Adapter(
        if_index=if_index,
        alias=f"vEthernet ({digest[26:38]}_eth0)",
        description="Hyper-V Virtual Ethernet Container Adapter",
        mac=mac,
        ipv4=ip,
        mask="255.255.255.0",
        gateway=gateway,
        link_local=link_local,
        dns_servers=servers,
        suffix=suffix,
        search_list=search,
    )


# --- reachability ------------------------------------------------------------------------------


def is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _service_by_ip(world: World, ip: str) -> Obj | None:
    for service in world.iter("services"):
        spec = service.get("spec") or {}
        if ip == spec.get("clusterIP") or ip in (spec.get("clusterIPs") or []):
            return service
    return None


def _pod_by_ip(world: World, ip: str) -> Obj | None:
    return world.derived("pods-by-ip", _pods_by_ip, of="pods").get(ip)


def _pods_by_ip(world: World) -> dict[str, Obj]:
    by_ip: dict[str, Obj] = {}
    for pod in world.iter("pods"):
        ip = pod_ip(pod)
        if ip is not None:
            by_ip.setdefault(ip, pod)  # the first holder, as a scan in store order finds
    return by_ip


def _is_kube_dns_pod(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    return meta.get("namespace") == "kube-system" and (
        (meta.get("labels") or {}).get("k8s-app") == "kube-dns"
    )


def kube_dns_pod_ips(world: World) -> list[str]:
    return [
        ip
        for pod in world.iter("pods", "kube-system")
        if _is_kube_dns_pod(pod) and (ip := pod_ip(pod))
    ]


def _listens(pod: Obj, port: int, protocol: str) -> bool:
    """A pod listens on the ports its containers declare; CoreDNS pods also on 53."""
    if _is_kube_dns_pod(pod) and port == DNS_PORT:
        return True
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if (
                declared.get("containerPort") == port
                and (declared.get("protocol") or "TCP") == protocol
            ):
                return True
    return False


def _selected_pods(world: World, service: Obj) -> list[Obj]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return []
    return [
        pod
        for pod in world.iter("pods", meta.get("namespace"))
        if pod_ip(pod)
        and all(
            ((pod.get("metadata") or {}).get("labels") or {}).get(k) == v
            for k, v in selector.items()
        )
    ]


def _has_backends(world: World, service: Obj) -> bool:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    if spec.get("selector"):
        return bool(_selected_pods(world, service))
    name, namespace = meta.get("name"), meta.get("namespace")
    if (namespace, name) == ("default", "kubernetes"):
        return True
    for endpoint_slice in world.iter("endpointslices", namespace):
        labels = (endpoint_slice.get("metadata") or {}).get("labels") or {}
        if labels.get("kubernetes.io/service-name") == name and any(
            e.get("addresses") for e in endpoint_slice.get("endpoints") or []
        ):
            return True
    endpoints = world.find("endpoints", namespace, str(name))
    return any(s.get("addresses") for s in (endpoints or {}).get("subsets") or [])


def _serves(service: Obj, port: int, protocol: str) -> bool:
    return any(
        p.get("port") == port and (p.get("protocol") or "TCP") == protocol
        for p in (service.get("spec") or {}).get("ports") or []
    )


def dns_vip_policy_missing(world: World, host: WindowsHost | None, node_name: str) -> bool:
    """acs-engine#2027: after a reboot the DNS VIP's policy lists reference endpoints that are
    gone (or there are none), except while the node runs at least two pods (the keeper
    workaround)."""
    # Only pods with an HNS endpoint of their own count: a hostNetwork pod (a HostProcess
    # kube-proxy, say) shares the host's network and masks nothing.
    pods = [
        p for p in world.running_pods_on(node_name) if not (p.get("spec") or {}).get("hostNetwork")
    ]
    return (
        host is not None
        and (host.dns == "stale-policies" or host.policy_lists == 0)
        and len(pods) < 2
    )


def kube_proxy_running(world: World, host: WindowsHost) -> bool:
    """kube-proxy as its Windows service (either name) or as a HostProcess pod on the node."""
    if host.kube_proxy == "hostprocess-pod":
        return any(is_kube_proxy_pod(p) for p in world.running_pods_on(host.name))
    service = host.kube_proxy_service()
    return service is not None and host.services.get(service) == "Running"


def is_kube_proxy_pod(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return meta.get("namespace") == "kube-system" and str(labels.get("k8s-app", "")).startswith(
        "kube-proxy"
    )


def reachable(world: World, pod: Obj, ip: str, port: int, protocol: str = "TCP") -> bool:
    """Whether a packet from `pod` to ip:port/protocol gets an answer."""
    source = pod_ip(pod)
    if source is None or not is_ip(ip):
        return False
    if ip == source:
        return _listens(pod, port, protocol)
    host = host_of_pod(world, pod)
    if host is not None and host.vm is not None and not host.vm.mac_address_spoofing:
        return False  # the Hyper-V switch drops every frame from the containers' MACs
    if host is not None and source in host.stale_endpoint_ips:
        return False  # a stale remote endpoint holds this pod's recycled IP (k/k#130963)
    service = _service_by_ip(world, ip)
    if service is not None:
        if host is not None and not kube_proxy_running(world, host):
            return False  # no kube-proxy, no load-balancer policies for Service VIPs
        if host is not None and host.ports_exhausted:
            return False  # no dynamic port left for the load balancer's SNAT (AKS#1375)
        if ip == cluster_dns_ip(world) and dns_vip_policy_missing(
            world, host, str((pod.get("spec") or {}).get("nodeName"))
        ):
            return False
        return _serves(service, port, protocol) and _has_backends(world, service)
    target = _pod_by_ip(world, ip)
    if target is not None:
        return _listens(target, port, protocol)
    return ip == EXTERNAL_ADDRESS and protocol == "TCP" and port in EXTERNAL_TCP_PORTS


# --- DNS ---------------------------------------------------------------------------------------


class Outcome(Enum):
    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class DnsAnswer:
    outcome: Outcome
    name: str  # the name asked (fully qualified, no trailing dot)
    addresses: tuple[str, ...] = ()
    authoritative: bool = True
    ttl: int = CLUSTER_TTL


def is_dns_server(world: World, ip: str) -> bool:
    """CoreDNS answers at the kube-dns Service IP and at each running kube-dns pod's IP."""
    return ip == cluster_dns_ip(world) or ip in kube_dns_pod_ips(world)


def _coredns(world: World, name: str) -> DnsAnswer:
    """What CoreDNS answers for `name` when the question reaches it."""
    suffix = "." + CLUSTER_DOMAIN
    if name == CLUSTER_DOMAIN or name.endswith(suffix):
        labels = name[: -len(suffix)].split(".") if name != CLUSTER_DOMAIN else []
        if len(labels) == 3 and labels[2] == "svc":
            service = world.find("services", labels[1], labels[0])
            spec = (service or {}).get("spec") or {}
            cluster_ip = spec.get("clusterIP")
            if service is not None and cluster_ip and cluster_ip != "None":
                return DnsAnswer(Outcome.ANSWER, name, (str(cluster_ip),))
            if service is not None:  # headless: one record per ready pod
                ips = tuple(sorted(ip for p in _selected_pods(world, service) if (ip := pod_ip(p))))
                if ips:
                    return DnsAnswer(Outcome.ANSWER, name, ips)
        return DnsAnswer(Outcome.NXDOMAIN, name)
    labels = name.split(".")
    if len(labels) >= 2 and all(labels) and labels[-1] in PUBLIC_TLDS:
        return DnsAnswer(
            Outcome.ANSWER, name, (EXTERNAL_ADDRESS,), authoritative=False, ttl=EXTERNAL_TTL
        )
    return DnsAnswer(Outcome.NXDOMAIN, name, authoritative=False)


def query(world: World, pod: Obj, server: str, name: str) -> DnsAnswer:
    """One A question for `name` (taken as fully qualified) sent from `pod` to `server`."""
    fqdn = name.lower().rstrip(".")
    if not (is_dns_server(world, server) and reachable(world, pod, server, DNS_PORT, "UDP")):
        return DnsAnswer(Outcome.TIMEOUT, fqdn)
    return _coredns(world, fqdn)


def reverse(world: World, pod: Obj, server: str, ip: str) -> DnsAnswer:
    """The PTR question nslookup asks about its server: `addresses` holds the one name."""
    ptr = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
    if not (is_dns_server(world, server) and reachable(world, pod, server, DNS_PORT, "UDP")):
        return DnsAnswer(Outcome.TIMEOUT, ptr)
    service = _service_by_ip(world, ip)
    if service is not None:
        meta = service.get("metadata") or {}
        return DnsAnswer(
            Outcome.ANSWER,
            ptr,
            (f"{meta.get('name')}.{meta.get('namespace')}.svc.{CLUSTER_DOMAIN}",),
        )
    for service in world.iter("services"):
        if any(pod_ip(p) == ip for p in _selected_pods(world, service)):
            meta = service.get("metadata") or {}
            return DnsAnswer(
                Outcome.ANSWER,
                ptr,
                (
                    f"{ip.replace('.', '-')}.{meta.get('name')}.{meta.get('namespace')}"
                    f".svc.{CLUSTER_DOMAIN}",
                ),
            )
    return DnsAnswer(Outcome.NXDOMAIN, ptr)


def candidates(name: str, search_list: Sequence[str], *, as_is_first: bool) -> list[str]:
    """The names a Windows resolver tries for `name`: a trailing dot means exactly that name;
    a single label only gets the suffixes; a dotted name is also tried as it is — first by the
    DNS client (Resolve-DnsName, Test-NetConnection), last by nslookup."""
    if name.endswith("."):
        return [name.rstrip(".")]
    suffixed = [f"{name}.{suffix}" for suffix in search_list]
    if "." not in name:
        return suffixed
    return [name, *suffixed] if as_is_first else [*suffixed, name]


@dataclass(frozen=True)
class Resolution:
    outcome: Outcome
    answer: DnsAnswer | None  # the answering record set when outcome is ANSWER
    server: str | None  # the server that answered (None when every server timed out)


def resolve(world: World, pod: Obj, name: str, servers: Sequence[str] | None = None) -> Resolution:
    """The Windows DNS client: each server in turn until one answers, each candidate name
    (search list applied) until one has records."""
    net = adapter(world, pod)
    if net is None or not name:
        return Resolution(Outcome.TIMEOUT, None, None)
    for server in servers if servers is not None else net.dns_servers:
        for candidate in candidates(name, net.search_list, as_is_first=True):
            answer = query(world, pod, server, candidate)
            if answer.outcome is Outcome.TIMEOUT:
                break  # this server is unreachable: the client moves on to the next one
            if answer.outcome is Outcome.ANSWER:
                return Resolution(Outcome.ANSWER, answer, server)
        else:
            return Resolution(Outcome.NXDOMAIN, None, server)
    return Resolution(Outcome.TIMEOUT, None, None)
