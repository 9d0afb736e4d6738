"""What the checks of one diagnosis share, fetched at most once: pod, node, events, probes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from config.addresses import plain_host, plain_ip, shown
from config.settings import Settings
from handlers import node_scripts, windows
from handlers.errors import BadInput, NotFound, WinpodError
from handlers.i18n import _
from handlers.model import NodeFacts, Target
from handlers.transports import (
    Cluster,
    CommandResult,
    KubeObject,
    NodeShell,
    NodeTarget,
    PodExec,
    WatchableCluster,
)

T = TypeVar("T")
KUBE_DNS_SELECTOR = "k8s-app=kube-dns"


@dataclass(frozen=True)
class Transports:
    """The three kinds of I/O, chosen at start-up (real adapters, or fakes in unit tests)."""

    cluster: Cluster
    pod_exec: PodExec | None
    # Scripts for a node: over WinRM, or in a HostProcess pod (`node.transport`).
    node_shell: NodeShell | None
    # The same cluster, for paged lists and watches (None where a fake has neither).
    watchable: WatchableCluster | None = None
    # Scripts for a Hyper-V host, which is no Kubernetes node: WinRM only (None without
    # WinRM credentials).
    hyperv_shell: NodeShell | None = None


class _Failed:
    def __init__(self, error: WinpodError) -> None:
        self.error = error


class Context:
    """Per-diagnosis memo: each fact is fetched once, even when checks ask concurrently."""

    def __init__(
        self,
        transports: Transports,
        settings: Settings,
        kind: Literal["Pod", "Node", "Cluster"],
        pod: KubeObject | None,
        node: KubeObject | None,
    ) -> None:
        self.transports = transports
        self.settings = settings
        self.kind = kind
        self.pod = pod
        self.node = node
        self._memo: dict[Any, Any] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    # --- memo -------------------------------------------------------------------------
    def once(self, key: Any, fetch: Callable[[], T]) -> T:
        """Run `fetch` once per key; every caller gets its value, or its error re-raised."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                try:
                    self._memo[key] = fetch()
                except WinpodError as exc:
                    self._memo[key] = _Failed(exc)
            value = self._memo[key]
        if isinstance(value, _Failed):
            raise value.error
        return value  # type: ignore[no-any-return]

    def provide(self, key: Any, value: Any) -> None:
        """Hand in a fact gathered elsewhere (a sweep's reads and probes) as if fetched here:
        the checks then decide on exactly what the sweep saw."""
        with self._guard:
            self._memo[key] = value

    # --- target and node --------------------------------------------------------------
    @property
    def target(self) -> Target:
        if self.kind == "Pod":
            assert self.pod is not None
            meta, spec, status = (
                self.pod["metadata"],
                self.pod.get("spec") or {},
                self.pod.get("status") or {},
            )
            return Target(
                kind="Pod",
                namespace=meta.get("namespace"),
                name=meta["name"],
                node=spec.get("nodeName"),
                phase=status.get("phase"),
                reason=pod_reason(self.pod),
            )
        if self.node is None:
            raise WinpodError("a cluster-wide context has no single target")  # i18n: a bug
        return Target(kind="Node", name=self.node["metadata"]["name"], node=self.node_name)

    @property
    def node_name(self) -> str | None:
        return None if self.node is None else str(self.node["metadata"]["name"])

    @property
    def node_facts(self) -> NodeFacts | None:
        return None if self.node is None else node_facts(self.node)

    @property
    def windows_node(self) -> bool:
        facts = self.node_facts
        return facts is not None and facts.windows

    @property
    def build(self) -> int | None:
        facts = self.node_facts
        return None if facts is None else facts.build

    @property
    def container_runtime(self) -> str:
        """The node's `nodeInfo.containerRuntimeVersion` ("containerd://1.7.20"), or ""."""
        if self.node is None:
            return ""
        info = (self.node.get("status") or {}).get("nodeInfo") or {}
        return str(info.get("containerRuntimeVersion") or "")

    def node_address(self) -> str:
        assert self.node is not None
        return node_address(self.node, self.settings.winrm.address_type, "WinRM")

    # --- cluster reads ----------------------------------------------------------------
    def pod_events(self) -> list[KubeObject]:
        assert self.pod is not None
        meta = self.pod["metadata"]
        return self.once(
            "pod-events",
            lambda: self.transports.cluster.list(
                "Event",
                namespace=meta.get("namespace"),
                field_selector=f"involvedObject.name={meta['name']}",
            ),
        )

    def owner_events(self, name: str, kind: str) -> list[KubeObject]:
        """Events about an object in the diagnosed pod's namespace (its owner, say)."""
        assert self.pod is not None
        namespace = self.pod["metadata"].get("namespace")
        return self.once(
            ("owner-events", kind, name),
            lambda: self.transports.cluster.list(
                "Event",
                namespace=namespace,
                field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
            ),
        )

    def node_events(self) -> list[KubeObject]:
        name = self.node_name
        if name is None:
            return []
        return self.once(
            "node-events",
            lambda: self.transports.cluster.list(
                "Event", field_selector=f"involvedObject.kind=Node,involvedObject.name={name}"
            ),
        )

    def node_pod_warnings(self) -> list[KubeObject]:
        """Warning events about the pods on this node (a node diagnosis's view of its pods)."""

        def fetch() -> list[KubeObject]:
            pods = {
                (p["metadata"].get("namespace"), p["metadata"].get("name"))
                for p in self.pods_on_node()
            }
            events = self.transports.cluster.list("Event", field_selector="type=Warning")
            return [
                e
                for e in events
                if (e.get("involvedObject") or {}).get("kind") == "Pod"
                and (
                    (e.get("involvedObject") or {}).get("namespace"),
                    (e.get("involvedObject") or {}).get("name"),
                )
                in pods
            ]

        return self.once("node-pod-warnings", fetch)

    def node_reboots(self) -> list[KubeObject]:
        """The node's `Rebooted` events only: a node's other events can be many."""
        name = self.node_name
        if name is None:
            return []
        return self.once(
            "node-reboots",
            lambda: self.transports.cluster.list(
                "Event",
                field_selector=f"involvedObject.kind=Node,involvedObject.name={name},"
                "reason=Rebooted",
            ),
        )

    KUBE_DNS_IP = ("service-ip", "kube-system", "kube-dns")

    def service_ip(self, namespace: str, name: str) -> str:
        """The Service's ClusterIP; "" when it has none, or when its value is no plain IP
        address (the value goes into probe commands and node-script parameters)."""

        def fetch() -> str:
            service = self.transports.cluster.get("Service", name, namespace)
            return plain_ip(str((service.get("spec") or {}).get("clusterIP") or "")) or ""

        return self.once(("service-ip", namespace, name), fetch)

    KUBE_DNS_POD_IPS = "kube-dns-pod-ips"
    NODE_PODS = "node-pods"

    def kube_dns_pod_ips(self) -> list[str]:
        def fetch() -> list[str]:
            pods = self.transports.cluster.list(
                "Pod", namespace="kube-system", label_selector=KUBE_DNS_SELECTOR
            )
            # only plain IPv4/IPv6 addresses: these go into commands run in pods
            found = (
                plain_ip(str((p.get("status") or {}).get("podIP") or ""))
                for p in pods
                if (p.get("status") or {}).get("phase") == "Running"
            )
            return [ip for ip in found if ip]

        return self.once(self.KUBE_DNS_POD_IPS, fetch)

    def running_pods_on_node(self) -> list[KubeObject]:
        name = self.node_name
        if name is None:
            return []
        return self.once(
            self.NODE_PODS,
            lambda: self.transports.cluster.list(
                "Pod", field_selector=f"spec.nodeName={name},status.phase=Running"
            ),
        )

    def pods_on_node(self) -> list[KubeObject]:
        """Every pod bound to this node, whatever its phase."""
        name = self.node_name
        if name is None:
            return []
        return self.once(
            "node-pods-all",
            lambda: self.transports.cluster.list("Pod", field_selector=f"spec.nodeName={name}"),
        )

    def cluster_version(self) -> str:
        """The API server's version from `/version`, e.g. "v1.33.2"."""
        return self.once("cluster-version", self.transports.cluster.server_version)

    def runtime_class(self, name: str) -> KubeObject:
        return self.once(
            ("runtime-class", name), lambda: self.transports.cluster.get("RuntimeClass", name)
        )

    def gmsa_credential_specs(self) -> list[KubeObject] | None:
        """Every GMSACredentialSpec, or None when the cluster lacks the CRD (windows.k8s.io)."""

        def fetch() -> list[KubeObject] | None:
            try:
                return self.transports.cluster.list("GMSACredentialSpec")
            except NotFound:
                return None

        return self.once("gmsa-credential-specs", fetch)

    # --- probes -----------------------------------------------------------------------
    def exec(self, argv: list[str], container: str | None = None) -> CommandResult:
        """Run a probe in the diagnosed pod (first container unless named); memoised."""
        assert self.pod is not None
        pod_exec = self.transports.pod_exec
        if pod_exec is None:
            raise WinpodError(_("pod exec is not available in this configuration"))
        meta = self.pod["metadata"]
        timeout = self.settings.sweep.probe_timeout.total_seconds()
        return self.once(
            ("exec", container, tuple(argv)),
            lambda: pod_exec.run(meta["namespace"], meta["name"], container, argv, timeout),
        )

    def node_script(self, name: str, address: str | None = None, **params: str) -> dict[str, Any]:
        """Run one of winpod's node scripts (on this node unless `address`, a Hyper-V host's,
        is given); memoised."""
        shell, target = self.script_receiver(address)
        script = node_scripts.render(name, **params)
        timeout = script_timeout_s(self.settings, shell)

        def fetch() -> dict[str, Any]:
            return node_scripts.parse_output(name, shell.run_script(target, script, timeout))

        return self.once(("script", name, target, tuple(sorted(params.items()))), fetch)

    def script_receiver(self, address: str | None = None) -> tuple[NodeShell, NodeTarget]:
        """The shell and target a node script goes to: this node through `node.transport`, or
        (with `address`) a Hyper-V host over WinRM."""
        if address is not None:
            if self.transports.hyperv_shell is None:
                raise WinpodError(
                    _(
                        "a Hyper-V host is no Kubernetes node: winpod reaches it over WinRM only, "
                        "and WinRM is not configured (winrm.username / winrm.password)"
                    )
                )
            return self.transports.hyperv_shell, NodeTarget(address, address)
        shell = self.transports.node_shell
        if shell is None:
            raise WinpodError(
                _(
                    "node.transport is winrm and WinRM is not configured (winrm.username / "
                    "winrm.password): set them, or node.transport: hostprocess"
                )
            )
        assert self.node_name is not None
        if shell.detached:  # a pod on the node: an address is for information only
            try:
                address = self.node_address()
            except WinpodError:
                address = ""
        else:
            address = self.node_address()
        return shell, NodeTarget(self.node_name, address)

    def node_status(self) -> dict[str, Any]:
        dns_ip = self._dns_service_ip_or_default()
        return self.node_script("node-status", DnsServiceIP=dns_ip)

    def node_memory(self) -> dict[str, Any]:
        """The node's physical and available memory in MB (`node-memory.ps1`)."""
        return self.node_script("node-memory")

    def _dns_service_ip_or_default(self) -> str:
        try:
            return self.service_ip("kube-system", "kube-dns") or "10.0.0.10"
        except WinpodError:
            return "10.0.0.10"

    def hyperv_host_address(self) -> tuple[str, str]:
        """(host name, address) of this node VM's Hyper-V host, from the node annotation: a
        plain host name or IP address, and with `hyperv.hosts` set, one of those hosts."""
        assert self.node is not None
        annotation = self.settings.hyperv.host_annotation
        value = ((self.node.get("metadata") or {}).get("annotations") or {}).get(annotation)
        if not value:
            raise BadInput(
                _("node {node} has no {annotation} annotation naming its Hyper-V host").format(
                    node=self.node_name, annotation=annotation
                )
            )
        host = plain_host(str(value))
        if host is None:
            raise BadInput(
                _(
                    "node {node}'s {annotation} annotation {value} is not a plain host name or IP "
                    "address; winpod sends scripts to nothing else"
                ).format(node=self.node_name, annotation=annotation, value=shown(value))
            )
        allowed = self.settings.hyperv.hosts
        if not allowed:
            return host, host
        if host not in allowed:
            raise BadInput(
                _(
                    "node {node}'s Hyper-V host {host} is not listed in hyperv.hosts; winpod "
                    "sends scripts only to the hosts listed there"
                ).format(node=self.node_name, host=host)
            )
        return host, allowed[host]


