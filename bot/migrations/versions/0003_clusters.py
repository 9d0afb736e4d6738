"""Every row names its cluster (SPEC §12): boots, alerts, locks and RDP sessions are keyed by
cluster and node, so two clusters with a node of the same name never share state. Rows written
before this revision belong to the default cluster (`Store.migrate` passes its name)."""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DEFAULT = "default"  # bot.store.records.DEFAULT_CLUSTER, frozen here as migrations are
OPEN_STATUSES = "status IN ('pending', 'approved', 'running')"
# table -> its primary key after this revision (None: the key stays the row id)
TABLES: dict[str, list[str] | None] = {
    "offers": None,
    "actions": None,
    "audit_log": None,
    "locks": ["cluster", "name"],
    "node_boots": ["cluster", "node"],
    "alerts": ["cluster", "node", "boot_id"],
    "rdp_sessions": ["cluster", "node"],
}


def _cluster_column() -> sa.Column[str]:
    return sa.Column("cluster", sa.String(64), nullable=False, server_default=DEFAULT)


def upgrade() -> None:
    config = op.get_context().config
    existing = (config.attributes.get("default_cluster") if config else None) or DEFAULT
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, key in TABLES.items():
        if key is None or not sqlite:
            op.add_column(table, _cluster_column())
        if key is not None and sqlite:
            _copy_with_key(table, key, _cluster_column())
        elif key is not None:
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.create_primary_key(f"{table}_pkey", table, key)
        if existing != DEFAULT:
            op.execute(sa.table(table, sa.column("cluster")).update().values(cluster=existing))
    _open_actions_unique_on(["cluster", "remediation", "target"])


def downgrade() -> None:
    _open_actions_unique_on(["remediation", "target"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, key in TABLES.items():
        if key is None:
            with op.batch_alter_table(table) as batch:
                batch.drop_column("cluster")
            continue
        rest = [column for column in key if column != "cluster"]
        if sqlite:
            _copy_with_key(table, rest, None)
        else:
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.drop_column(table, "cluster")
            op.create_primary_key(f"{table}_pkey", table, rest)


def _copy_with_key(table: str, key: list[str], added: sa.Column[str] | None) -> None:
    """SQLite cannot change a primary key in place: Alembic copies the table. It warns that the
    reflected key differs from the new one, which is the point of the copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*specifies columns .* as primary_key=True")
        with op.batch_alter_table(table, recreate="always") as batch:
            if added is not None:
                batch.add_column(added)
            else:
                batch.drop_column("cluster")
            batch.create_primary_key(f"pk_{table}", key)


def _open_actions_unique_on(columns: list[str]) -> None:
    """At most one open action per these columns (per cluster from this revision on)."""
    op.drop_index("ux_actions_open", table_name="actions")
    op.create_index(
        "ux_actions_open",
        "actions",
        columns,
        unique=True,
        postgresql_where=sa.text(OPEN_STATUSES),
        sqlite_where=sa.text(OPEN_STATUSES),
    )
