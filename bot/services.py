"""Everything the Slack listeners and jobs need, built once at start-up and passed explicitly."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bot.commands import CommandTable
from bot.metrics import Metrics
from bot.store import Store
from bot.work import WorkPool
from config.settings import SINGLE_CLUSTER, Settings
from handlers.context import Transports
from handlers.node_watch import NodeWatch
from handlers.registry import Registry

if TYPE_CHECKING:
    from bot.approvals import ApprovalFlow


@dataclass
class BotServices:
    settings: Settings
    transports: Transports
    store: Store
    pool: WorkPool
    metrics: Metrics
    commands: CommandTable
    checks: Registry
    sweep_lock: threading.Lock = field(default_factory=threading.Lock)  # one sweep at a time
    # The remediation service and its Slack side, set once the Slack app (its client) exists.
    approvals: ApprovalFlow | None = None
    # Windows nodes' boot ids for sweeps, watched from the first sweep on (one per process).
    node_watch: NodeWatch | None = field(init=False, default=None)

    # The cluster these services act on; `in_cluster` gives those of another one.
    cluster: str = SINGLE_CLUSTER
    # Every cluster's services by name, shared by all of them (built on first use).
    siblings: dict[str, BotServices] = field(default_factory=dict, repr=False)
    _siblings_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.transports.watchable is not None:
            self.node_watch = NodeWatch(self.transports.watchable)
        self.siblings.setdefault(self.cluster, self)

    @property
    def named_cluster(self) -> str | None:
        """The cluster's name where messages must say it (winpod serves several), else None."""
        return self.cluster if self.settings.many_clusters else None

    def in_cluster(self, name: str | None) -> BotServices:
        """The services of cluster `name` (None: the default one): its own settings view,
        transports, node watch, sweep lock and approval flow, sharing the store, pool and
        metrics. Raises UnknownCluster (a ConfigError) for a name winpod does not serve."""
        name = self.settings.resolve_cluster(name)
        with self._siblings_lock:
            found = self.siblings.get(name)
            if found is not None:
                return found
            from bot.wiring import build_transports  # noqa: PLC0415 - wiring builds on services

            settings = self.settings.for_cluster(name)
            metrics = self.metrics
            sibling = replace(
                self,
                settings=settings,
                transports=build_transports(
                    settings, lambda peer, kind: metrics.error(peer, kind, name)
                ),
                store=self.store.scoped(name),
                cluster=name,
                sweep_lock=threading.Lock(),
                approvals=None,
            )
            if self.approvals is not None:
                sibling.approvals = self.approvals.sibling(sibling)
            self.siblings[name] = sibling
            return sibling

    def all_clusters(self) -> list[BotServices]:
        """Every cluster's services, in the order the config lists them."""
        return [self.in_cluster(name) for name in self.settings.cluster_names]
