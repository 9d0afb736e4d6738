"""Builds the real transports from settings, once, at start-up."""

from __future__ import annotations

from config.settings import Settings
from handlers.context import Transports
from handlers.transports.kube import KubeCluster, KubePodExec, load_configuration
from handlers.transports.winrm import WinRMShell


def build_transports(settings: Settings) -> Transports:
    configuration, context = load_configuration(settings.kubernetes)
    has_winrm = settings.winrm.username is not None and settings.winrm.password is not None
    return Transports(
        cluster=KubeCluster(configuration, context),
        pod_exec=KubePodExec(configuration),
        node_shell=WinRMShell(settings.winrm) if has_winrm else None,
    )
