"""Two clusters in one store (SPEC §12): a node of the same name in each never shares a lock,
a boot record, an alert, an RDP session or an open action; and a first-wave database migrates
with its rows kept as the default cluster's. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Table, create_engine

from bot.store import (
    MIGRATIONS,
    VERSION_TABLE,
    Store,
    actions,
    alerts,
    audit_log,
    locks,
    node_boots,
    normalise_url,
    rdp_sessions,
)
from bot.store.records import OpenActionExists

NODE = "akswin000001"
LOCK = f"node:node:{NODE}"
LATER = datetime.now(UTC) + timedelta(minutes=15)


@pytest.fixture
def two(store: Store) -> tuple[Store, Store]:
    return store.scoped("prod-eu"), store.scoped("prod-us")


def test_the_same_lock_name_is_two_locks(two: tuple[Store, Store]) -> None:
    eu, us = two
    name = LOCK

    assert eu.acquire_lock(name, "action-eu", timedelta(minutes=5))
    assert us.acquire_lock(name, "action-us", timedelta(minutes=5))
    assert (eu.lock_holder(name), us.lock_holder(name)) == ("action-eu", "action-us")
    assert not eu.acquire_lock(name, "someone-else", timedelta(minutes=5))
    assert us.release_lock(name, "action-us")
    assert eu.lock_holder(name) == "action-eu"


def test_boot_records_and_alerts_are_per_cluster(two: tuple[Store, Store]) -> None:
    eu, us = two
    eu.record_boot(NODE, "boot-1", datetime.now(UTC))
    us.record_boot(NODE, "boot-7", datetime.now(UTC))

    assert eu.record_boot(NODE, "boot-2", datetime.now(UTC)) == "boot-1"
    assert (eu.known_boots(), us.known_boots()) == ({NODE: "boot-2"}, {NODE: "boot-7"})
    assert eu.claim_alert(NODE, "boot-2")
    assert us.claim_alert(NODE, "boot-2")  # the same boot id in the other cluster: its own
    assert not eu.claim_alert(NODE, "boot-2")
    assert eu.resolve_alert(NODE, "boot-2")
    assert [a.node for a in us.open_alerts()] == [NODE]
    assert eu.open_alerts() == []


def test_open_actions_and_rdp_sessions_are_per_cluster(two: tuple[Store, Store]) -> None:
    eu, us = two
    in_eu = eu.create_action("hns-reset", NODE, {}, "high", "U1", expires_at=LATER)
    in_us = us.create_action("hns-reset", NODE, {}, "high", "U1", expires_at=LATER)
    with pytest.raises(OpenActionExists):
        eu.create_action("hns-reset", NODE, {}, "high", "U1", expires_at=LATER)

    assert (in_eu.cluster, in_us.cluster) == ("prod-eu", "prod-us")
    found = us.get_action(in_eu.id)  # ids are unique: found anywhere, naming its cluster
    assert found is not None and found.cluster == "prod-eu"
    assert eu.find_open_action("hns-reset", NODE) == in_eu
    assert [a.id for a in us.list_actions()] == [in_us.id]

    eu.upsert_rdp(NODE, "U1", LATER, ["10.0.0.0/24"])
    assert us.get_rdp(NODE) is None
    us.upsert_rdp(NODE, "U2", LATER, ["10.1.0.0/24"])
    assert eu.delete_rdp(NODE)
    session = us.get_rdp(NODE)
    assert session is not None and (session.requester, session.cluster) == ("U2", "prod-us")


def test_offers_and_audit_rows_name_their_cluster(two: tuple[Store, Store]) -> None:
    eu, us = two
    offer = us.get_offer(eu.save_offer("hns-reset", NODE, {}, "dns-after-reboot", "high"))
    eu.audit("U1", "command", {"text": "/winpod node x"}, target=NODE)
    us.audit("U1", "command", {"text": "/winpod node x"}, target=NODE)

    assert offer is not None and offer.cluster == "prod-eu"
    assert [e.cluster for e in eu.audit_log(10)] == ["prod-eu", "prod-us"]


def _first_wave(url: str) -> None:
    """A database as the first wave left it: migrated to 0002, with a row in every table (the
    inserts name first-wave columns only: `cluster` did not exist yet)."""
    engine = create_engine(normalise_url(url))
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = VERSION_TABLE
    now = datetime.now(UTC)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        later = now + timedelta(hours=1)
        rows = {
            node_boots: {"node": NODE, "boot_id": "b1", "seen_at": now},
            alerts: {"node": NODE, "boot_id": "b1", "created_at": now},
            locks: {"name": LOCK, "holder": "a/1", "acquired_at": now, "expires_at": later},
            rdp_sessions: {
                "node": NODE,
                "requester": "U1",
                "expires_at": later,
                "source_ranges": ["10.0.0.0/24"],
                "created_at": now,
                "updated_at": now,
            },
            audit_log: {"at": now, "actor": "U1", "kind": "command", "detail": {}},
            actions: {
                "id": "old-action",
                "remediation": "hns-reset",
                "target": NODE,
                "params": {},
                "risk": "high",
                "requester": "U1",
                "status": "pending",
                "approvals": [],
                "version": 0,
                "created_at": now,
                "updated_at": now,
                "expires_at": later,
            },
        }
        for table, row in rows.items():
            _put(conn, table, row)
    engine.dispose()


def _put(conn: Connection, table: Table, row: dict[str, object]) -> None:
    """Insert naming only these columns (the current Table would ask for `cluster` back)."""
    old = sa.table(table.name, *(sa.column(name, table.c[name].type) for name in row))
    conn.execute(sa.insert(old).values(row))


def test_a_first_wave_database_migrates_into_the_default_cluster(store_url: str) -> None:
    _first_wave(store_url)
    store = Store(store_url, cluster="prod-eu")
    try:
        store.migrate("prod-eu")
        us = store.scoped("prod-us")

        assert store.schema_revision() == "0003"
        assert store.known_boots() == {NODE: "b1"}
        assert [a.node for a in store.open_alerts()] == [NODE]
        assert store.lock_holder(LOCK) == "a/1"
        assert store.get_rdp(NODE) is not None
        old = store.get_action("old-action")
        assert old is not None and old.cluster == "prod-eu"
        assert store.find_open_action("hns-reset", NODE) == old
        assert [e.cluster for e in store.audit_log(5)] == ["prod-eu"]
        # and the other cluster starts clean, with the same node name free to use
        assert us.known_boots() == {} and us.get_rdp(NODE) is None
        assert us.acquire_lock(LOCK, "b/1", timedelta(minutes=1))
        us.create_action("hns-reset", NODE, {}, "high", "U1", expires_at=LATER)
    finally:
        store.close()
