"""Persistent state shared by every replica: offers, pending actions, locks, audit, boots, RDP."""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    TypeDecorator,
    case,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from handlers.errors import WinpodError

log = logging.getLogger(__name__)
_Record = TypeVar("_Record")

ActionStatus = Literal[
    "pending", "approved", "running", "succeeded", "failed", "rejected", "expired"
]
STATUSES: tuple[ActionStatus, ...] = get_args(ActionStatus)
OPEN_STATUSES: tuple[ActionStatus, ...] = ("pending", "approved", "running")
# Statuses an action can expire from: once fully approved it waits for its target (lock) and
# for room in the pool, and runs; only its result may end it then.
EXPIRABLE_STATUSES: tuple[ActionStatus, ...] = ("pending",)

# A directory next to this module (package data), so an installed wheel carries its migrations.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A table of our own, so a database shared with another Alembic-managed app does not collide.
VERSION_TABLE = "winpod_schema_version"
# Key of the PostgreSQL advisory lock that serialises migrations: "winpod" in ASCII.
_MIGRATION_LOCK_KEY = 0x77696E706F64
_SQLITE_BUSY_TIMEOUT_MS = 15_000
_SQLITE_RETRY_S = 0.02
_PG_CONNECT_TIMEOUT_S = 10
# Each failed compare-and-swap means another caller succeeded, so this bound is never reached
# unless the database misbehaves.
_MAX_CAS_ATTEMPTS = 1000


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


@dataclass(frozen=True)
class Alert:
    """The one alert posted for a node's boot, and whether DNS has worked again since."""

    node: str
    boot_id: str
    created_at: datetime
    channel: str | None
    message_ts: str | None
    resolved_at: datetime | None


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


