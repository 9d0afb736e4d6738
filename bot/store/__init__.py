"""Persistent state shared by every replica: offers, pending actions, locks, audit, boots, RDP."""

from bot.store.actions import ActionsStore
from bot.store.audit import AuditStore
from bot.store.base import MIGRATIONS, VERSION_TABLE, normalise_url
from bot.store.boots import BootsStore
from bot.store.locks import LocksStore
from bot.store.rdp import RdpStore
from bot.store.records import (
    EXPIRABLE_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    ActionStatus,
    Alert,
    AuditEntry,
    Offer,
    OpenActionExists,
    PendingAction,
    RdpSession,
    StoreError,
)
from bot.store.schema import (
    METADATA,
    actions,
    alerts,
    audit_log,
    locks,
    node_boots,
    offers,
    rdp_sessions,
)

__all__ = [
    "EXPIRABLE_STATUSES",
    "METADATA",
    "MIGRATIONS",
    "OPEN_STATUSES",
    "STATUSES",
    "VERSION_TABLE",
    "ActionStatus",
    "Alert",
    "AuditEntry",
    "Offer",
    "OpenActionExists",
    "PendingAction",
    "RdpSession",
    "Store",
    "StoreError",
    "actions",
    "alerts",
    "audit_log",
    "locks",
    "node_boots",
    "normalise_url",
    "offers",
    "rdp_sessions",
]


class Store(ActionsStore, LocksStore, AuditStore, BootsStore, RdpStore):
    """The database behind approvals, locks and audit; safe to share between threads."""
