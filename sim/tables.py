"""Server-side printing: `meta.k8s.io` Table objects with the columns `kubectl get` shows.

Every table carries all columns; the wide ones (`-o wide`) have priority 1 and kubectl hides
them otherwise. Cell texts follow the real printers (kubernetes `pkg/printers/internalversion`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sim.world import Obj, Resource

Column = tuple[str, str, int]  # name, type, priority (1: only with -o wide)
Printer = Callable[[Obj, "Clock"], list[Any]]


def table_version(accept: str) -> str | None:
    """The Table version the Accept header asks for (`v1` or `v1beta1`), None for plain JSON."""
    for media_range in accept.split(","):
        params = {
            p.split("=", 1)[0].strip().lower(): p.split("=", 1)[1].strip()
            for p in media_range.split(";")[1:]
            if "=" in p
        }
        if params.get("as", "").lower() == "table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
    return None


class Clock:
    """'Now' fixed for one table, and a parse cache: thousands of pods share a timestamp."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self._parsed: dict[str, datetime | None] = {}

    def since(self, stamp: str | datetime | None) -> str:
        if not stamp:
            return "<unknown>"
        if isinstance(stamp, datetime):  # YAML's reading of an unquoted scenario timestamp
            when: datetime | None = stamp
        elif stamp in self._parsed:
            when = self._parsed[stamp]
        else:
            try:
                when = datetime.fromisoformat(str(stamp))
            except ValueError:
                when = None
            self._parsed[stamp] = when
        if when is None:
            return "<unknown>"
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return human_duration((self.now - when).total_seconds())


def human_duration(seconds: float) -> str:
    """kubectl's AGE format (apimachinery `duration.HumanDuration`)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _labels(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _label_selector(selector: Obj | None) -> str:
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        values = ",".join(expression.get("values") or [])
        terms.append(f"{expression.get('key')} {expression.get('operator', '').lower()} ({values})")
    return ",".join(terms) or "<none>"


def _containers(template_spec: Obj) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _template_spec(obj: Obj) -> Obj:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


# --- printers, one per kind -------------------------------------------------------------------

POD_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Ready", "string", 0),
    ("Status", "string", 0),
    ("Restarts", "string", 0),
    ("Age", "string", 0),
    ("IP", "string", 1),
    ("Node", "string", 1),
    ("Nominated Node", "string", 1),
    ("Readiness Gates", "string", 1),
]


def pod_status_reason(pod: Obj) -> str:
    """The STATUS column: the phase, unless a container explains more (ContainerCreating…)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated is not None:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and state.get("running") is not None:
            has_running = True
    if reason == "Completed" and has_running:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        reason = "Running" if ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and status.get("phase") not in (
        "Succeeded",
        "Failed",
    ):
        reason = "Terminating"
    return str(reason)


def _pod(pod: Obj, clock: Clock) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(
        1 for c in statuses if c.get("ready") and (c.get("state") or {}).get("running") is not None
    )
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    if gates:
        true_types = {
            c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
        }
        gates_text = f"{sum(1 for g in gates if g.get('conditionType') in true_types)}/{len(gates)}"
    else:
        gates_text = "<none>"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        pod_status_reason(pod),
        str(restarts),
        clock.since(pod["metadata"].get("creationTimestamp")),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


