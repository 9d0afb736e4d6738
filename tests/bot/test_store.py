"""The store on SQLite and PostgreSQL: migrations, approvals, exactly-once transitions, locks."""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from bot.store import (
    METADATA,
    VERSION_TABLE,
    OpenActionExists,
    PendingAction,
    Store,
    StoreError,
    normalise_url,
)

T = TypeVar("T")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{10,12}")
SOON = timedelta(minutes=15)


def at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(0)`…`call(count - 1)` on `count` threads released together by a barrier."""
    barrier = threading.Barrier(count, timeout=10)

    def run(index: int) -> T:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def new_action(
    store: Store, target: str = "node/akswin000001", thread_ts: str | None = None
) -> PendingAction:
    return store.create_action(
        "hns-reset",
        target,
        {"node": target.rsplit("/", maxsplit=1)[-1]},
        "high",
        "U_REQUESTER",
        expires_at=datetime.now(UTC) + SOON,
        thread_ts=thread_ts,
    )


def test_migrating_again_changes_nothing(store: Store) -> None:
    offer_id = store.save_offer("hns-reset", "node/a", {}, "dns-after-reboot", "high")
    revision = store.schema_revision()

    store.migrate()

    assert revision is not None
    assert store.schema_revision() == revision
    assert store.get_offer(offer_id) is not None


def test_migrations_create_exactly_the_tables_the_store_queries(
    store: Store, store_url: str
) -> None:
    engine = create_engine(normalise_url(store_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, METADATA) == []
    finally:
        engine.dispose()


def test_replicas_starting_together_both_migrate(open_store: Callable[[], Store]) -> None:
    replicas = [open_store() for _ in range(4)]

    at_once(len(replicas), lambda index: replicas[index].migrate())

    assert len({replica.schema_revision() for replica in replicas}) == 1
    assert replicas[0].schema_revision() is not None


def test_offer_round_trips_under_a_short_id(store: Store) -> None:
    params = {"node": "akswin000001", "pods": ["web-1", "web-2"]}

    offer_id = store.save_offer("hns-reset", "node/akswin1", params, "dns-after-reboot", "high")

    assert ID_PATTERN.fullmatch(offer_id)
    offer = store.get_offer(offer_id)
    assert offer is not None
    assert (offer.remediation, offer.target, offer.params) == ("hns-reset", "node/akswin1", params)
    assert (offer.check, offer.risk) == ("dns-after-reboot", "high")
    assert store.get_offer("no-such-offer") is None


def test_action_goes_from_pending_through_approval_to_its_result(store: Store) -> None:
    action = new_action(store, thread_ts="1700000000.000100")
    assert ID_PATTERN.fullmatch(action.id)
    assert (action.status, action.approvals, action.result) == ("pending", (), None)
    assert action.expires_at.tzinfo is UTC
    assert store.find_open_action("hns-reset", "node/akswin000001") == action

    store.set_message(action.id, "C_ALERTS", "1700000000.000200")
    assert store.add_approval(action.id, "U_A").approvals == ("U_A",)
    assert store.add_approval(action.id, "U_A").approvals == ("U_A",)
    assert store.add_approval(action.id, "U_B").approvals == ("U_A", "U_B")

    assert store.transition(action.id, "pending", "approved")
    assert not store.transition(action.id, "pending", "approved")
    assert store.transition(action.id, ("pending", "approved"), "running")
    assert store.find_open_action("hns-reset", "node/akswin000001") is not None
    assert store.transition(action.id, "running", "succeeded", {"verified": True, "steps": 4})
    assert not store.transition(action.id, ("pending", "approved"), "running")

    done = store.get_action(action.id)
    assert done is not None
    assert (done.status, done.result, done.approvals) == (
        "succeeded",
        {"verified": True, "steps": 4},
        ("U_A", "U_B"),
    )
    assert (done.channel, done.message_ts, done.thread_ts) == (
        "C_ALERTS",
        "1700000000.000200",
        "1700000000.000100",
    )
    assert done.updated_at >= done.created_at
    assert store.find_open_action("hns-reset", "node/akswin000001") is None
    assert store.get_action("no-such-action") is None
    with pytest.raises(KeyError):
        store.add_approval("no-such-action", "U_A")


def test_rejection_records_who_rejected(store: Store) -> None:
    action = new_action(store)

    assert store.transition(action.id, "pending", "rejected", rejected_by="U_APPROVER")

    rejected = store.get_action(action.id)
    assert rejected is not None
    assert (rejected.status, rejected.rejected_by) == ("rejected", "U_APPROVER")
    assert not store.transition(action.id, ("pending", "approved"), "running")


def test_unknown_status_is_refused(store: Store) -> None:
    action = new_action(store)
    with pytest.raises(ValueError, match="unknown action status"):
        store.transition(action.id, "pending", "done")  # type: ignore[arg-type]


def test_only_one_open_action_per_remediation_and_target(store: Store) -> None:
    first = new_action(store)

    with pytest.raises(OpenActionExists) as refused:
        new_action(store)

    assert refused.value.action.id == first.id
    assert first.id in str(refused.value)
    assert new_action(store, target="node/akswin000002").id != first.id
    store.transition(first.id, "pending", "failed")
    assert new_action(store).id != first.id


def test_two_replicas_opening_the_same_action_at_once_open_one(
    open_store: Callable[[], Store], store: Store
) -> None:
    replicas = [store, open_store()]

    def open_action(index: int) -> str:
        try:
            return new_action(replicas[index % 2]).id
        except OpenActionExists as exc:
            return exc.action.id

    assert len(set(at_once(10, open_action))) == 1


def test_twenty_simultaneous_clicks_start_the_action_once(
    open_store: Callable[[], Store], store: Store
) -> None:
    replicas = [store, open_store()]
    action = new_action(store)
    assert store.transition(action.id, "pending", "approved")

    def click(index: int) -> bool:
        return replicas[index % 2].transition(action.id, "approved", "running")

    won = at_once(20, click)

    assert won.count(True) == 1
    started = store.get_action(action.id)
    assert started is not None
    assert started.status == "running"


def test_twenty_simultaneous_approvals_are_all_kept(
    open_store: Callable[[], Store], store: Store
) -> None:
    replicas = [store, open_store()]
    action = new_action(store)
    users = [f"U_{index:02d}" for index in range(20)]

    at_once(20, lambda index: replicas[index % 2].add_approval(action.id, users[index]))
    # The same users clicking again add nothing.
    at_once(20, lambda index: replicas[index % 2].add_approval(action.id, users[index]))

    approved = store.get_action(action.id)
    assert approved is not None
    assert sorted(approved.approvals) == users


def test_expire_due_expires_only_requests_still_awaiting_approval(store: Store) -> None:
    """A fully approved action waits for its target and runs; only approval can time out."""
    waiting = new_action(store, target="node/a")
    approved = new_action(store, target="node/b")
    running = new_action(store, target="node/c")
    store.transition(approved.id, "pending", "approved")
    store.transition(running.id, "pending", "approved")
    store.transition(running.id, "approved", "running")

    assert store.expire_due(datetime.now(UTC)) == []
    expired = store.expire_due(datetime.now(UTC) + SOON + timedelta(seconds=1))

    assert [action.id for action in expired] == [waiting.id]
    assert {action.status for action in expired} == {"expired"}
    assert store.expire_due(datetime.now(UTC) + SOON + timedelta(seconds=1)) == []
    assert store.transition(approved.id, "approved", "running")
    still_running = store.get_action(running.id)
    assert still_running is not None
    assert still_running.status == "running"
    assert {action.id for action in store.list_actions(status="expired")} == {waiting.id}
    assert {action.id for action in store.list_actions()} == {
        waiting.id,
        approved.id,
        running.id,
    }


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.expire_due(datetime(2030, 1, 1))


def test_only_one_of_two_replicas_gets_a_free_lock(
    open_store: Callable[[], Store], store: Store
) -> None:
    replicas = [store, open_store()]

    won = at_once(
        10,
        lambda index: replicas[index % 2].acquire_lock(
            "node/akswin000001", f"action-{index}", timedelta(minutes=5)
        ),
    )

    assert won.count(True) == 1
    assert store.lock_holder("node/akswin000001") == f"action-{won.index(True)}"


def test_an_expired_lock_can_be_taken_over(store: Store) -> None:
    assert store.acquire_lock("node/a", "dead-replica", timedelta(milliseconds=50))
    assert not store.acquire_lock("node/a", "live-replica", timedelta(minutes=5))

    time.sleep(0.1)

    assert store.lock_holder("node/a") is None
    assert store.acquire_lock("node/a", "live-replica", timedelta(minutes=5))
    assert store.lock_holder("node/a") == "live-replica"
    assert not store.release_lock("node/a", "dead-replica")
    assert store.lock_holder("node/a") == "live-replica"


def test_only_the_holder_releases_a_lock(store: Store) -> None:
    assert store.acquire_lock("node/a", "holder", timedelta(minutes=5))
    assert store.acquire_lock("node/a", "holder", timedelta(minutes=5)), "renewal by its holder"

    assert not store.release_lock("node/a", "someone-else")
    assert store.lock_holder("node/a") == "holder"
    assert store.release_lock("node/a", "holder")
    assert store.lock_holder("node/a") is None
    assert not store.release_lock("node/a", "holder")
    assert store.acquire_lock("node/a", "someone-else", timedelta(minutes=5))


def test_audit_log_reads_back_the_newest_entries_in_order(store: Store) -> None:
    before = datetime.now(UTC)
    for index in range(25):
        store.audit(
            f"U_{index}",
            "click",
            {"button": "hns-reset", "n": index},
            action_id="act0000000x",
            target="node/a",
        )
    store.audit("winpod", "sweep", {"nodes": 3})

    entries = store.audit_log(last=20)

    assert [entry.kind for entry in entries][-1] == "sweep"
    assert [entry.detail.get("n") for entry in entries[:-1]] == list(range(6, 25))
    assert (entries[0].actor, entries[0].action_id, entries[0].target) == (
        "U_6",
        "act0000000x",
        "node/a",
    )
    assert (entries[-1].action_id, entries[-1].target) == (None, None)
    assert all(entry.at.tzinfo is UTC and entry.at >= before for entry in entries)
    assert [entry.kind for entry in store.audit_log(last=1)] == ["sweep"]
    assert len(store.audit_log(last=100)) == 26


def test_a_node_boot_is_claimed_for_alerting_exactly_once(
    open_store: Callable[[], Store], store: Store
) -> None:
    replicas = [store, open_store()]

    claimed = at_once(10, lambda index: replicas[index % 2].claim_alert("akswin000001", "boot-2"))

    assert claimed.count(True) == 1
    assert not store.claim_alert("akswin000001", "boot-2")
    assert store.claim_alert("akswin000001", "boot-3"), "a later boot alerts again"
    store.set_alert_message("akswin000001", "boot-2", "C_ALERTS", "1700000000.000300")
    alert = store.get_alert("akswin000001", "boot-2")
    assert alert is not None
    assert (alert.channel, alert.message_ts, alert.resolved_at) == (
        "C_ALERTS",
        "1700000000.000300",
        None,
    )
    assert [(a.node, a.boot_id) for a in store.open_alerts()] == [
        ("akswin000001", "boot-2"),
        ("akswin000001", "boot-3"),
    ]

    assert store.resolve_alert("akswin000001", "boot-2")
    assert not store.resolve_alert("akswin000001", "boot-2")

    resolved = store.get_alert("akswin000001", "boot-2")
    assert resolved is not None
    assert resolved.resolved_at is not None
    assert [a.boot_id for a in store.open_alerts()] == ["boot-3"]
    assert store.get_alert("akswin000001", "boot-9") is None


def test_record_boot_returns_the_boot_seen_before(store: Store) -> None:
    now = datetime.now(UTC)

    assert store.record_boot("akswin000001", "boot-1", now) is None
    assert store.record_boot("akswin000001", "boot-1", now) == "boot-1"
    assert store.record_boot("akswin000001", "boot-2", now) == "boot-1"
    assert store.record_boot("akswin000002", "boot-7", now) is None
    assert store.record_boot("akswin000001", "boot-2", now) == "boot-2"


def test_rdp_session_is_recorded_extended_and_removed(store: Store) -> None:
    first_expiry = datetime.now(UTC) + timedelta(minutes=30)
    opened = store.upsert_rdp(
        "akswin000001",
        "U_A",
        first_expiry,
        ["10.1.0.0/16"],
        channel="C_OPS",
        thread_ts="1700000000.000400",
    )
    store.upsert_rdp("akswin000002", "U_B", first_expiry + timedelta(hours=1), ["10.2.0.0/16"])

    extended = store.upsert_rdp(
        "akswin000001",
        "U_C",
        first_expiry + timedelta(minutes=30),
        ["10.1.0.0/16", "10.3.0.0/16"],
        channel="C_OPS",
        thread_ts="1700000000.000400",
    )

    assert opened.source_ranges == ("10.1.0.0/16",)
    assert (extended.requester, extended.source_ranges) == ("U_C", ("10.1.0.0/16", "10.3.0.0/16"))
    assert extended.expires_at == first_expiry + timedelta(minutes=30)
    assert extended.created_at == opened.created_at
    assert store.get_rdp("akswin000001") == extended
    assert [session.node for session in store.list_rdp()] == ["akswin000001", "akswin000002"]
    assert store.delete_rdp("akswin000001")
    assert not store.delete_rdp("akswin000001")
    assert store.get_rdp("akswin000001") is None
    assert [session.node for session in store.list_rdp()] == ["akswin000002"]


def test_a_password_in_the_url_never_reaches_the_error() -> None:
    store = Store("postgresql://winpod:s3cr3t@127.0.0.1:1/winpod")
    try:
        with pytest.raises(StoreError) as failed:
            store.migrate()
    finally:
        store.close()

    message = str(failed.value)
    assert "127.0.0.1:1/winpod" in message
    assert failed.value.retryable
    assert "s3cr3t" not in message
    assert "s3cr3t" not in "".join(traceback.format_exception(failed.value))
    assert "s3cr3t" not in store.display_url


def test_a_database_that_cannot_be_opened_is_named_in_the_error() -> None:
    store = Store("sqlite:////nonexistent-dir/winpod.db")
    try:
        with pytest.raises(StoreError, match=r"sqlite:////nonexistent-dir/winpod\.db"):
            store.migrate()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u:s3cr3t@127.0.0.1/winpod", "only SQLite and PostgreSQL"),
        ("sqlite://", "needs a file"),
        ("not a url s3cr3t", "not a valid"),
    ],
)
def test_unusable_urls_are_refused_without_their_password(url: str, reason: str) -> None:
    with pytest.raises(StoreError, match=reason) as refused:
        Store(url)
    assert "s3cr3t" not in str(refused.value)
