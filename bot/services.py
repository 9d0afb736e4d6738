"""Everything the Slack listeners and jobs need, built once at start-up and passed explicitly."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.commands import CommandTable
from bot.metrics import Metrics
from bot.store import Store
from bot.work import WorkPool
from config.settings import Settings
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

    def __post_init__(self) -> None:
        if self.transports.watchable is not None:
            self.node_watch = NodeWatch(self.transports.watchable)
