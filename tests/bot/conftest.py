"""Store fixtures: each test gets a fresh SQLite file and, if PostgreSQL answers, a fresh schema."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.store import Store

PG_HOST, PG_PORT, PG_DATABASE = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")


@pytest.fixture(scope="session")
def postgres_user() -> str:
    """The first user the local PostgreSQL lets in; skips every PostgreSQL test otherwise."""
    errors = []
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, connect_timeout=3
            ):
                return user
        except psycopg.Error as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            errors.append(f"{user}: {first_line}")
    pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {'; '.join(errors)}")


def _pg_admin(user: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, autocommit=True
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL schema of its own for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'winpod.db'}"
        return
    user = request.getfixturevalue("postgres_user")
    # Own schema per test, so parallel runs and other helpers' tests never see each other.
    schema = f"winpod_test_{secrets.token_hex(6)}"
    with _pg_admin(user) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        # Plain `postgresql://`, as a user would write it; the store picks psycopg itself.
        yield (
            f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with _pg_admin(user) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens more stores on the same database (other replicas); closes them all at the end."""
    opened: list[Store] = []

    def open_one() -> Store:
        store = Store(store_url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """A migrated store on a fresh database."""
    store = open_store()
    store.migrate()
    return store
