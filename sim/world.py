"""The simulated cluster's state: Kubernetes objects with resourceVersions, and Windows hosts.

Everything runs on the simulator's single asyncio loop, so no locking is needed; servers call
into `World` and translate `ApiError` into Kubernetes `Status` bodies.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

Obj = dict[str, Any]
T = TypeVar("T")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: tuple[Resource, ...] = (
    Resource("namespaces", "Namespace", "", "v1", False, ("ns",)),
    Resource("nodes", "Node", "", "v1", False, ("no",)),
    Resource("pods", "Pod", "", "v1", True, ("po",)),
    Resource("events", "Event", "", "v1", True, ("ev",)),
    Resource("services", "Service", "", "v1", True, ("svc",)),
    Resource("endpoints", "Endpoints", "", "v1", True, ("ep",)),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",)),
    Resource("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
    Resource("endpointslices", "EndpointSlice", "discovery.k8s.io", "v1", True),
    Resource("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",)),
    Resource("deployments", "Deployment", "apps", "v1", True, ("deploy",)),
    Resource("statefulsets", "StatefulSet", "apps", "v1", True, ("sts",)),
    Resource("replicasets", "ReplicaSet", "apps", "v1", True, ("rs",)),
    Resource("leases", "Lease", "coordination.k8s.io", "v1", True),
    Resource("runtimeclasses", "RuntimeClass", "node.k8s.io", "v1", False),
    # A custom resource: served only while its CRD is installed (World.installed_crds).
    Resource("gmsacredentialspecs", "GMSACredentialSpec", "windows.k8s.io", "v1", False),
)
BY_PLURAL = {r.plural: r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}
# Resources that come from a CustomResourceDefinition, by plural -> the CRD's name.
CUSTOM_RESOURCES = {"gmsacredentialspecs": "gmsacredentialspecs.windows.k8s.io"}


class ApiError(Exception):
    """A Kubernetes API error: becomes a `Status` body with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(resource: Resource, name: str) -> ApiError:
    group = f".{resource.group}" if resource.group else ""
    return ApiError(
        404,
        "NotFound",
        f'{resource.plural}{group} "{name}" not found',
        {"name": name, "group": resource.group, "kind": resource.plural},
    )


# --- selectors -------------------------------------------------------------------------------

_SET_EXPR = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _requirement(term: str) -> tuple[str, str, frozenset[str]]:
    """One label requirement as (key, operator, values); operators: in notin exists !exists."""
    set_match = _SET_EXPR.match(term)
    if set_match:
        key, op, values = set_match.groups()
        return key, op, frozenset(v.strip() for v in values.split(",") if v.strip())
    if "!=" in term:
        key, value = (part.strip() for part in term.split("!=", 1))
        return key, "notin", frozenset({value})
    if "=" in term:
        key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
        return key, "in", frozenset({value})
    if term.startswith("!") and re.fullmatch(r"[\w./-]+", term[1:].strip()):
        return term[1:].strip(), "!exists", frozenset()
    if re.fullmatch(r"[\w./-]+", term):
        return term, "exists", frozenset()
    raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")


def _satisfied(labels: dict[str, str], key: str, op: str, values: frozenset[str]) -> bool:
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    if op == "in":
        return labels.get(key) in values
    return labels.get(key) not in values


