"""Loads a scenario file (multi-document YAML, SPEC §8) into a `World`, filling in defaults."""

from __future__ import annotations

import ipaddress
import itertools
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from sim.world import (
    BY_KIND,
    CUSTOM_RESOURCES,
    DEFAULT_NETWORKS,
    KUBE_PROXY_SERVICES,
    PORT_BLOCK,
    ApiError,
    HnsNetwork,
    Obj,
    VirtualMachine,
    WindowsHost,
    World,
    now_iso,
)

SIM_API_VERSION = "sim.winpod.io/v1"
DNS_CLUSTER_IP = "10.0.0.10"
API_CLUSTER_IP = "10.0.0.1"
COREDNS_POD_IPS = ("10.244.0.2", "10.244.0.3")
DEFAULT_WINDOWS_KERNEL = "10.0.17763.2061"
SERVICE_STATES = {"Running", "Stopped", "StartPending", "StopPending", "Paused"}
BOT_NAMESPACE = "winpod"
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
HNS_APIS = ("v1", "v2")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
KUBE_PROXY_FORMS = ("service", "hostprocess-pod")
RUNTIME_STATES = ("ok", "wedged")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
# libyaml's safe loader when PyYAML has it: twenty times faster on fleet-sized scenarios.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ScenarioError(Exception):
    """The scenario file cannot be loaded; the message names the file, document and field."""


def _where(path: Path, index: int, doc: Any, field: str = "") -> str:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None
    label = f"document {index + 1}"
    if kind:
        label += f" ({kind}{' ' + str(name) if name else ''})"
    return f"{path}: {label}" + (f", field {field}" if field else "")


def _addresses() -> Iterator[str]:
    """127.0.1.1, 127.0.1.2, … skipping .0 and .255: one loopback address per host."""
    for third in range(1, 255):
        for fourth in range(1, 255):
            yield f"127.0.{third}.{fourth}"


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_windows_node(node: Obj) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return labels.get("kubernetes.io/os") == "windows" or info.get("operatingSystem") == "windows"


def _build_of(kernel: str) -> str | None:
    parts = kernel.replace(" ", ".").split(".")
    return parts[2] if len(parts) > 2 and parts[0] == "10" and parts[2].isdigit() else None


def _fill_node(node: Obj, address: str) -> None:
    meta = node.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    status = node.setdefault("status", {})
    info = status.setdefault("nodeInfo", {})
    windows = is_windows_node(node)
    os_name = "windows" if windows else "linux"
    labels.setdefault("kubernetes.io/os", os_name)
    labels.setdefault("beta.kubernetes.io/os", os_name)
    labels.setdefault("kubernetes.io/arch", "amd64")
    labels.setdefault("kubernetes.io/hostname", meta["name"])
    info.setdefault("operatingSystem", os_name)
    info.setdefault("architecture", "amd64")
    info.setdefault("bootID", "1")
    info.setdefault("machineID", meta["name"])
    # The official Python client (v37) refuses a NodeSystemInfo without systemUUID.
    info.setdefault("systemUUID", str(uuid.uuid5(uuid.NAMESPACE_DNS, meta["name"])).upper())
    info.setdefault("kubeletVersion", "v1.30.4")
    info.setdefault("kubeProxyVersion", "v1.30.4")
    if windows:
        info.setdefault("kernelVersion", DEFAULT_WINDOWS_KERNEL)
        info.setdefault("osImage", "Windows Server 2019 Datacenter")
        info.setdefault("containerRuntimeVersion", "containerd://1.7.20+azure")
        build = _build_of(str(info["kernelVersion"]))
        if build:
            labels.setdefault("node.kubernetes.io/windows-build", f"10.0.{build}")
    else:
        info.setdefault("kernelVersion", "5.15.0-1064-azure")
        info.setdefault("osImage", "Ubuntu 22.04.4 LTS")
        info.setdefault("containerRuntimeVersion", "containerd://1.7.20-1")
    addresses = [a for a in status.get("addresses") or [] if a.get("type") != "InternalIP"]
    internal = next(
        (
            a["address"]
            for a in status.get("addresses") or []
            if a.get("type") == "InternalIP" and _is_loopback(a.get("address"))
        ),
        None,
    )
    addresses.insert(0, {"type": "InternalIP", "address": internal or address})
    if not any(a.get("type") == "Hostname" for a in addresses):
        addresses.append({"type": "Hostname", "address": meta["name"]})
    status["addresses"] = addresses
    if not status.get("conditions"):
        stamp = now_iso()
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        ]
    status.setdefault("capacity", {"cpu": "4", "memory": "16Gi", "pods": "30"})
    if "allocatable" not in status:
        status["allocatable"] = dict(status["capacity"])
        memory = _mebibytes(str(status["capacity"].get("memory", "")))
        if windows and memory:
            # kubelet subtracts system/kube reservations and the eviction threshold, as AKS
            # configures them: a default node is a healthy one.
            status["allocatable"]["memory"] = f"{memory - max(1024, memory // 5)}Mi"