class _UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite keeps naive text, so UTC is implied there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The tables as the store queries them; bot/migrations/versions creates them (a test checks both
# agree).
METADATA = MetaData()
_ID = 16
_OPEN_WHERE = "status IN ({})".format(", ".join(f"'{status}'" for status in OPEN_STATUSES))
_NAME = 255

offers = Table(
    "offers",
    METADATA,
    Column("id", String(_ID), primary_key=True),
    Column("remediation", String(64), nullable=False),
    Column("target", String(_NAME), nullable=False),
    Column("params", JSON, nullable=False),
    Column("check_id", String(64), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("diagnosed", JSON(none_as_null=True)),
)

actions = Table(
    "actions",
    METADATA,
    Column("id", String(_ID), primary_key=True),
    Column("remediation", String(64), nullable=False),
    Column("target", String(_NAME), nullable=False),
    Column("params", JSON, nullable=False),
    Column("risk", String(16), nullable=False),
    Column("requester", String(_NAME), nullable=False),
    Column("channel", String(64)),
    Column("message_ts", String(64)),
    Column("thread_ts", String(64)),
    Column("status", String(16), nullable=False),
    Column("approvals", JSON, nullable=False),
    Column("rejected_by", String(_NAME)),
    Column("version", Integer, nullable=False),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("updated_at", _UTCDateTime, nullable=False),
    Column("expires_at", _UTCDateTime, nullable=False),
    Column("result", JSON(none_as_null=True)),
    Column("target_kind", String(16), nullable=False, server_default="node"),
    Column("plan", JSON(none_as_null=True)),
    Column("offer_id", String(_ID)),
    Column("check_id", String(64)),
    Column("diagnosed", JSON(none_as_null=True)),
    Index(
        "ux_actions_open",
        "remediation",
        "target",
        unique=True,
        postgresql_where=text(_OPEN_WHERE),
        sqlite_where=text(_OPEN_WHERE),
    ),
    Index("ix_actions_status_expires_at", "status", "expires_at"),
    Index("ix_actions_created_at", "created_at"),
)

locks = Table(
    "locks",
    METADATA,
    Column("name", String(_NAME), primary_key=True),
    Column("holder", String(_NAME), nullable=False),
    Column("acquired_at", _UTCDateTime, nullable=False),
    Column("expires_at", _UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    METADATA,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", _UTCDateTime, nullable=False),
    Column("actor", String(_NAME), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("action_id", String(_ID)),
    Column("target", String(_NAME)),
    Column("detail", JSON, nullable=False),
)

node_boots = Table(
    "node_boots",
    METADATA,
    Column("node", String(_NAME), primary_key=True),
    Column("boot_id", String(64), nullable=False),
    Column("seen_at", _UTCDateTime, nullable=False),
)

alerts = Table(
    "alerts",
    METADATA,
    Column("node", String(_NAME), primary_key=True),
    Column("boot_id", String(64), primary_key=True),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("channel", String(64)),
    Column("message_ts", String(64)),
    Column("resolved_at", _UTCDateTime),
)

rdp_sessions = Table(
    "rdp_sessions",
    METADATA,
    Column("node", String(_NAME), primary_key=True),
    Column("requester", String(_NAME), nullable=False),
    Column("expires_at", _UTCDateTime, nullable=False),
    Column("source_ranges", JSON, nullable=False),
    Column("channel", String(64)),
    Column("thread_ts", String(64)),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("updated_at", _UTCDateTime, nullable=False),
)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store takes aware UTC times")
    return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    # 8 random bytes: 11 url-safe characters, short enough for Slack button values and logs.
    return secrets.token_urlsafe(8)


def _statuses(value: str | Sequence[str]) -> tuple[str, ...]:
    chosen = (value,) if isinstance(value, str) else tuple(value)
    unknown = [status for status in chosen if status not in STATUSES]
    if unknown or not chosen:
        raise ValueError(f"unknown action status {unknown or chosen}; known: {', '.join(STATUSES)}")
    return chosen


def normalise_url(url: str) -> URL:
    """Parse a store URL; plain `postgresql://` (and `postgres://`) use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The parser's message may quote the URL, password included.
        raise StoreError("store.url is not a valid SQLAlchemy database URL") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"store {parsed.render_as_string(hide_password=True)}: "
            "only SQLite and PostgreSQL are supported"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # In-memory SQLite gives every pooled connection its own empty database.
        raise StoreError("store.url: SQLite needs a file (sqlite:///path/winpod.db), not memory")
    return parsed


class Store:
    """The database behind approvals, locks and audit; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self._url = normalise_url(url)
        self.display_url = self._url.render_as_string(hide_password=True)
        self._dialect = self._url.get_backend_name()
        connect_args: dict[str, Any] = {}
        if self._dialect == "postgresql" and "connect_timeout" not in self._url.query:
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        self._engine: Engine = create_engine(
            self._url,
            # Statement parameters hold user data; keep them out of exception texts and logs.
            hide_parameters=True,
            pool_pre_ping=self._dialect == "postgresql",
            connect_args=connect_args,
        )
        if self._dialect == "sqlite":
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        # Readers need no write lock; on SQLite this turns BEGIN IMMEDIATE into a plain BEGIN.
        self._reader = self._engine.execution_options(winpod_read_only=True)

    def close(self) -> None:
        self._engine.dispose()

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["version_table"] = VERSION_TABLE
        log.info("migrating store %s", self.display_url)
        with self._guard(), self._write() as conn:
            if self._dialect == "postgresql":
                # Held until commit, so replicas starting together migrate one after the other
                # and the later ones find the schema at head.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                # Typically a newer winpod already migrated this database past our head.
                raise StoreError(f"store {self.display_url}: {exc}") from exc

    def schema_revision(self) -> str | None:
        """The migration revision the database is at; None before the first migrate()."""
        with self._guard(), self._read() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    # -- offers ------------------------------------------------------------------------------

    def save_offer(
        self,
        remediation: str,
        target: str,
        params: Mapping[str, Any],
        check: str,
        risk: str,
        diagnosed: Mapping[str, str] | None = None,
    ) -> str:
        offer_id = _new_id()
        row = {
            "id": offer_id,
            "remediation": remediation,
            "target": target,
            "params": dict(params),
            "check_id": check,
            "risk": risk,
            "created_at": _now(),
            "diagnosed": None if diagnosed is None else dict(diagnosed),
        }
        with self._guard(), self._write() as conn:
            conn.execute(insert(offers).values(row))
        return offer_id

    def get_offer(self, offer_id: str) -> Offer | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(select(offers).where(offers.c.id == offer_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Offer(
            id=m["id"],
            remediation=m["remediation"],
            target=m["target"],
            params=m["params"],
            check=m["check_id"],
            risk=m["risk"],
            created_at=m["created_at"],
            diagnosed=m["diagnosed"],
        )

    # -- pending actions ---------------------------------------------------------------------

    def create_action(
        self,
        remediation: str,
        target: str,
        params: Mapping[str, Any],
        risk: str,
        requester: str,
        *,
        expires_at: datetime,
        channel: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
        target_kind: str = "node",
        plan: Mapping[str, Any] | None = None,
        offer_id: str | None = None,
        check_id: str | None = None,
        diagnosed: Mapping[str, str] | None = None,
    ) -> PendingAction:
        """Open a pending action; raises OpenActionExists when one is open for the same
        remediation and target (also when two replicas race), so call expire_due() first."""
        now = _now()
        action = PendingAction(
            id=_new_id(),
            remediation=remediation,
            target=target,
            params=dict(params),
            risk=risk,
            requester=requester,
            channel=channel,
            message_ts=message_ts,
            thread_ts=thread_ts,
            status="pending",
            approvals=(),
            rejected_by=None,
            created_at=now,
            updated_at=now,
            expires_at=_utc(expires_at),
            result=None,
            target_kind=target_kind,
            plan=None if plan is None else dict(plan),
            offer_id=offer_id,
            check_id=check_id,
            diagnosed=None if diagnosed is None else dict(diagnosed),
        )
        row = {**asdict(action), "approvals": [], "version": 0}
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                # No conflict target: the only unique key that can clash is the partial index
                # on open (remediation, target); random ids do not collide.
                if self._insert_if_absent(conn, actions, row):
                    return action
                existing = self._open_action(conn, remediation, target)
            if existing is not None:
                raise OpenActionExists(existing)
            # The open action finished between our insert and our read: try again.
        raise StoreError(f"store {self.display_url}: could not create action for {target}")

    def get_action(self, action_id: str) -> PendingAction | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(select(actions).where(actions.c.id == action_id)).first()
        return None if row is None else _action(row)

    def find_open_action(self, remediation: str, target: str) -> PendingAction | None:
        """The pending, approved or running action for this remediation and target, if any."""
        with self._guard(), self._read() as conn:
            return self._open_action(conn, remediation, target)

    def set_message(self, action_id: str, channel: str, ts: str) -> None:
        """Remember the Slack message that shows this action, to edit it on each change."""
        with self._guard(), self._write() as conn:
            conn.execute(
                update(actions)
                .where(actions.c.id == action_id)
                .values(channel=channel, message_ts=ts, updated_at=_now())
            )

    def add_approval(self, action_id: str, user: str) -> PendingAction:
        """Record `user`'s approval once, even when approvals arrive at the same moment on
        several replicas; raises KeyError for an unknown action. The caller applies the policy
        (who may approve, and in which status)."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                row = conn.execute(select(actions).where(actions.c.id == action_id)).first()
                if row is None:
                    raise KeyError(action_id)
                current = _action(row)
                if user in current.approvals:
                    return current
                approvals = (*current.approvals, user)
                now = _now()
                # Compare-and-swap on the version: a concurrent change makes this hit no row.
                swapped = conn.execute(
                    update(actions)
                    .where(actions.c.id == action_id, actions.c.version == row.version)
                    .values(approvals=list(approvals), version=row.version + 1, updated_at=now)
                )
                if swapped.rowcount == 1:
                    return replace(current, approvals=approvals, updated_at=now)
        raise StoreError(f"store {self.display_url}: could not record approval on {action_id}")

    def transition(
        self,
        action_id: str,
        from_status: ActionStatus | tuple[ActionStatus, ...],
        to_status: ActionStatus,
        result: Mapping[str, Any] | None = None,
        *,
        rejected_by: str | None = None,
    ) -> bool:
        """Move the action to `to_status` if it is in `from_status`; True only for the one
        caller whose update changed the row, which is how an action runs exactly once."""
        allowed = _statuses(from_status)
        _statuses(to_status)
        values: dict[str, Any] = {
            "status": to_status,
            "updated_at": _now(),
            "version": actions.c.version + 1,
        }
        if result is not None:
            values["result"] = dict(result)
        if rejected_by is not None:
            values["rejected_by"] = rejected_by
        with self._guard(), self._write() as conn:
            changed = conn.execute(
                update(actions)
                .where(actions.c.id == action_id, actions.c.status.in_(allowed))
                .values(values)
            )
        return changed.rowcount == 1

    def expire_due(self, now: datetime) -> list[PendingAction]:
        """Expire pending and approved actions whose time has come; returns those it expired."""
        now = _utc(now)
        with self._guard(), self._write() as conn:
            rows = conn.execute(
                update(actions)
                .where(
                    actions.c.status.in_(EXPIRABLE_STATUSES),
                    actions.c.expires_at <= now,
                )
                .values(status="expired", updated_at=now, version=actions.c.version + 1)
                .returning(*actions.c)
            ).all()
        return sorted((_action(row) for row in rows), key=lambda action: action.created_at)

    def list_actions(
        self,
        status: ActionStatus | None = None,
        limit: int = 50,
        *,
        remediation: str | None = None,
        target: str | None = None,
    ) -> list[PendingAction]:
        """Newest first; only those of `remediation` and on `target` when given."""
        query = select(actions).order_by(actions.c.created_at.desc(), actions.c.id).limit(limit)
        if status is not None:
            query = query.where(actions.c.status == _statuses(status)[0])
        if remediation is not None:
            query = query.where(actions.c.remediation == remediation)
        if target is not None:
            query = query.where(actions.c.target == target)
        with self._guard(), self._read() as conn:
            return [_action(row) for row in conn.execute(query)]

    # -- locks -------------------------------------------------------------------------------

    def acquire_lock(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take the lock if it is free or expired (or renew it if `holder` has it already)."""
        if ttl <= timedelta(0):
            raise ValueError(f"lock ttl must be positive, not {ttl}")
        now = _now()
        with self._guard(), self._write() as conn:
            taken = conn.execute(
                update(locks)
                .where(
                    locks.c.name == name,
                    or_(locks.c.expires_at <= now, locks.c.holder == holder),
                )
                .values(
                    holder=holder,
                    acquired_at=case((locks.c.holder == holder, locks.c.acquired_at), else_=now),
                    expires_at=now + ttl,
                )
            )
            if taken.rowcount == 1:
                return True
            row = {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
            return self._insert_if_absent(conn, locks, row)

    def release_lock(self, name: str, holder: str) -> bool:
        """Release the lock; False when `holder` does not hold it (any more)."""
        with self._guard(), self._write() as conn:
            deleted = conn.execute(
                delete(locks).where(locks.c.name == name, locks.c.holder == holder)
            )
        return deleted.rowcount == 1

    def lock_holder(self, name: str) -> str | None:
        with self._guard(), self._read() as conn:
            holder: str | None = conn.execute(
                select(locks.c.holder).where(locks.c.name == name, locks.c.expires_at > _now())
            ).scalar()
        return holder

    # -- audit -------------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        kind: str,
        detail: Mapping[str, Any],
        action_id: str | None = None,
        target: str | None = None,
    ) -> None:
        """Append to the audit log; there is deliberately no way to change or remove an entry."""
        row = {
            "at": _now(),
            "actor": actor,
            "kind": kind,
            "action_id": action_id,
            "target": target,
            "detail": dict(detail),
        }
        with self._guard(), self._write() as conn:
            conn.execute(insert(audit_log).values(row))

    def audit_log(self, last: int = 20) -> list[AuditEntry]:
        """The `last` newest entries, oldest first."""
        if last < 0:
            raise ValueError(f"last must not be negative, not {last}")
        with self._guard(), self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(last)).all()
        return [
            AuditEntry(
                at=row.at,
                actor=row.actor,
                kind=row.kind,
                action_id=row.action_id,
                target=row.target,
                detail=row.detail,
            )
            for row in reversed(rows)
        ]

    # -- node boots and alerts ---------------------------------------------------------------

    def record_boot(self, node: str, boot_id: str, seen_at: datetime) -> str | None:
        """Store the node's boot id; returns the one stored before (None when first seen)."""
        seen_at = _utc(seen_at)
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                previous: str | None = conn.execute(
                    select(node_boots.c.boot_id).where(node_boots.c.node == node)
                ).scalar()
                if previous is None:
                    row = {"node": node, "boot_id": boot_id, "seen_at": seen_at}
                    if self._insert_if_absent(conn, node_boots, row):
                        return None
                    continue
                # Swap only what we read, so two sweeps racing cannot both report the reboot.
                swapped = conn.execute(
                    update(node_boots)
                    .where(node_boots.c.node == node, node_boots.c.boot_id == previous)
                    .values(boot_id=boot_id, seen_at=seen_at)
                )
                if swapped.rowcount == 1:
                    return previous
        raise StoreError(f"store {self.display_url}: could not record the boot of {node}")

    def known_boots(self) -> dict[str, str]:
        """Every node's last recorded boot id (what the next sweep compares against)."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(select(node_boots.c.node, node_boots.c.boot_id)).all()
        return {str(node): str(boot) for node, boot in rows}

    def record_boots(self, boots: dict[str, str], seen_at: datetime) -> None:
        """Record many nodes' boot ids after a sweep (one transaction per changed node)."""
        known = self.known_boots()
        for node, boot in boots.items():
            if known.get(node) != boot:
                self.record_boot(node, boot, seen_at)

    def claim_alert(self, node: str, boot_id: str) -> bool:
        """True for the first caller only: that caller posts the alert for this boot."""
        row = {"node": node, "boot_id": boot_id, "created_at": _now()}
        with self._guard(), self._write() as conn:
            return self._insert_if_absent(conn, alerts, row)

    def release_alert(self, node: str, boot_id: str) -> None:
        """Give back a claim whose alert never reached Slack, so a later sweep can post it."""
        with self._guard(), self._write() as conn:
            conn.execute(
                delete(alerts).where(
                    alerts.c.node == node,
                    alerts.c.boot_id == boot_id,
                    alerts.c.message_ts.is_(None),
                )
            )

    def set_alert_message(self, node: str, boot_id: str, channel: str, ts: str) -> None:
        with self._guard(), self._write() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.node == node, alerts.c.boot_id == boot_id)
                .values(channel=channel, message_ts=ts)
            )

    def get_alert(self, node: str, boot_id: str) -> Alert | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(
                select(alerts).where(alerts.c.node == node, alerts.c.boot_id == boot_id)
            ).first()
        return None if row is None else _alert(row)

    def resolve_alert(self, node: str, boot_id: str) -> bool:
        """Mark the alert resolved; True once, for the caller that posts the follow-up."""
        with self._guard(), self._write() as conn:
            changed = conn.execute(
                update(alerts)
                .where(
                    alerts.c.node == node,
                    alerts.c.boot_id == boot_id,
                    alerts.c.resolved_at.is_(None),
                )
                .values(resolved_at=_now())
            )
        return changed.rowcount == 1

    def open_alerts(self) -> list[Alert]:
        """Unresolved alerts, oldest first."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(
                select(alerts).where(alerts.c.resolved_at.is_(None)).order_by(alerts.c.created_at)
            )
            return [_alert(row) for row in rows]

    # -- RDP sessions ------------------------------------------------------------------------

    def upsert_rdp(
        self,
        node: str,
        requester: str,
        expires_at: datetime,
        source_ranges: Sequence[str],
        *,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> RdpSession:
        """Record an open RDP session, or extend the node's existing one."""
        now = _now()
        row = {
            "node": node,
            "requester": requester,
            "expires_at": _utc(expires_at),
            "source_ranges": list(source_ranges),
            "channel": channel,
            "thread_ts": thread_ts,
            "created_at": now,
            "updated_at": now,
        }
        stmt = self._insert(rdp_sessions).values(row)
        kept = ("node", "created_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=[rdp_sessions.c.node],
            set_={name: stmt.excluded[name] for name in row if name not in kept},
        )
        with self._guard(), self._write() as conn:
            conn.execute(stmt)
            stored = conn.execute(select(rdp_sessions).where(rdp_sessions.c.node == node)).one()
        return _rdp(stored)

    def get_rdp(self, node: str) -> RdpSession | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(select(rdp_sessions).where(rdp_sessions.c.node == node)).first()
        return None if row is None else _rdp(row)

    def delete_rdp(self, node: str) -> bool:
        with self._guard(), self._write() as conn:
            deleted = conn.execute(delete(rdp_sessions).where(rdp_sessions.c.node == node))
        return deleted.rowcount == 1

    def list_rdp(self) -> list[RdpSession]:
        """Soonest expiry first."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(select(rdp_sessions).order_by(rdp_sessions.c.expires_at))
            return [_rdp(row) for row in rows]

    # -- plumbing ----------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[Connection]:
        return self._engine.begin()

    def _read(self) -> AbstractContextManager[Connection]:
        return self._reader.begin()

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_if_absent(self, conn: Connection, table: Table, row: Mapping[str, Any]) -> bool:
        """Insert unless a unique key clashes (ON CONFLICT DO NOTHING); True when inserted."""
        stmt = self._insert(table).values(row).on_conflict_do_nothing()
        # SQLAlchemy keeps rowcount after the cursor closes only for UPDATE and DELETE unless
        # asked to (psycopg reports -1 on a closed cursor).
        return conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount == 1

    def _open_action(self, conn: Connection, remediation: str, target: str) -> PendingAction | None:
        row = conn.execute(
            select(actions)
            .where(
                actions.c.remediation == remediation,
                actions.c.target == target,
                actions.c.status.in_(OPEN_STATUSES),
            )
            .order_by(actions.c.created_at.desc())
        ).first()
        return None if row is None else _action(row)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn database errors into StoreError naming the database, never its password."""
        try:
            yield
        except SQLAlchemyError as exc:
            reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
            reason = (reason.strip().splitlines() or [type(exc).__name__])[0]
            if self._url.password:
                reason = reason.replace(str(self._url.password), "***")
            retryable = isinstance(exc, OperationalError | PoolTimeoutError)
            raise StoreError(f"store {self.display_url}: {reason}", retryable=retryable) from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin) instead of the driver's own
    # legacy transaction handling, which skips BEGIN before reads and DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """WAL lets readers go on while one writer commits. Replicas opening a new database together
    race to switch it, and SQLite answers the losers "database is locked" at once, without
    waiting out busy_timeout (their read lock cannot be upgraded while another writer waits:
    that could deadlock), so try again until busy_timeout has passed."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_SQLITE_RETRY_S)


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so a read-then-write transaction waits for its
    # turn (busy_timeout) rather than failing when another writer committed in between.
    if conn.get_execution_options().get("winpod_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _from_row(cls: type[_Record], row: Row[Any]) -> _Record:
    """The record `cls` from a row whose columns carry its field names; JSON lists become
    the tuples the frozen records hold (approvals, source ranges)."""
    values: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        value = row._mapping[field.name]
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _action(row: Row[Any]) -> PendingAction:
    return _from_row(PendingAction, row)


def _alert(row: Row[Any]) -> Alert:
    return _from_row(Alert, row)


def _rdp(row: Row[Any]) -> RdpSession:
    return _from_row(RdpSession, row)