def label_matcher(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`."""
    requirements = [_requirement(raw.strip()) for raw in _split_selector(selector or "")]

    def matches(labels: dict[str, str]) -> bool:
        return all(_satisfied(labels, key, op, values) for key, op, values in requirements)

    return matches


def _field_value(obj: Obj, path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def field_matcher(selector: str | None) -> Callable[[Obj], bool]:
    """Compile a field selector over dotted paths: `spec.nodeName=x,status.phase!=Failed`."""
    requirements: list[tuple[str, bool, str]] = []  # (path, equal?, value)
    for raw in (selector or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            path, value = term.split("!=", 1)
            requirements.append((path.strip(), False, value.strip()))
        elif "=" in term:
            path, value = term.replace("==", "=").split("=", 1)
            requirements.append((path.strip(), True, value.strip()))
        else:
            raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")

    def matches(obj: Obj) -> bool:
        return all(
            (_field_value(obj, path) == value) == equal for path, equal, value in requirements
        )

    return matches


# --- patches ---------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "port",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "tolerations": "key",
    "conditions": "type",
    "addresses": "type",
    "imagePullSecrets": "name",
}


def strategic_merge_patch(target: Any, patch: Any, key: str = "") -> Any:
    """The subset of strategic merge patch the bot relies on: maps merge, lists of named
    items merge by their merge key, other lists replace, `null` deletes, `$patch: delete`."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for k, value in patch.items():
            if k.startswith("$"):
                continue
            if value is None:
                result.pop(k, None)
                continue
            merged = strategic_merge_patch(result.get(k), value, k)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        return result
    if isinstance(patch, list) and key in _MERGE_KEYS and isinstance(target, list):
        merge_key = _MERGE_KEYS[key]
        result_list = [copy.deepcopy(item) for item in target]
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                result_list.append(copy.deepcopy(item))
                continue
            for index, existing in enumerate(result_list):
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                    merged = strategic_merge_patch(existing, item, "")
                    if merged is None:
                        result_list.pop(index)
                    else:
                        result_list[index] = merged
                    break
            else:
                if item.get("$patch") != "delete":
                    result_list.append(copy.deepcopy(item))
        return result_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(target: Any, operations: list[Obj]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    document = copy.deepcopy(target)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(str(operation.get("path", "")))
        if not parts:
            raise ApiError(422, "Invalid", "json patch: the root cannot be patched")
        parent: Any = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        try:
            if op in ("add", "replace"):
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if op == "add":
                        parent.insert(index, operation["value"])
                    else:
                        parent[index] = operation["value"]
                else:
                    parent[last] = operation["value"]
            elif op == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif op == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
                if current != operation.get("value"):
                    raise ApiError(422, "Invalid", f"json patch test failed at {operation['path']}")
            else:
                raise ApiError(422, "Invalid", f"json patch: unsupported op {op!r}")
        except (KeyError, IndexError, ValueError) as exc:
            raise ApiError(422, "Invalid", f"json patch: bad path {operation.get('path')}") from exc
    return document


# --- Windows hosts ---------------------------------------------------------------------------


@dataclass
class VirtualMachine:
    hyperv_host: str
    mac_address_spoofing: bool


@dataclass
class HnsNetwork:
    """One HNS network (SPEC §16): `management` marks the one holding the vSwitch on the
    management NIC (AKS `ext`, flannel `External`); removing it drops the node's address."""

    name: str
    type: str  # L2Bridge | Overlay | NAT | Transparent
    management: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()).upper())

    def snapshot(self) -> Obj:
        return {"name": self.name, "type": self.type, "management": self.management, "id": self.id}


# The HNS networks a node has by `network.type` when the scenario does not list them.
DEFAULT_NETWORKS = {
    "l2bridge": (("ext", "L2Bridge", True), ("azure", "L2Bridge", False)),
    "overlay": (("External", "L2Bridge", True), ("vxlan0", "Overlay", False)),
}
KUBE_PROXY_SERVICES = ("kubeproxy", "kube-proxy")
PORT_BLOCK = 64  # HNS reserves dynamic ports in blocks of 64
EXHAUSTED_AT_FREE_BLOCKS = 10  # networkhealth.ps1 PortExhaustionTest fails at or below this


@dataclass
class WindowsHost:
    """What only the Windows host knows (SPEC §8 `WindowsHost`), plus its loopback address."""

    name: str
    role: str  # "node" | "hyperv"
    address: str
    # Keyed by the Windows service names as installed; kube-proxy is `kubeproxy` or
    # `kube-proxy`, absent when not installed (a HostProcess pod, SPEC §10).
    services: dict[str, str] = field(
        default_factory=lambda: {
            "kubelet": "Running",
            "kubeproxy": "Running",
            "containerd": "Running",
        }
    )
    sandbox_image: str = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
    # "stale-policies": the persisted policy lists hold the DNS VIP but reference endpoints
    # that no longer exist (after a reboot), so the VIP does not load-balance.
    dns: str = "ok"  # "ok" | "stale-policies"
    vm: VirtualMachine | None = None
    winrm_enabled: bool = True
    last_boot: str = field(default_factory=now_iso)
    network_type: str = "l2bridge"  # l2bridge | overlay
    networks: list[HnsNetwork] = field(default_factory=list)
    hns_api: str = "v1"  # v1 | v2 (HCN load balancers only, hns.v2.psm1)
    kube_proxy: str = "service"  # service | hostprocess-pod
    policy_lists: int = 0
    # HNS endpoint ids are derived from this; it moves on when endpoints are re-created.
    hns_generation: int = 1
    management_outage_s: float = 60.0  # how long the address answers nothing after losing ext
    network_blip_s: float = 0.0  # how long removing another network on the vSwitch blips it
    unreachable_until: float = 0.0  # time.monotonic() until which the address answers nothing
    # Scheduled tasks started by winpod's detached runs: id -> result (None while running).
    tasks: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # detached-run payloads by id
    # Work a script left to run after its WinRM command returned (a scheduled task).
    deferred: list[Callable[[], None]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # what scripts did, for tests and demo
    kubelet_restarts: int = 0  # kubelet started again after a stop (by a script)
    kubelet_back_at: float = 0.0  # time.monotonic() before which a restarted kubelet is away
    # SPEC §10 `memory`: physical memory and what is still available, in MB.
    memory_total_mb: int = 16384
    memory_available_mb: int = 9000
    # SPEC §10 `runtime`: "wedged" = HCS/containerd stuck (sim/runtime.py).
    runtime: str = "ok"  # ok | wedged
    # SPEC §10 `network`: the IPs of remote HNS endpoints that no EndpointSlice holds (leaked
    # by kube-proxy; a pod of this node that gets one of these IPs loses its network), and
    # how many HNS load balancers kube-proxy could not apply (State != 2).
    stale_endpoint_ips: list[str] = field(default_factory=list)
    unapplied_load_balancers: int = 0
    # SPEC §10 `ports`: the TCP dynamic port range, and the 64-port blocks HNS excluded inside
    # it (non-DSR load balancers, SNAT). Few free blocks: new sandboxes and DNS fail.
    dynamic_start: int = 49152
    dynamic_count: int = 16384
    excluded_tcp_blocks: int = 12

    @property
    def management_up(self) -> bool:
        return time.monotonic() >= self.unreachable_until

    @property
    def pod_network(self) -> HnsNetwork | None:
        return next((n for n in self.networks if not n.management), None)

    @property
    def free_port_blocks(self) -> int:
        """networkhealth.ps1's PortExhaustionTest: free 64-port blocks in the dynamic range."""
        return self.dynamic_count // PORT_BLOCK - self.excluded_tcp_blocks

    @property
    def ports_exhausted(self) -> bool:
        return self.free_port_blocks <= EXHAUSTED_AT_FREE_BLOCKS

    def excluded_tcp_ranges(self) -> list[tuple[int, int]]:
        """`netsh int ipv4 show excludedportrange tcp`: HNS's blocks, from the range's end
        down (inclusive start and end ports)."""
        end = self.dynamic_start + self.dynamic_count
        return sorted(
            (end - (i + 1) * PORT_BLOCK, end - i * PORT_BLOCK - 1)
            for i in range(self.excluded_tcp_blocks)
        )

    def kube_proxy_service(self) -> str | None:
        """The name kube-proxy's Windows service is installed under, if it is a service."""
        return next((s for s in KUBE_PROXY_SERVICES if s in self.services), None)

    def lose_address(self, seconds: float) -> None:
        """The management vNIC goes down: the address answers nothing for `seconds`."""
        self.unreachable_until = max(self.unreachable_until, time.monotonic() + seconds)

    def snapshot(self) -> Obj:
        return {
            "name": self.name,
            "role": self.role,
            "address": self.address,
            "services": dict(self.services),
            "sandboxImage": self.sandbox_image,
            "dns": self.dns,
            "vm": None
            if self.vm is None
            else {
                "hypervHost": self.vm.hyperv_host,
                "macAddressSpoofing": self.vm.mac_address_spoofing,
            },
            "winrm": self.winrm_enabled,
            "lastBootUpTime": self.last_boot,
            "network": {
                "type": self.network_type,
                "staleRemoteEndpoints": len(self.stale_endpoint_ips),
                "staleRemoteEndpointIPs": list(self.stale_endpoint_ips),
                "unappliedLoadBalancers": self.unapplied_load_balancers,
            },
            "ports": {
                "dynamicStart": self.dynamic_start,
                "dynamicCount": self.dynamic_count,
                "excludedTcpBlocks": self.excluded_tcp_blocks,
                "freeBlocks": self.free_port_blocks,
            },
            "networks": [n.snapshot() for n in self.networks],
            "managementUp": self.management_up,
            "hnsApi": self.hns_api,
            "kubeProxy": self.kube_proxy,
            "policyLists": self.policy_lists,
            "history": list(self.history),
            "memory": {"totalMB": self.memory_total_mb, "availableMB": self.memory_available_mb},
            "runtime": self.runtime,
        }


# --- watch history ---------------------------------------------------------------------------

# How many changes the API server remembers for watches, as etcd keeps history until it is
# compacted: a watch from a resourceVersion older than that gets 410 Gone.
WATCH_HISTORY = 50_000


@dataclass(frozen=True)
class Change:
    """One write as a watch reports it: ADDED, MODIFIED or DELETED, with the object before."""

    resource_version: int
    type: str
    plural: str
    obj: Obj
    before: Obj | None = None


# --- the world -------------------------------------------------------------------------------


class World:
    """All objects by resource plural and (namespace, name), and the Windows hosts by name."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {r.plural: {} for r in RESOURCES}
        # The keys of each namespace's objects, so that a namespaced read scans that namespace
        # only: fleet-sized scenarios hold tens of thousands of pods.
        self._keys_by_namespace: dict[str, dict[str, dict[tuple[str, str], None]]] = {
            r.plural: {} for r in RESOURCES
        }
        # Lookups built from all objects, kept until the next write (see `derived`).
        self._derived: dict[str, tuple[int, Any]] = {}
        self._revisions: dict[str, int] = {}  # resource plural -> resourceVersion of its last write
        self._revision = itertools.count(1)
        self.resource_version = 0
        self.hosts: dict[str, WindowsHost] = {}
        self.boot_counter = itertools.count(100)
        # Plain-Python hooks other modules register (e.g. the load-balancer controller).
        self.after_write: list[Callable[[Resource, Obj], None]] = []
        self.after_delete: list[Callable[[Resource, Obj], None]] = []
        # How long the load-balancer controller (sim/lb.py) takes to give a LoadBalancer
        # Service its ingress IP, in milliseconds; the control API may change it at run time.
        self.lb_delay_ms: float = 300.0
        # False: the cloud behind the load balancer does not answer, Services stay <pending>.
        self.lb_enabled: bool = True
        # HostProcess pods (sim/hostprocess.py): how long a pod takes from creation to its
        # container running (a real one with a cached image: about 2 s), how long a kubelet
        # that a script restarted is away, and each finished pod's log by (namespace, name).
        self.hostprocess_start_delay_s: float = 0.0
        self.kubelet_restart_s: float = 1.0
        self.pod_logs: dict[tuple[str, str], str] = {}
        # Plurals of CUSTOM_RESOURCES whose CRD the cluster has; the others answer 404.
        self.installed_crds: set[str] = set()
        # What `/version` reports (the scenario may set it; see sim/scenario.py).
        self.kubernetes_version: str = "v1.30.4"
        # Group versions this API server does not serve ("discovery.k8s.io/v1"): an older or
        # trimmed cluster; the control API sets them.
        self.unserved: set[str] = set()
        # Recent changes for watches; resourceVersions at or below `compacted_rv` are gone.
        self.history: deque[Change] = deque(maxlen=WATCH_HISTORY)
        self.compacted_rv = 0
        self.watchers: set[Callable[[Change | None], None]] = set()  # None: stop watching

    # --- bookkeeping --------------------------------------------------------------------
    def _next_rv(self) -> str:
        self.resource_version = next(self._revision)
        return str(self.resource_version)

    @staticmethod
    def resource(plural: str) -> Resource:
        try:
            return BY_PLURAL[plural]
        except KeyError:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural})"
            ) from None

    def _bucket(self, resource: Resource) -> dict[tuple[str, str], Obj]:
        return self._objects[resource.plural]

    def _key(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str]:
        return (namespace or "") if resource.namespaced else "", name

    def _check_namespace(self, resource: Resource, namespace: str | None) -> None:
        if resource.namespaced and namespace and ("", namespace) not in self._objects["namespaces"]:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    # --- CRUD ---------------------------------------------------------------------------
    def create(self, plural: str, namespace: str | None, body: Obj, *, load: bool = False) -> Obj:
        resource = self.resource(plural)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(
                422,
                "Invalid",
                f"{resource.kind} is invalid: metadata.name: "
                "Required value: name or generateName is required",
            )
        if resource.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            if not load:
                self._check_namespace(resource, namespace)
        else:
            meta.pop("namespace", None)
        key = self._key(resource, namespace, name)
        if key in self._bucket(resource):
            group = f".{resource.group}" if resource.group else ""
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource.plural}{group} "{name}" already exists',
                {"name": name, "group": resource.group, "kind": resource.plural},
            )
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        meta["resourceVersion"] = self._next_rv()
        meta.setdefault("generation", 1)
        self._bucket(resource)[key] = obj
        self._keys_by_namespace[resource.plural].setdefault(key[0], {})[key] = None
        self._changed("ADDED", resource, obj)
        self._notify(resource, obj)
        return copy.deepcopy(obj)

    def get(self, plural: str, namespace: str | None, name: str) -> Obj:
        return copy.deepcopy(self.peek(plural, namespace, name))

    def peek(self, plural: str, namespace: str | None, name: str) -> Obj:
        """The stored object itself (no copy): for read-only use inside the simulator."""
        resource = self.resource(plural)
        obj = self._bucket(resource).get(self._key(resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return obj

    def find(self, plural: str, namespace: str | None, name: str) -> Obj | None:
        resource = self.resource(plural)
        return self._bucket(resource).get(self._key(resource, namespace, name))

    def iter(self, plural: str, namespace: str | None = None) -> Iterable[Obj]:
        """Stored objects (no copies), optionally in one namespace."""
        resource = self.resource(plural)
        bucket = self._bucket(resource)
        if namespace is None:
            yield from bucket.values()
            return
        for key in self._keys_by_namespace[resource.plural].get(namespace, {}):
            yield bucket[key]

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        labels_ok = label_matcher(label_selector)
        fields_ok = field_matcher(field_selector)
        candidates = self.iter(plural, namespace)
        node_name = _node_name_wanted(plural, field_selector)
        if node_name is not None:
            # kubelets and sweeps ask for one node's pods: an index instead of every pod
            by_node = self.derived("pods-by-node", _pods_by_node, of="pods")
            candidates = [
                p
                for p in by_node.get(node_name, ())
                if namespace is None or p["metadata"].get("namespace") == namespace
            ]
        return [
            obj
            for obj in candidates
            if labels_ok(obj["metadata"].get("labels") or {}) and fields_ok(obj)
        ]

    def replace(self, plural: str, namespace: str | None, name: str, body: Obj) -> Obj:
        resource = self.resource(plural)
        current = self.peek(plural, namespace, name)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(resource, name)
        return self._store_update(resource, current, obj)

    def patch(
        self, plural: str, namespace: str | None, name: str, patch: Any, content_type: str
    ) -> Obj:
        resource = self.resource(plural)
        current = self.peek(plural, namespace, name)
        if "json-patch" in content_type:
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "json patch must be a list of operations")
            updated = json_patch(current, patch)
        elif not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "patch body must be a JSON object")
        elif "strategic-merge-patch" in content_type or "apply-patch" in content_type:
            updated = strategic_merge_patch(current, patch)
        else:
            updated = merge_patch(current, patch)
        sent_rv = (
            (patch.get("metadata") or {}).get("resourceVersion")
            if isinstance(patch, dict)
            else None
        )
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(resource, name)
        return self._store_update(resource, current, updated)

    def delete(self, plural: str, namespace: str | None, name: str) -> Obj:
        resource = self.resource(plural)
        obj = self.peek(plural, namespace, name)
        key = self._key(resource, namespace, name)
        del self._bucket(resource)[key]
        self._keys_by_namespace[resource.plural].get(key[0], {}).pop(key, None)
        self._deleted(resource, obj)
        if resource.plural == "namespaces":
            for other in RESOURCES:
                if other.namespaced:
                    bucket = self._objects[other.plural]
                    for key in [k for k in bucket if k[0] == name]:
                        self._deleted(other, bucket.pop(key))
                    self._keys_by_namespace[other.plural].pop(name, None)
        for hook in self.after_delete:
            hook(resource, obj)
        return copy.deepcopy(obj)

    def _deleted(self, resource: Resource, obj: Obj) -> None:
        """A DELETED change carries the object at the resourceVersion of its deletion."""
        self._next_rv()
        meta = {**obj["metadata"], "resourceVersion": str(self.resource_version)}
        gone = {**obj, "metadata": meta}
        self._changed("DELETED", resource, gone)

    def _conflict(self, resource: Resource, name: str) -> ApiError:
        group = f".{resource.group}" if resource.group else ""
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource.plural}{group} "{name}": the object '
            "has been modified; please apply your changes to the latest version and try again",
            {"name": name, "group": resource.group, "kind": resource.plural},
        )

    def _store_update(self, resource: Resource, current: Obj, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "name", "namespace"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if obj.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        key = self._key(resource, meta.get("namespace"), meta["name"])
        self._bucket(resource)[key] = obj
        self._changed("MODIFIED", resource, obj, current)
        self._notify(resource, obj)
        return copy.deepcopy(obj)

    def _notify(self, resource: Resource, obj: Obj) -> None:
        for hook in self.after_write:
            hook(resource, obj)

    def _changed(self, kind: str, resource: Resource, obj: Obj, before: Obj | None = None) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].resource_version
        self._revisions[resource.plural] = self.resource_version
        change = Change(self.resource_version, kind, resource.plural, obj, before)
        self.history.append(change)
        for watcher in list(self.watchers):
            watcher(change)

    def compact(self) -> int:
        """Forget the watch history, as etcd compaction does: older resourceVersions get 410."""
        self.history.clear()
        self.compacted_rv = self.resource_version
        return self.compacted_rv

    def changes_since(self, resource_version: int) -> builtins.list[Change] | None:
        """The changes after `resource_version`, or None when history no longer reaches back."""
        if resource_version < self.compacted_rv:
            return None
        return [c for c in self.history if c.resource_version > resource_version]

    # --- cluster facts the behaviour model uses -----------------------------------------
    def node_of_pod(self, pod: Obj) -> Obj | None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        return self.find("nodes", None, node_name) if node_name else None

    def host(self, name: str) -> WindowsHost | None:
        return self.hosts.get(name)

    def host_by_address(self, address: str) -> WindowsHost | None:
        for host in self.hosts.values():
            if host.address == address:
                return host
        return None

    def derived(self, name: str, build: Callable[[World], T], of: str | None = None) -> T:
        """`build(self)`, built again only after a write (to resource `of` when given, else to
        anything): the network model asks per packet, and a fleet has many pods, so a lookup
        built from pods survives writes to nodes and events (a reboot)."""
        version = self._revisions.get(of, 0) if of else self.resource_version
        cached = self._derived.get(name)
        if cached is None or cached[0] != version:
            cached = (version, build(self))
            self._derived[name] = cached
        value: T = cached[1]
        return value

    def running_pods_on(self, node_name: str) -> builtins.list[Obj]:
        by_node = self.derived("running-pods-by-node", _running_pods_by_node, of="pods")
        return list(by_node.get(node_name, ()))

    def record_event(
        self,
        namespace: str,
        involved: Obj,
        reason: str,
        message: str,
        event_type: str = "Normal",
        component: str = "kubelet",
    ) -> Obj:
        meta = involved.get("metadata", {})
        stamp = now_iso()
        return self.create(
            "events",
            namespace,
            {
                "metadata": {
                    "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
                    "namespace": namespace,
                },
                "involvedObject": {
                    "kind": involved.get("kind"),
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "apiVersion": involved.get("apiVersion", "v1"),
                },
                "reason": reason,
                "message": message,
                "type": event_type,
                "source": {"component": component, "host": meta.get("name")},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "reportingComponent": component,
            },
        )

    def reboot(self, host_name: str) -> Obj:
        """A reboot as a real node shows it: new bootID, a `Rebooted` Event, services
        restarted, and the DNS VIP's HNS policy gone (acs-engine#2027)."""
        host = self.hosts.get(host_name)
        node = self.find("nodes", None, host_name)
        if host is None and node is None:
            raise ApiError(404, "NotFound", f'host "{host_name}" not found')
        result: Obj = {"host": host_name}
        if host is not None:
            host.last_boot = now_iso()
            host.services = dict.fromkeys(host.services, "Running")
            if host.role == "node":
                # The persisted policy lists survive; the endpoints they reference do not.
                host.dns = "stale-policies"
                host.hns_generation += 1
            host.history.append("reboot")
        if node is not None:
            boot_id = str(next(self.boot_counter))
            self.patch(
                "nodes",
                None,
                host_name,
                {"status": {"nodeInfo": {"bootID": boot_id}}},
                "application/merge-patch+json",
            )
            self.record_event(
                "default",
                node,
                "Rebooted",
                f"Node {host_name} has been rebooted, boot id: {boot_id}",
                event_type="Warning",
            )
            result["bootID"] = boot_id
        return result


def _node_name_wanted(plural: str, field_selector: str | None) -> str | None:
    if plural != "pods" or not field_selector:
        return None
    for raw in field_selector.split(","):
        term = raw.strip().replace("==", "=")
        if term.startswith("spec.nodeName=") and "!=" not in term:
            return term.split("=", 1)[1].strip()
    return None


def _pods_by_node(world: World) -> dict[str, list[Obj]]:
    by_node: dict[str, list[Obj]] = {}
    for pod in world.iter("pods"):
        by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
    return by_node


def _running_pods_by_node(world: World) -> dict[str, list[Obj]]:
    by_node: dict[str, list[Obj]] = {}
    for pod in world.iter("pods"):
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and (pod.get("status") or {}).get("phase") == "Running":
            by_node.setdefault(node_name, []).append(pod)
    return by_node


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