_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNIT_BYTES = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def _mebibytes(quantity: str) -> int | None:
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        return None
    return int(match[1]) * _UNIT_BYTES[match[2]] // 2**20


def _fill_pod(pod: Obj, world: World, pod_ips: dict[str, tuple[int, Iterator[int]]]) -> None:
    spec = pod.setdefault("spec", {})
    status = pod.setdefault("status", {})
    spec.setdefault("containers", [])
    for container in spec["containers"]:
        container.setdefault("imagePullPolicy", "IfNotPresent")
    node = world.find("nodes", None, spec.get("nodeName") or "")
    phase = status.setdefault("phase", "Running" if node else "Pending")
    if node is not None:
        status.setdefault("hostIP", node["status"]["addresses"][0]["address"])
        name = node["metadata"]["name"]
        if name not in pod_ips:  # one /24 per node, in the order nodes first get a pod
            pod_ips[name] = (len(pod_ips) + 1, itertools.count(4))
        node_number, addresses = pod_ips[name]
        if phase == "Running" and not status.get("podIP"):
            status["podIP"] = f"10.{244 + node_number // 250}.{node_number % 250}.{next(addresses)}"
        if status.get("podIP"):
            status.setdefault("podIPs", [{"ip": status["podIP"]}])
    status.setdefault("startTime", now_iso())
    if "containerStatuses" not in status and spec["containers"]:
        running = phase == "Running"
        status["containerStatuses"] = [
            {
                "name": c.get("name", "app"),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": running,
                "restartCount": 0,
                "started": running,
                "state": {"running": {"startedAt": now_iso()}}
                if running
                else {"waiting": {"reason": status.get("reason", "ContainerCreating")}},
            }
            for c in spec["containers"]
        ]
    if "conditions" not in status:
        ready = "True" if phase == "Running" else "False"
        status["conditions"] = [
            {"type": t, "status": ready}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]