NODE_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Status", "string", 0),
    ("Roles", "string", 0),
    ("Age", "string", 0),
    ("Version", "string", 0),
    ("Internal-IP", "string", 1),
    ("External-IP", "string", 1),
    ("OS-Image", "string", 1),
    ("Kernel-Version", "string", 1),
    ("Container-Runtime", "string", 1),
]
_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node(node: Obj, clock: Clock) -> list[Any]:
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [
        "Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"
    ]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    labels = node["metadata"].get("labels") or {}
    roles = {k[len(_ROLE_PREFIX) :] for k in labels if k.startswith(_ROLE_PREFIX)} - {""}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])

    def address(kind: str) -> str:
        return next(
            (a["address"] for a in status.get("addresses") or [] if a.get("type") == kind), "<none>"
        )

    return [
        node["metadata"]["name"],
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        clock.since(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


SERVICE_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Type", "string", 0),
    ("Cluster-IP", "string", 0),
    ("External-IP", "string", 0),
    ("Port(s)", "string", 0),
    ("Age", "string", 0),
    ("Selector", "string", 1),
]


def service_external_ip(service: Obj) -> str:
    spec = service.get("spec") or {}
    external = list(spec.get("externalIPs") or [])
    service_type = spec.get("type", "ClusterIP")
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if service_type == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        addresses = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        return ",".join([a for a in addresses if a] + external) or "<pending>"
    if service_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service(service: Obj, clock: Clock) -> list[Any]:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = ",".join(
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        service["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        cluster_ips[0] if cluster_ips else "<none>",
        service_external_ip(service),
        ports or "<none>",
        clock.since(service["metadata"].get("creationTimestamp")),
        _labels(spec.get("selector")),
    ]


def _more(items: list[str], total: int, limit: int = 3) -> str:
    text = ",".join(items[:limit])
    return f"{text} + {total - limit} more..." if total > limit else text


def _endpoints(endpoints: Obj, clock: Clock) -> list[Any]:
    shown: list[str] = []
    total = 0
    for subset in endpoints.get("subsets") or []:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            shown += addresses
            total += len(addresses)
        for port in ports:
            shown += [
                f"[{ip}]:{port.get('port')}" if ":" in ip else f"{ip}:{port.get('port')}"
                for ip in addresses
            ]
            total += len(addresses)
    return [
        endpoints["metadata"]["name"],
        _more(shown, total) if total else "<none>",
        clock.since(endpoints["metadata"].get("creationTimestamp")),
    ]


def _endpoint_slice(endpoint_slice: Obj, clock: Clock) -> list[Any]:
    ports = [str(p.get("port", "")) for p in endpoint_slice.get("ports") or []]
    addresses = [a for e in endpoint_slice.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        endpoint_slice["metadata"]["name"],
        endpoint_slice.get("addressType", ""),
        _more(ports, len(ports)) if ports else "<unset>",
        _more(addresses, len(addresses)) if addresses else "<unset>",
        clock.since(endpoint_slice["metadata"].get("creationTimestamp")),
    ]


EVENT_COLUMNS: list[Column] = [
    ("Last Seen", "string", 0),
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Subobject", "string", 1),
    ("Source", "string", 1),
    ("Message", "string", 0),
    ("First Seen", "string", 1),
    ("Count", "string", 1),
    ("Name", "string", 1),
]


def _event(event: Obj, clock: Clock) -> list[Any]:
    first = clock.since(event.get("firstTimestamp") or event.get("eventTime"))
    last = clock.since(event["lastTimestamp"]) if event.get("lastTimestamp") else first
    count = int(event.get("count") or 0) or 1
    series = event.get("series")
    if series:
        last = clock.since(series.get("lastObservedTime"))
        count = int(series.get("count") or count)
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    source_text = ", ".join(
        s for s in (source.get("component"), source.get("host")) if s
    ) or ", ".join(
        s for s in (event.get("reportingComponent"), event.get("reportingInstance")) if s
    )
    return [
        last,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        source_text,
        str(event.get("message", "")).strip(),
        first,
        count,
        event["metadata"]["name"],
    ]


DAEMONSET_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Desired", "integer", 0),
    ("Current", "integer", 0),
    ("Ready", "integer", 0),
    ("Up-to-date", "integer", 0),
    ("Available", "integer", 0),
    ("Node Selector", "string", 0),
    ("Age", "string", 0),
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
]


def _daemonset(daemonset: Obj, clock: Clock) -> list[Any]:
    status = daemonset.get("status") or {}
    template = _template_spec(daemonset)
    names, images = _containers(template)
    return [
        daemonset["metadata"]["name"],
        int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0),
        int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0),
        _labels(template.get("nodeSelector")),
        clock.since(daemonset["metadata"].get("creationTimestamp")),
        names,
        images,
        _label_selector((daemonset.get("spec") or {}).get("selector")),
    ]


DEPLOYMENT_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Ready", "string", 0),
    ("Up-to-date", "integer", 0),
    ("Available", "integer", 0),
    ("Age", "string", 0),
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
]


