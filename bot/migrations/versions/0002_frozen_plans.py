"""Actions keep the plan their approvers saw and where they came from, in columns of their own
(before, bookkeeping shared `params` with the remediation's inputs); offers name what was
diagnosed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        # Every action before this revision acted on a node, a pod or the cluster; `node` is
        # right for all but a few, and an open one of those is refused (it has no frozen plan).
        batch.add_column(
            sa.Column("target_kind", sa.String(16), nullable=False, server_default="node")
        )
        batch.add_column(sa.Column("plan", sa.JSON(none_as_null=True)))
        batch.add_column(sa.Column("offer_id", sa.String(16)))
        batch.add_column(sa.Column("check_id", sa.String(64)))
        batch.add_column(sa.Column("diagnosed", sa.JSON(none_as_null=True)))
    with op.batch_alter_table("offers") as batch:
        batch.add_column(sa.Column("diagnosed", sa.JSON(none_as_null=True)))


def downgrade() -> None:
    with op.batch_alter_table("offers") as batch:
        batch.drop_column("diagnosed")
    with op.batch_alter_table("actions") as batch:
        for name in ("diagnosed", "check_id", "offer_id", "plan", "target_kind"):
            batch.drop_column(name)