def _host_from_doc(doc: Obj, where: str, address: str) -> WindowsHost:
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise ScenarioError(f"{where}, field spec: must be a mapping")
    role = spec.get("role", "node")
    if role not in ("node", "hyperv"):
        raise ScenarioError(f"{where}, field spec.role: must be node or hyperv, not {role!r}")
    host = WindowsHost(name=doc["metadata"]["name"], role=role, address=address)
    _host_network(spec, where, host)
    services = spec.get("services")
    if services is not None:
        if not isinstance(services, dict):
            raise ScenarioError(f"{where}, field spec.services: must map service name to state")
        for service, state in services.items():
            if state not in SERVICE_STATES:
                raise ScenarioError(
                    f"{where}, field spec.services.{service}: {state!r} is not "
                    f"one of {', '.join(sorted(SERVICE_STATES))}"
                )
    given = dict(services or {})
    if host.kube_proxy == "hostprocess-pod" and any(s in given for s in KUBE_PROXY_SERVICES):
        raise ScenarioError(
            f"{where}, field spec.services: kubeProxy hostprocess-pod has no kube-proxy service"
        )
    defaults = {"kubelet": "Running", "containerd": "Running"}
    if host.kube_proxy == "service" and not any(s in given for s in KUBE_PROXY_SERVICES):
        defaults["kubeproxy"] = "Running"
    host.services = {**defaults, **given}
    if role == "hyperv":
        host.services = {"vmms": "Running", "winrm": "Running"}
    if "sandboxImage" in spec:
        host.sandbox_image = str(spec["sandboxImage"] or "")
    dns = spec.get("dns", "ok")
    if dns not in ("ok", "stale-policies"):
        raise ScenarioError(f"{where}, field spec.dns: must be ok or stale-policies, not {dns!r}")
    host.dns = dns
    host.winrm_enabled = bool(spec.get("winrm", True))
    host.runtime = _choice(where, "runtime", spec.get("runtime", "ok"), RUNTIME_STATES)
    memory = spec.get("memory")
    if memory is not None:
        if not isinstance(memory, dict):
            raise ScenarioError(f"{where}, field spec.memory: must map totalMB and availableMB")
        for key in ("totalMB", "availableMB"):
            if key in memory and (not isinstance(memory[key], int) or memory[key] < 0):
                raise ScenarioError(f"{where}, field spec.memory.{key}: must be a whole number")
        host.memory_total_mb = int(memory.get("totalMB", host.memory_total_mb))
        host.memory_available_mb = int(memory.get("availableMB", host.memory_available_mb))
    vm = spec.get("vm")
    if vm is not None:
        if not isinstance(vm, dict) or not vm.get("hypervHost"):
            raise ScenarioError(f"{where}, field spec.vm.hypervHost: required when vm is given")
        host.vm = VirtualMachine(str(vm["hypervHost"]), bool(vm.get("macAddressSpoofing", True)))
    return host


def _host_network(spec: Obj, where: str, host: WindowsHost) -> None:
    """`network.type`, `networks`, `hnsApi`, `kubeProxy` and the outage knobs (SPEC §16)."""
    network = spec.get("network") or {}
    if not isinstance(network, dict):
        raise ScenarioError(f"{where}, field spec.network: must be a mapping")
    host.network_type = _choice(
        where, "network.type", network.get("type", "l2bridge"), DEFAULT_NETWORKS
    )
    host.hns_api = _choice(where, "hnsApi", spec.get("hnsApi", "v1"), HNS_APIS)
    host.kube_proxy = _choice(
        where, "kubeProxy", spec.get("kubeProxy", "service"), KUBE_PROXY_FORMS
    )
    host.stale_endpoint_ips = _stale_endpoints(where, network.get("staleRemoteEndpoints", 0))
    host.unapplied_load_balancers = _count(
        where, "network.unappliedLoadBalancers", network.get("unappliedLoadBalancers", 0)
    )
    _host_ports(spec, where, host)
    host.management_outage_s = _seconds(where, "managementOutage", spec.get("managementOutage", 60))
    host.network_blip_s = _seconds(where, "networkBlip", spec.get("networkBlip", 0))
    listed = spec.get("networks")
    if listed is None:
        return
    if not isinstance(listed, list) or not all(
        isinstance(n, dict) and n.get("name") for n in listed
    ):
        raise ScenarioError(f"{where}, field spec.networks: a list of {{name, type, management}}")
    host.networks = [
        HnsNetwork(str(n["name"]), str(n.get("type", "L2Bridge")), bool(n.get("management", False)))
        for n in listed
    ]