def _desired(obj: Obj) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _deployment(deployment: Obj, clock: Clock) -> list[Any]:
    status = deployment.get("status") or {}
    names, images = _containers(_template_spec(deployment))
    return [
        deployment["metadata"]["name"],
        f"{int(status.get('readyReplicas') or 0)}/{_desired(deployment)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        clock.since(deployment["metadata"].get("creationTimestamp")),
        names,
        images,
        _label_selector((deployment.get("spec") or {}).get("selector")),
    ]


def _statefulset(statefulset: Obj, clock: Clock) -> list[Any]:
    status = statefulset.get("status") or {}
    names, images = _containers(_template_spec(statefulset))
    return [
        statefulset["metadata"]["name"],
        f"{int(status.get('readyReplicas') or 0)}/{_desired(statefulset)}",
        clock.since(statefulset["metadata"].get("creationTimestamp")),
        names,
        images,
    ]


def _replicaset(replicaset: Obj, clock: Clock) -> list[Any]:
    status = replicaset.get("status") or {}
    names, images = _containers(_template_spec(replicaset))
    return [
        replicaset["metadata"]["name"],
        _desired(replicaset),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        clock.since(replicaset["metadata"].get("creationTimestamp")),
        names,
        images,
        _label_selector((replicaset.get("spec") or {}).get("selector")),
    ]


def _lease(lease: Obj, clock: Clock) -> list[Any]:
    return [
        lease["metadata"]["name"],
        (lease.get("spec") or {}).get("holderIdentity") or "",
        clock.since(lease["metadata"].get("creationTimestamp")),
    ]


def _namespace(namespace: Obj, clock: Clock) -> list[Any]:
    return [
        namespace["metadata"]["name"],
        (namespace.get("status") or {}).get("phase", ""),
        clock.since(namespace["metadata"].get("creationTimestamp")),
    ]


def _configmap(configmap: Obj, clock: Clock) -> list[Any]:
    return [
        configmap["metadata"]["name"],
        len(configmap.get("data") or {}) + len(configmap.get("binaryData") or {}),
        clock.since(configmap["metadata"].get("creationTimestamp")),
    ]


def _serviceaccount(account: Obj, clock: Clock) -> list[Any]:
    return [
        account["metadata"]["name"],
        len(account.get("secrets") or []),
        clock.since(account["metadata"].get("creationTimestamp")),
    ]


def _generic(obj: Obj, clock: Clock) -> list[Any]:
    return [obj["metadata"]["name"], clock.since(obj["metadata"].get("creationTimestamp"))]


PRINTERS: dict[str, tuple[list[Column], Printer]] = {
    "pods": (POD_COLUMNS, _pod),
    "nodes": (NODE_COLUMNS, _node),
    "services": (SERVICE_COLUMNS, _service),
    "endpoints": (
        [("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)],
        _endpoints,
    ),
    "endpointslices": (
        [
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        _endpoint_slice,
    ),
    "events": (EVENT_COLUMNS, _event),
    "daemonsets": (DAEMONSET_COLUMNS, _daemonset),
    "deployments": (DEPLOYMENT_COLUMNS, _deployment),
    "statefulsets": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        _statefulset,
    ),
    "replicasets": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _replicaset,
    ),
    "leases": ([("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)], _lease),
    "namespaces": (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        _namespace,
    ),
    "configmaps": (
        [("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        _configmap,
    ),
    "serviceaccounts": (
        [("Name", "string", 0), ("Secrets", "integer", 0), ("Age", "string", 0)],
        _serviceaccount,
    ),
}
GENERIC: tuple[list[Column], Printer] = ([("Name", "string", 0), ("Age", "string", 0)], _generic)


def _row_object(obj: Obj, include: str, version: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def build_table(
    resource: Resource,
    objects: Iterable[Obj],
    *,
    version: str = "v1",
    include_object: str = "Metadata",
    resource_version: str = "",
) -> Obj:
    """A Table of `objects`; rows embed the stored objects without copying them."""
    columns, printer = PRINTERS.get(resource.plural, GENERIC)
    clock = Clock()
    rows = []
    for obj in objects:
        row: Obj = {"cells": printer(obj, clock)}
        embedded = _row_object(obj, include_object, version)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" and i == 0 else "",
                "description": "",
                "priority": priority,
            }
            for i, (name, kind, priority) in enumerate(columns)
        ],
        "rows": rows,
    }
