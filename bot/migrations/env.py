"""Alembic environment: runs winpod's migrations on the connection that Store.migrate hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    # There is no alembic.ini and no URL here on purpose: the store owns the connection, its
    # migration lock and the secrets in its URL.
    raise RuntimeError("winpod's migrations run through bot.store.Store.migrate()")

context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
