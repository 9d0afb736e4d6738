"""Builds the real transports from settings, once, at start-up (counting their failures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.settings import Settings
from handlers.context import Transports
from handlers.errors import BadInput, WinpodError
from handlers.transports import CommandResult, KubeObject, NodeShell, PodExec
from handlers.transports.kube import KubeCluster, KubePodExec, load_configuration
from handlers.transports.winrm import WinRMShell

ErrorHook = Callable[[str, str], None]  # (peer, kind), e.g. ("winrm", "TimedOut")


def build_transports(settings: Settings, on_error: ErrorHook | None = None) -> Transports:
    configuration, context = load_configuration(settings.kubernetes)
    has_winrm = settings.winrm.username is not None and settings.winrm.password is not None
    cluster = KubeCluster(configuration, context)
    pod_exec: PodExec = KubePodExec(configuration)
    node_shell: NodeShell | None = WinRMShell(settings.winrm) if has_winrm else None
    if on_error is None:
        return Transports(cluster, pod_exec, node_shell, cluster)
    counted_shell = None if node_shell is None else _Counted(node_shell, "winrm", on_error)
    counted_cluster = _Counted(cluster, "kubernetes", on_error)
    return Transports(
        counted_cluster, _Counted(pod_exec, "exec", on_error), counted_shell, counted_cluster
    )


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
