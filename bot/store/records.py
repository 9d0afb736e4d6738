"""The records the store hands out, the action statuses, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from handlers.errors import WinpodError

# The cluster of a store that was never told one: a config without `clusters:`, and every row
# written before the store knew clusters (migration 0003).
DEFAULT_CLUSTER = "default"

ActionStatus = Literal[
    "pending", "approved", "running", "succeeded", "failed", "rejected", "expired"
]
STATUSES: tuple[ActionStatus, ...] = get_args(ActionStatus)
OPEN_STATUSES: tuple[ActionStatus, ...] = ("pending", "approved", "running")
# Statuses an action can expire from: once fully approved it waits for its target (lock) and
# for room in the pool, and runs; only its result may end it then.
EXPIRABLE_STATUSES: tuple[ActionStatus, ...] = ("pending",)


class StoreError(WinpodError):
    """The store's database failed or refused; the message names it without its password."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class OpenActionExists(WinpodError):
    """The same remediation on the same target is already pending, approved or running."""

    exit_code = 2

    def __init__(self, action: PendingAction) -> None:
        super().__init__(
            f"{action.remediation} on {action.target} is already {action.status} "
            f"as action {action.id}"
        )
        self.action = action


@dataclass(frozen=True)
class Offer:
    """What a remediation button means; the button carries only the id."""

    id: str
    remediation: str
    target: str
    params: dict[str, Any]
    check: str
    risk: str
    created_at: datetime
    diagnosed: dict[str, str] | None  # TargetRef JSON of what was diagnosed, if anything
    cluster: str = DEFAULT_CLUSTER


@dataclass(frozen=True)
class PendingAction:
    """A requested remediation on its way through approval, execution and result."""

    id: str
    remediation: str
    target: str
    params: dict[str, Any]
    risk: str
    requester: str
    channel: str | None
    message_ts: str | None
    thread_ts: str | None
    status: ActionStatus
    approvals: tuple[str, ...]
    rejected_by: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None
    target_kind: str
    plan: dict[str, Any] | None  # the plan the approvers saw (handlers Plan JSON), run as is
    offer_id: str | None  # the button it came from
    check_id: str | None  # the check that offered it
    diagnosed: dict[str, str] | None  # what was diagnosed (TargetRef JSON), re-checked after
    cluster: str = DEFAULT_CLUSTER  # where it acts

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: who did what, when, to what."""

    at: datetime
    actor: str
    kind: str
    action_id: str | None
    target: str | None
    detail: dict[str, Any]
    cluster: str = DEFAULT_CLUSTER


@dataclass(frozen=True)
class Alert:
    """The one alert posted for a node's boot, and whether DNS has worked again since."""

    node: str
    boot_id: str
    created_at: datetime
    channel: str | None
    message_ts: str | None
    resolved_at: datetime | None
    cluster: str = DEFAULT_CLUSTER


@dataclass(frozen=True)
class RdpSession:
    """An open RDP path to a node and when it must be torn down."""

    node: str
    requester: str
    expires_at: datetime
    source_ranges: tuple[str, ...]
    channel: str | None
    thread_ts: str | None
    created_at: datetime
    updated_at: datetime
    cluster: str = DEFAULT_CLUSTER
