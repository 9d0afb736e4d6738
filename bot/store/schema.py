"""The tables as the store queries them, on aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    text,
)

from bot.store.base import _utc
from bot.store.records import DEFAULT_CLUSTER, OPEN_STATUSES


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
_CLUSTER = 64


def _cluster(primary_key: bool = False) -> Column[str]:
    """Which cluster a row belongs to (migration 0003 gave existing rows the default one)."""
    return Column(
        "cluster",
        String(_CLUSTER),
        nullable=False,
        server_default=DEFAULT_CLUSTER,
        primary_key=primary_key,
    )


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
    _cluster(),
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
    _cluster(),
    Index(
        "ux_actions_open",
        "cluster",
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
    _cluster(primary_key=True),
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
    _cluster(),
)

node_boots = Table(
    "node_boots",
    METADATA,
    _cluster(primary_key=True),
    Column("node", String(_NAME), primary_key=True),
    Column("boot_id", String(64), nullable=False),
    Column("seen_at", _UTCDateTime, nullable=False),
)

alerts = Table(
    "alerts",
    METADATA,
    _cluster(primary_key=True),
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
    _cluster(primary_key=True),
    Column("node", String(_NAME), primary_key=True),
    Column("requester", String(_NAME), nullable=False),
    Column("expires_at", _UTCDateTime, nullable=False),
    Column("source_ranges", JSON, nullable=False),
    Column("channel", String(64)),
    Column("thread_ts", String(64)),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("updated_at", _UTCDateTime, nullable=False),
)