def script_timeout_s(settings: Settings, shell: NodeShell) -> float:
    """How long one node script may take: a HostProcess pod's whole life (start, kubelet
    restarts, log), or one WinRM read."""
    if shell.detached:
        return settings.node.script_timeout.total_seconds()
    return float(settings.winrm.read_timeout_s)


# Address types whose values are IP addresses; the others are DNS host names.
IP_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def node_address(node: KubeObject, wanted: str, purpose: str) -> str:
    """The node's first address of type `wanted`: an IP address for the IP types, a plain host
    name for the others; a value that is neither is refused, never connected to."""
    name = (node.get("metadata") or {}).get("name")
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == wanted and address.get("address"):
            value = str(address["address"])
            plain = plain_ip(value) if wanted in IP_ADDRESS_TYPES else plain_host(value)
            if plain is None:
                said = (
                    _(
                        "node {node}'s {type} {value} is not an IP address; winpod connects to "
                        "nothing else"
                    )
                    if wanted in IP_ADDRESS_TYPES
                    else _(
                        "node {node}'s {type} {value} is not a plain host name; winpod connects "
                        "to nothing else"
                    )
                )
                raise BadInput(said.format(node=name, type=wanted, value=shown(value)))
            return plain
    raise WinpodError(
        _("node {node} has no {type} address for {purpose}").format(
            node=name, type=wanted, purpose=purpose
        )
    )