def _count(where: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScenarioError(f"{where}, field spec.{field}: must be a whole number, not {value!r}")
    return value


def stale_endpoint_ip(index: int) -> str:
    """The IP of the index-th generated stale remote endpoint: 10.244.250.1, .2, …"""
    return f"10.244.{250 + index // 254}.{index % 254 + 1}"


def _stale_endpoints(where: str, value: Any) -> list[str]:
    """`staleRemoteEndpoints`: a count (IPs 10.244.250.1…), or the IPs themselves."""
    if isinstance(value, list):
        if not all(isinstance(ip, str) and _IPV4.fullmatch(ip) for ip in value):
            raise ScenarioError(
                f"{where}, field spec.network.staleRemoteEndpoints: a count or a list of IPv4s"
            )
        return list(value)
    count = _count(where, "network.staleRemoteEndpoints", value)
    return [stale_endpoint_ip(i) for i in range(count)]


def _host_ports(spec: Obj, where: str, host: WindowsHost) -> None:
    """`ports`: the TCP dynamic range and HNS's excluded 64-port blocks inside it."""
    ports = spec.get("ports") or {}
    if not isinstance(ports, dict):
        raise ScenarioError(f"{where}, field spec.ports: must be a mapping")
    host.dynamic_start = _count(where, "ports.dynamicStart", ports.get("dynamicStart", 49152))
    host.dynamic_count = _count(where, "ports.dynamicCount", ports.get("dynamicCount", 16384))
    host.excluded_tcp_blocks = _count(
        where, "ports.excludedTcpBlocks", ports.get("excludedTcpBlocks", 12)
    )
    if host.dynamic_start < 1024 or host.dynamic_start + host.dynamic_count > 65536:
        raise ScenarioError(f"{where}, field spec.ports: the range must lie within 1024-65535")
    if host.excluded_tcp_blocks * PORT_BLOCK > host.dynamic_count:
        raise ScenarioError(
            f"{where}, field spec.ports.excludedTcpBlocks: more blocks than the range holds"
        )


def _choice(where: str, field: str, value: Any, allowed: Any) -> str:
    if value not in allowed:
        raise ScenarioError(
            f"{where}, field spec.{field}: must be one of {', '.join(allowed)}, not {value!r}"
        )
    return str(value)


def _seconds(where: str, field: str, value: Any) -> float:
    """A duration: seconds as a number, or `1.5s`, `500ms`, `1m`."""
    match = _DURATION.match(str(value).strip())
    if isinstance(value, bool) or match is None:
        raise ScenarioError(f"{where}, field spec.{field}: a duration like 60s or 1.5s")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _default_hns(host: WindowsHost) -> None:
    """The networks `network.type` implies when none are listed; kube-proxy's policy lists
    (kept, but stale, after a reboot)."""
    if host.role != "node":
        return
    if not host.networks:
        host.networks = [
            HnsNetwork(name, kind, management)
            for name, kind, management in DEFAULT_NETWORKS[host.network_type]
        ]
    host.policy_lists = 3  # sim/hns.py PROGRAMMED: DNS UDP and TCP, the API Service


def _plain(value: Any) -> Any:
    """YAML turns unquoted timestamps into datetimes; the API speaks RFC 3339 strings."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def read_documents(path: Path) -> list[Obj]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario file ({exc.strerror})") from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_SAFE_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScenarioError(f"{path}: not valid YAML{where}") from None
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ScenarioError(f"{_where(path, index, doc)}: must be a mapping")
        for required in ("apiVersion", "kind"):
            if not doc.get(required):
                raise ScenarioError(f"{_where(path, index, doc, required)}: required")
        if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            raise ScenarioError(f"{_where(path, index, doc, 'metadata.name')}: required")
        kind = doc["kind"]
        if kind == "WindowsHost":
            if doc["apiVersion"] != SIM_API_VERSION:
                raise ScenarioError(
                    f"{_where(path, index, doc, 'apiVersion')}: WindowsHost "
                    f"needs apiVersion {SIM_API_VERSION}"
                )
        elif kind == "CustomResourceDefinition":
            if doc["metadata"]["name"] not in CUSTOM_RESOURCES.values():
                known_crds = ", ".join(sorted(CUSTOM_RESOURCES.values()))
                raise ScenarioError(
                    f"{_where(path, index, doc, 'metadata.name')}: the simulator serves only "
                    f"these CRDs: {known_crds}"
                )
        elif kind not in BY_KIND:
            known = ", ".join(sorted([*BY_KIND, "WindowsHost", "CustomResourceDefinition"]))
            raise ScenarioError(
                f"{_where(path, index, doc, 'kind')}: unknown kind {kind!r}; known kinds: {known}"
            )
    return docs


def load_scenario(path: Path, world: World | None = None) -> World:
    """Build a world from the scenario at `path` (SPEC §8 defaults included)."""
    world = world or World()
    docs = read_documents(path)
    addresses = _addresses()
    namespaces = {"default", "kube-system", "kube-public", BOT_NAMESPACE}
    for doc in docs:
        if doc["kind"] == "Namespace":
            namespaces.discard(doc["metadata"]["name"])
    for name in sorted(namespaces):
        # the bot's namespace as deploy/ makes it: HostProcess pods allowed (SPEC §9)
        labels = {POD_SECURITY_LABEL: "privileged"} if name == BOT_NAMESPACE else {}
        world.create(
            "namespaces",
            None,
            {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Active"}},
            load=True,
        )

    hosts_docs = [(i, d) for i, d in enumerate(docs) if d["kind"] == "WindowsHost"]
    for doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            world.installed_crds.update(
                plural for plural, crd in CUSTOM_RESOURCES.items() if crd == doc["metadata"]["name"]
            )
        elif BY_KIND.get(doc["kind"]) and BY_KIND[doc["kind"]].plural in CUSTOM_RESOURCES:
            world.installed_crds.add(BY_KIND[doc["kind"]].plural)
    ordered = sorted(
        (d for d in docs if d["kind"] not in ("WindowsHost", "CustomResourceDefinition")),
        key=lambda d: (d["kind"] not in ("Namespace", "Node"), d["kind"] != "Node"),
    )
    pod_ips: dict[str, tuple[int, Iterator[int]]] = {}
    for doc in docs:
        if doc["kind"] == "Node":
            _fill_node(doc, next(addresses))
    world.kubernetes_version = _cluster_version(docs)
    for doc in ordered:
        kind = doc["kind"]
        resource = BY_KIND[kind]
        if kind == "Pod":
            _fill_pod(doc, world, pod_ips)
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        if resource.namespaced and namespace is None:
            namespace = "default"
        if namespace and world.find("namespaces", None, namespace) is None:
            world.create(
                "namespaces",
                None,
                {"metadata": {"name": namespace}, "status": {"phase": "Active"}},
                load=True,
            )
        if kind == "Event":
            involved = doc.setdefault("involvedObject", {})
            target = _involved(world, involved, namespace)
            if target is not None:
                involved.setdefault("uid", target["metadata"]["uid"])
                involved.setdefault("apiVersion", target.get("apiVersion", "v1"))
            stamp = now_iso()
            doc.setdefault("firstTimestamp", stamp)
            doc.setdefault("lastTimestamp", doc["firstTimestamp"])
            doc.setdefault("count", 1)
            doc.setdefault("type", "Normal")
        try:
            world.create(resource.plural, namespace, doc, load=True)
        except ApiError as exc:
            index = docs.index(doc)
            raise ScenarioError(f"{_where(path, index, doc)}: {exc.message}") from None

    for index, doc in hosts_docs:
        name = doc["metadata"]["name"]
        node = world.find("nodes", None, name)
        spec_role = (doc.get("spec") or {}).get("role", "node")
        if spec_role == "node" and node is None:
            raise ScenarioError(
                f"{_where(path, index, doc, 'metadata.name')}: no Node named "
                f"{name!r}; a role: node host must name a Node"
            )
        address = node["status"]["addresses"][0]["address"] if node else next(addresses)
        host = _host_from_doc(doc, _where(path, index, doc), address)
        _default_hns(host)
        world.hosts[name] = host
    for node in world.iter("nodes"):
        name = node["metadata"]["name"]
        if is_windows_node(node) and name not in world.hosts:
            host = WindowsHost(
                name=name, role="node", address=node["status"]["addresses"][0]["address"]
            )
            _default_hns(host)
            world.hosts[name] = host
    for host in list(world.hosts.values()):
        if host.vm and host.vm.hyperv_host not in world.hosts:
            hyperv = WindowsHost(
                name=host.vm.hyperv_host,
                role="hyperv",
                address=next(addresses),
                services={"vmms": "Running", "winrm": "Running"},
            )
            world.hosts[hyperv.name] = hyperv
    _ensure_cluster_services(world)
    _sandboxes_without_ports(world)
    return world


SANDBOX_CHANGED = "Pod sandbox changed, it will be killed and re-created."


def _sandboxes_without_ports(world: World) -> None:
    """On a node whose dynamic ports are exhausted, kubelet keeps re-creating the sandboxes of
    its pods that are not running yet (AKS#1375): each gets kubelet's SandboxChanged event,
    unless the scenario already gave it one."""
    for host in world.hosts.values():
        if host.role != "node" or not host.ports_exhausted:
            continue
        for pod in list(world.iter("pods")):
            meta = pod["metadata"]
            if (pod.get("spec") or {}).get("nodeName") != host.name or (
                pod.get("status") or {}
            ).get("phase") != "Pending":
                continue
            told = world.list(
                "events",
                meta.get("namespace"),
                field_selector=f"involvedObject.name={meta['name']},reason=SandboxChanged",
            )
            if not told:
                world.record_event(meta["namespace"], pod, "SandboxChanged", SANDBOX_CHANGED)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _cluster_version(docs: list[Obj]) -> str:
    """The control plane is at least as new as its newest kubelet: `/version` says so."""
    versions = [
        str(((d.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
        for d in docs
        if d["kind"] == "Node"
    ]
    return max((v for v in versions if _version_key(v)), key=_version_key, default="v1.30.4")


def _involved(world: World, involved: Obj, namespace: str | None) -> Obj | None:
    """The object an Event is about, when the scenario has it (kubectl describe needs its uid)."""
    resource = BY_KIND.get(str(involved.get("kind")))
    if resource is None or not involved.get("name"):
        return None
    where = (involved.get("namespace") or namespace) if resource.namespaced else None
    return world.find(resource.plural, where, str(involved["name"]))


def _ensure_cluster_services(world: World) -> None:
    """kube-dns (10.0.0.10) with two CoreDNS pods, and the `kubernetes` Service (10.0.0.1)."""
    if world.find("services", "default", "kubernetes") is None:
        world.create(
            "services",
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": API_CLUSTER_IP,
                    "clusterIPs": [API_CLUSTER_IP],
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                },
            },
            load=True,
        )
    if world.find("services", "kube-system", "kube-dns") is not None:
        return
    linux = next(
        (n["metadata"]["name"] for n in world.iter("nodes") if not is_windows_node(n)), None
    )
    for index, ip in enumerate(COREDNS_POD_IPS):
        name = f"coredns-5d78c9869d-{'ab'[index]}x{index}q"
        if world.find("pods", "kube-system", name) is not None:
            continue
        world.create(
            "pods",
            "kube-system",
            {
                "metadata": {"name": name, "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "containers": [
                        {"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.1"}
                    ],
                    **({"nodeName": linux} if linux else {}),
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "containerStatuses": [
                        {
                            "name": "coredns",
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "image": "registry.k8s.io/coredns/coredns:v1.11.1",
                            "imageID": "",
                            "state": {"running": {"startedAt": now_iso()}},
                        }
                    ],
                },
            },
            load=True,
        )
    world.create(
        "services",
        "kube-system",
        {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": DNS_CLUSTER_IP,
                "clusterIPs": [DNS_CLUSTER_IP],
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
        load=True,
    )
    world.create(
        "endpointslices",
        "kube-system",
        {
            "metadata": {
                "name": "kube-dns-sim01",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [ip], "conditions": {"ready": True}} for ip in COREDNS_POD_IPS
            ],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
        },
        load=True,
    )
