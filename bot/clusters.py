"""The clusters winpod serves as they are now: whether each answers, and its Windows nodes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from config.settings import ConfigError, Settings
from handlers.context import Transports
from handlers.errors import WinpodError
from handlers.node_watch import WINDOWS_NODES


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    context: str | None  # the kubeconfig context it is reached through, once it was loaded
    reachable: bool
    windows_nodes: int | None  # None when it did not answer
    error: str | None
    home: bool  # where the leader's Lease lives (Settings.home_cluster)
    default: bool  # what a command without cluster=NAME means

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "context": self.context,
            "reachable": self.reachable,
            "windows_nodes": self.windows_nodes,
            "error": self.error,
            "home": self.home,
            "default": self.default,
        }


def cluster_statuses(
    settings: Settings, transports_of: Callable[[str], Transports]
) -> list[ClusterStatus]:
    """Every cluster's status, asked of all of them at once (one slow cluster delays only
    itself), in the order the config lists them."""
    names = settings.cluster_names
    default, home = settings.resolve_cluster(None), settings.home_cluster

    def status(name: str) -> ClusterStatus:
        context = None
        try:
            transports = transports_of(name)
            context = transports.cluster.context
            nodes = transports.cluster.list("Node", label_selector=WINDOWS_NODES)
        except (WinpodError, ConfigError) as exc:
            return ClusterStatus(
                name, context, False, None, str(exc), name == home, name == default
            )
        return ClusterStatus(name, context, True, len(nodes), None, name == home, name == default)

    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="clusters") as pool:
        return list(pool.map(status, names))
