"""Initial schema: offers, pending actions, locks, audit log, node boots, alerts, RDP sessions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPEN_STATUSES = "status IN ('pending', 'approved', 'running')"
STATUSES = (
    "status IN ('pending', 'approved', 'running', 'succeeded', 'failed', 'rejected', 'expired')"
)


def _time(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("remediation", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        _time("created_at"),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("remediation", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("message_ts", sa.String(64), nullable=True),
        sa.Column("thread_ts", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("rejected_by", sa.String(255), nullable=True),
        # Bumped by every change, for the compare-and-swap that appends approvals.
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("expires_at"),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.CheckConstraint(STATUSES, name="ck_actions_status"),
    )
    # At most one open action per remediation and target, even when replicas race to open one.
    op.create_index(
        "ux_actions_open",
        "actions",
        ["remediation", "target"],
        unique=True,
        postgresql_where=sa.text(OPEN_STATUSES),
        sqlite_where=sa.text(OPEN_STATUSES),
    )
    op.create_index("ix_actions_status_expires_at", "actions", ["status", "expires_at"])
    op.create_index("ix_actions_created_at", "actions", ["created_at"])
    op.create_table(
        "locks",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        _time("acquired_at"),
        _time("expires_at"),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _time("at"),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(16), nullable=True),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_table(
        "node_boots",
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("boot_id", sa.String(64), nullable=False),
        _time("seen_at"),
    )
    op.create_table(
        "alerts",
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("boot_id", sa.String(64), primary_key=True),
        _time("created_at"),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("message_ts", sa.String(64), nullable=True),
        _time("resolved_at", nullable=True),
    )
    op.create_table(
        "rdp_sessions",
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("requester", sa.String(255), nullable=False),
        _time("expires_at"),
        sa.Column("source_ranges", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("thread_ts", sa.String(64), nullable=True),
        _time("created_at"),
        _time("updated_at"),
    )


def downgrade() -> None:
    tables = ("rdp_sessions", "alerts", "node_boots", "audit_log", "locks", "actions", "offers")
    for table in tables:
        op.drop_table(table)
