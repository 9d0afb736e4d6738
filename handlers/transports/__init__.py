"""Narrow protocols for the three kinds of I/O checks need: cluster, pod exec, node PowerShell.

Checks see only these protocols; the real adapters (`kube`, `winrm`, `hostprocess`) are thin
and translate foreign exceptions into `handlers.errors` at the boundary. Objects are plain
JSON dicts as the Kubernetes API returns them (camelCase), so no client model types leak into
the checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended (pod exec or a node script)."""

    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Cluster(Protocol):
    """Reads (and, for remediations, writes) through the Kubernetes API."""

    @property
    def context(self) -> str: ...

    def server_version(self) -> str:
        """The API server's version (`/version` gitVersion), e.g. "v1.33.2"."""
        ...

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject: ...

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]: ...

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject: ...

    def patch(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        """A strategic merge patch (JSON merge patch for kinds without strategy)."""
        ...

    def replace(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        """A PUT; a stale metadata.resourceVersion raises `Conflict`."""
        ...

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None: ...


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch: ADDED, MODIFIED, DELETED or BOOKMARK, and the object's JSON."""

    type: str
    object: KubeObject

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class WatchableCluster(Protocol):
    """What a list-then-watch needs: pages of a list with its resourceVersion, and a watch
    from that resourceVersion (which raises `Expired` when the server no longer has it)."""

    def list_pages(
        self, kind: str, label_selector: str | None = None, page_size: int = 500
    ) -> Iterator[tuple[list[KubeObject], str]]:
        """A list one page at a time (`limit`/`continue`), each with the list's
        resourceVersion: only one page is ever held."""
        ...

    def watch(
        self,
        kind: str,
        resource_version: str,
        label_selector: str | None = None,
        timeout_s: int = 300,
    ) -> Iterator[WatchEvent]: ...


class PodExec(Protocol):
    """Runs a command in a pod's container and returns what it printed."""

    def run(
        self, namespace: str, pod: str, container: str | None, argv: list[str], timeout_s: float
    ) -> CommandResult: ...


@dataclass(frozen=True)
class NodeTarget:
    """Where a node script runs: a Windows host by name (a Kubernetes node, or a Hyper-V host
    that is none) and the address WinRM would connect to ("" when no transport needs one)."""

    name: str
    address: str


class PodLogs(Protocol):
    """Reads a container's log through the API server (`pods/log`)."""

    def pod_log(self, name: str, namespace: str) -> str: ...


class NodeShell(Protocol):
    """Runs one of winpod's own PowerShell scripts on a Windows host (over WinRM, or in a
    HostProcess pod on a node)."""

    # True when the script runs apart from winpod's connection (a pod on the node), so a script
    # that cuts the node's network or restarts kubelet still reports back; False: callers run
    # such scripts detached (handlers/detached.py).
    detached: bool

    def describe(self, target: NodeTarget) -> str:
        """Where the script goes, for approvers: "in a HostProcess pod on akswin000002"."""
        ...

    def run_script(self, target: NodeTarget, script: str, timeout_s: float) -> CommandResult: ...
