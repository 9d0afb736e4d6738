"""The store's engine and plumbing: URL, SQLite hooks, migrations, transactions, row mapping."""

from __future__ import annotations

import copy
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, Row, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bot.store.records import DEFAULT_CLUSTER, StoreError
from handlers.i18n import _

# Named as before the split, so log lines still say "bot.store".
log = logging.getLogger(__package__)
_Record = TypeVar("_Record")

# bot/migrations, package data of bot, so an installed wheel carries its migrations.
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        when = value.isoformat()
        raise ValueError(f"naive datetime {when}: the store takes aware UTC times")  # i18n: bug
    return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def normalise_url(url: str) -> URL:
    """Parse a store URL; plain `postgresql://` (and `postgres://`) use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The parser's message may quote the URL, password included.
        raise StoreError(_("store.url is not a valid SQLAlchemy database URL")) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            _("store {url}: only SQLite and PostgreSQL are supported").format(
                url=parsed.render_as_string(hide_password=True)
            )
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # In-memory SQLite gives every pooled connection its own empty database.
        raise StoreError(_("store.url: SQLite needs a file (sqlite:///path/winpod.db), not memory"))
    return parsed


class StoreBase:
    """The engine and the transaction plumbing every part of the store builds on. A store
    reads and writes the rows of one cluster (`cluster`); `scoped` gives the same database as
    another cluster sees it. Ids (offers, actions) are unique across clusters."""

    def __init__(self, url: str, cluster: str = DEFAULT_CLUSTER) -> None:
        self.cluster = cluster
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

    def scoped(self, cluster: str) -> Self:
        """This store (same engine and connections) for the rows of `cluster`."""
        view = copy.copy(self)
        view.cluster = cluster
        return view

    def migrate(self, default_cluster: str | None = None) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already. Rows
        written before the store knew clusters become `default_cluster`'s (else this
        store's cluster's)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["version_table"] = VERSION_TABLE
        # rows written before the store knew clusters belong to this store's (migration 0003)
        config.attributes["default_cluster"] = default_cluster or self.cluster
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
