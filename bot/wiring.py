"""Builds the real transports from settings, once, at start-up (counting their failures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.settings import Settings
from handlers.context import Transports
from handlers.errors import BadInput, WinpodError
from handlers.transports import CommandResult, KubeObject, NodeShell, PodExec
from handlers.transports.hostprocess import HostProcessShell
from handlers.transports.kube import KubeCluster, KubePodExec, load_configuration
from handlers.transports.winrm import WinRMShell

ErrorHook = Callable[[str, str], None]  # (peer, kind), e.g. ("winrm", "TimedOut")


def build_transports(settings: Settings, on_error: ErrorHook | None = None) -> Transports:
    configuration, context = load_configuration(settings.kubernetes)
    cluster = KubeCluster(configuration, context)
    pod_exec: PodExec = KubePodExec(configuration)
    winrm: NodeShell | None = WinRMShell(settings.winrm) if has_winrm(settings) else None
    if node_transport(settings) == "winrm":
        node_shell = winrm
    else:
        node_shell = HostProcessShell(
            cluster, cluster, settings.kubernetes.namespace, settings.node.hostprocess_image
        )
    if on_error is None:
        return Transports(cluster, pod_exec, node_shell, cluster, winrm)
    counted_winrm = None if winrm is None else _Counted(winrm, "winrm", on_error)
    counted_cluster = _Counted(cluster, "kubernetes", on_error)
    if node_shell is winrm:
        counted_node: NodeShell | None = counted_winrm
    else:
        counted_node = _Counted(node_shell, "hostprocess", on_error)
    return Transports(
        counted_cluster,
        _Counted(pod_exec, "exec", on_error),
        counted_node,
        counted_cluster,
        counted_winrm,
    )


def has_winrm(settings: Settings) -> bool:
    return settings.winrm.username is not None and settings.winrm.password is not None


def node_transport(settings: Settings) -> str:
    """`node.transport` resolved: auto is WinRM only where WinRM credentials exist (a managed
    cluster's pods rarely reach a node's WinRM port; HostProcess pods need only the API)."""
    if settings.node.transport == "auto":
        return "winrm" if has_winrm(settings) else "hostprocess"
    return settings.node.transport


class _Counted:
    """Passes every call through and reports failures that are the environment's (not a
    missing object or a bad name) to the metrics, by peer and kind."""

    def __init__(self, inner: Any, peer: str, on_error: ErrorHook) -> None:
        self._inner, self._peer, self._on_error = inner, peer, on_error

    @property
    def context(self) -> str:
        return str(self._inner.context)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> KubeObject | CommandResult | Any:
            try:
                return attribute(*args, **kwargs)
            except BadInput:
                raise
            except WinpodError as exc:
                self._on_error(self._peer, type(exc).__name__)
                raise

        return call