def node_facts(node: KubeObject) -> NodeFacts:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    kernel = str(info.get("kernelVersion") or "")
    is_windows = (
        labels.get("kubernetes.io/os") == "windows" or info.get("operatingSystem") == "windows"
    )
    build = windows.build_from_kernel_version(kernel) if is_windows else None
    if is_windows and build is None:
        build = windows.build_from_label(str(labels.get("node.kubernetes.io/windows-build", "")))
    return NodeFacts(
        name=str(node["metadata"]["name"]),
        build=build,
        kernel_version=kernel,
        os_image=str(info.get("osImage") or ""),
        boot_id=str(info.get("bootID") or ""),
        windows=is_windows,
    )


def pod_reason(pod: KubeObject) -> str | None:
    """The reason a person sees in `kubectl get pod` STATUS (ContainerCreating, ErrImagePull…)."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    reason = status.get("reason")
    return None if reason is None else str(reason)


def event_line(event: KubeObject) -> str:
    """An Event as evidence: `event <reason>: <message>`."""
    return f"event {event.get('reason')}: {event.get('message')}"


def pod_images(pod: KubeObject) -> list[tuple[str, str]]:
    """(container name, image) for init and app containers."""
    spec = pod.get("spec") or {}
    return [
        (str(c.get("name", "")), str(c.get("image", "")))
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    ]
