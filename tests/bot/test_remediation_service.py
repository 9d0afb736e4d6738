"""The remediation service's state machine under any interleaving (hypothesis): clicks by
approvers and others, rejections, expiries, a lock held elsewhere, a full pool, the target
changing, restarts. Whatever happens: at most one execution per action, only ever of the plan
that was approved, by enough distinct approvers, and every action ends in a final state.

A fake remediation on a fake cluster keeps this pure logic; the store is the real one (SQLite).
The same guards are tested over the wire in test_approvals_e2e.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import delete

from bot.remediation import Origin, RemediationService, RunReport
from bot.render_actions import finished_text, status_line
from bot.store import PendingAction, Store, actions, audit_log, locks, offers
from config.settings import Settings
from handlers.context import Context, Transports
from handlers.errors import OutcomeUnknown
from handlers.registry import Outcome, Plan, Registry, RemediationSpec, TargetKind

REMEDIATIONS = ("fix-a", "fix-b")  # both high risk, both on the one cluster target: one lock
APPROVERS = ("alice", "bob", "carol")
USERS = (*APPROVERS, "mallory")  # mallory is no approver
FINAL = {"succeeded", "failed", "rejected", "expired"}
EXTERNAL = "someone-else/1"


class World:
    """What the fake remediation plans from and what its runs did."""

    def __init__(self) -> None:
        self.version = 0  # bumping it changes what would be planned: "the target changed"
        # (action id, version of the plan run, version the target had then)
        self.executions: list[tuple[str, int, int]] = []
        self.running: dict[int, PendingAction] = {}  # thread → action being run


class ManualPool:
    """A pool whose jobs run when the test says, and which can be full."""

    def __init__(self) -> None:
        self.full = False
        self.jobs: list[Callable[[], None]] = []

    def submit(self, job: Callable[[], None]) -> Any:
        if self.full:
            return type("Refused", (), {"accepted": False})()
        self.jobs.append(job)
        return type("Accepted", (), {"accepted": True})()


class Recorder:
    """A notifier that remembers which action is being run on this thread."""

    def __init__(self, world: World) -> None:
        self.world = world

    def requested(self, action: PendingAction, plan: Plan, spec: RemediationSpec) -> None: ...
    def approved(self, action: PendingAction, by: str) -> None: ...
    def rejected(self, action: PendingAction, by: str) -> None: ...
    def queued(self, action: PendingAction, holder: str | None, busy: bool) -> None: ...
    def finished(self, report: RunReport) -> None: ...
    def changed(self, action: PendingAction, changes: list[str], fresh: str | None) -> None: ...

    def started(self, action: PendingAction) -> None:
        self.world.running[threading.get_ident()] = action


def fake_registry(world: World) -> Registry:
    registry = Registry()

    def run(context: Context, plan: Plan) -> Outcome:
        action = world.running[threading.get_ident()]
        world.executions.append((action.id, int(plan.data["version"]), world.version))
        return Outcome(True, "done")

    for remediation_id in REMEDIATIONS:

        def plan(
            context: Context, target: str, params: Mapping[str, str], rid: str = remediation_id
        ) -> Plan:
            return Plan(
                rid, target, "api", "change it", f"v{world.version}", {"version": world.version}
            )

        registry.remediation(
            remediation_id,
            target_kind=TargetKind.CLUSTER,
            risk="high",
            does=lambda t: "change it",
            impact=lambda t: "it changes",
            verified_by=(),
            run=run,
        )(plan)
    return registry


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("service") / "winpod.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    yield store
    store.close()


def test_any_interleaving_runs_each_action_at_most_once_as_approved(sqlite_store: Store) -> None:
    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            with sqlite_store._engine.begin() as conn:  # a clean database per example
                for table in (actions, locks, audit_log, offers):
                    conn.execute(delete(table))
            self.store = sqlite_store
            self.world = World()
            self.pool = ManualPool()
            self.service = self._service()
            self.offers: dict[str, str] = {}

        def _service(self) -> RemediationService:
            return RemediationService(
                self.store,
                Settings(),
                Transports(cluster=None, pod_exec=None, node_shell=None),  # type: ignore[arg-type]
                fake_registry(self.world),
                self.pool,  # type: ignore[arg-type]
                Recorder(self.world),
                lambda user: user in APPROVERS,
            )

        def _open(self, remediation: str) -> PendingAction | None:
            return self.store.find_open_action(remediation, "cluster")

        @rule(remediation=st.sampled_from(REMEDIATIONS), user=st.sampled_from(USERS))
        def click(self, remediation: str, user: str) -> None:
            """A remediation button: open the request if none is open, then approve."""
            offer = self.offers.setdefault(
                remediation, self.store.save_offer(remediation, "cluster", {}, "check", "high")
            )
            if self.service.spent_from(offer, remediation, "cluster") is not None:
                return
            action = self._open(remediation) or self.service.request(
                remediation, "cluster", {}, user, Origin(offer_id=offer)
            )
            self.service.approve(action.id, user)

        @rule(remediation=st.sampled_from(REMEDIATIONS))
        def two_approvers_click(self, remediation: str) -> None:
            self.click(remediation, "alice")
            self.click(remediation, "bob")

        @rule(remediation=st.sampled_from(REMEDIATIONS), user=st.sampled_from(USERS))
        def reject(self, remediation: str, user: str) -> None:
            action = self._open(remediation)
            if action is not None:
                self.service.reject(action.id, user)

        @rule()
        def time_passes(self) -> None:
            self.store.expire_due(datetime.now(UTC) + timedelta(hours=1))

        @rule()
        def lock_taken_elsewhere(self) -> None:
            self.store.acquire_lock("target:cluster:cluster", EXTERNAL, timedelta(minutes=5))

        @rule()
        def lock_freed_elsewhere(self) -> None:
            if self.store.release_lock("target:cluster:cluster", EXTERNAL):
                self.service.start_queued()

        @rule(full=st.booleans())
        def pool_fills(self, full: bool) -> None:
            self.pool.full = full

        @rule()
        def a_job_runs(self) -> None:
            if self.pool.jobs:
                self.pool.jobs.pop(0)()

        @rule()
        def the_target_changes(self) -> None:
            self.world.version += 1

        @rule()
        def housekeeping(self) -> None:
            self.service.fail_orphaned()
            self.service.start_queued()

        @rule()
        def restart(self) -> None:
            """The replica dies: queued jobs are lost; its locks expire later; a new one
            starts and cleans up."""
            self.pool.jobs.clear()
            with self.store._engine.begin() as conn:
                conn.execute(delete(locks).where(locks.c.holder != EXTERNAL))
            self.service = self._service()
            self.service.fail_orphaned()

        @invariant()
        def each_action_ran_at_most_once_and_only_as_approved(self) -> None:
            ran = [action_id for action_id, _, _ in self.world.executions]
            assert len(ran) == len(set(ran))
            for action_id, version, target_then in self.world.executions:
                action = self.store.get_action(action_id)
                assert action is not None
                assert action.plan is not None and action.plan["data"]["version"] == version
                assert version == target_then, "ran a plan the target no longer matched"
                assert len(set(action.approvals)) >= 2
                assert action.status in ("running", "succeeded")

        def teardown(self) -> None:
            """Every action ends: once the lock and the pool are free, nothing stays open."""
            self.store.release_lock("target:cluster:cluster", EXTERNAL)
            self.pool.full = False
            self.service.start_queued()
            while self.pool.jobs:
                self.pool.jobs.pop(0)()
            self.store.expire_due(datetime.now(UTC) + timedelta(hours=1))
            statuses = {a.status for a in self.store.list_actions(limit=500)}
            assert statuses <= FINAL, statuses

    Machine.TestCase.settings = settings(
        max_examples=150,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Machine.TestCase().runTest()


@pytest.fixture
def machine_parts(sqlite_store: Store) -> tuple[RemediationService, World, ManualPool]:
    with sqlite_store._engine.begin() as conn:
        for table in (actions, locks, audit_log, offers):
            conn.execute(delete(table))
    world, pool = World(), ManualPool()
    service = RemediationService(
        sqlite_store,
        Settings(),
        Transports(cluster=None, pod_exec=None, node_shell=None),  # type: ignore[arg-type]
        fake_registry(world),
        pool,  # type: ignore[arg-type]
        Recorder(world),
        lambda user: user in APPROVERS,
    )
    return service, world, pool


def test_a_reject_while_it_runs_is_refused_and_the_result_is_kept(
    machine_parts: tuple[RemediationService, World, ManualPool],
) -> None:
    service, world, pool = machine_parts
    action = service.request("fix-a", "cluster", {}, "alice")
    service.approve(action.id, "alice")
    assert service.approve(action.id, "bob").kind == "started"
    assert service.store.get_action(action.id).status == "running"  # type: ignore[union-attr]
    assert service.reject(action.id, "carol").kind == "ended"
    pool.jobs.pop()()
    done = service.store.get_action(action.id)
    assert done is not None and done.status == "succeeded"
    assert [a for a, _, _ in world.executions] == [action.id]


def test_the_lock_is_held_whenever_an_action_is_running(
    machine_parts: tuple[RemediationService, World, ManualPool],
) -> None:
    """Taken before `running`, so no orphan clean-up can take a live run for a cut-off one."""
    service, _, pool = machine_parts
    action = service.request("fix-a", "cluster", {}, "alice")
    service.approve(action.id, "alice")
    service.approve(action.id, "bob")
    holder = service.store.lock_holder("target:cluster:cluster")
    assert holder is not None and holder.startswith(action.id)
    assert service.fail_orphaned() == []
    pool.jobs.pop()()
    assert service.store.get_action(action.id).status == "succeeded"  # type: ignore[union-attr]
    assert service.store.lock_holder("target:cluster:cluster") is None


def test_a_run_whose_result_cannot_be_read_is_outcome_unknown_not_failure(
    sqlite_store: Store,
) -> None:
    with sqlite_store._engine.begin() as conn:
        for table in (actions, locks, audit_log, offers):
            conn.execute(delete(table))
    registry = Registry()

    def lost(context: Context, plan: Plan) -> Outcome:
        raise OutcomeUnknown("outcome unknown: hns-reset started as task winpod-1; no result")

    registry.remediation(
        "lost",
        target_kind=TargetKind.CLUSTER,
        risk="low",
        does=lambda t: "x",
        impact=lambda t: "x",
        verified_by=(),
        run=lost,
    )(lambda context, target, params: Plan("lost", target, "api", "x", "x", {}))
    reports: list[RunReport] = []
    recorder = Recorder(World())
    recorder.finished = reports.append  # type: ignore[method-assign]
    service = RemediationService(
        sqlite_store,
        Settings(),
        Transports(cluster=None, pod_exec=None, node_shell=None),  # type: ignore[arg-type]
        registry,
        None,
        recorder,
        lambda user: True,
    )
    action = service.request("lost", "cluster", {}, "alice")
    service.approve(action.id, "alice")
    [report] = reports
    assert report.unknown and not report.ok
    said = finished_text(report)
    assert "outcome unknown" in said and ":red_circle:" not in said
    ended = sqlite_store.get_action(action.id)
    assert ended is not None and (ended.result or {}).get("outcome") == "unknown"
    assert status_line(ended, 1).startswith(":grey_question:")


def test_one_clusters_service_never_decides_on_or_runs_anothers_action(
    machine_parts: tuple[RemediationService, World, ManualPool],
) -> None:
    """An action names its cluster; the service of another cluster (its locks, its transports)
    answers "unknown" to approvals, rejections and starts, and leaves it as it was."""
    service, world, pool = machine_parts
    other = RemediationService(
        service.store.scoped("prod-us"),
        Settings(),
        Transports(cluster=None, pod_exec=None, node_shell=None),  # type: ignore[arg-type]
        service.registry,
        pool,  # type: ignore[arg-type]
        Recorder(world),
        lambda user: user in APPROVERS,
    )
    action = service.request("fix-a", "cluster", {}, "alice")
    service.approve(action.id, "alice")

    assert other.approve(action.id, "bob").kind == "unknown"
    assert other.reject(action.id, "bob").kind == "unknown"
    assert other.start(action.id).kind == "unknown"
    assert other.store.lock_holder("target:cluster:cluster") is None
    current = service.store.get_action(action.id)
    assert current is not None and (current.status, current.approvals) == ("pending", ("alice",))
    assert service.approve(action.id, "bob").kind == "started"
    pool.jobs.pop()()
    assert [a for a, _, _ in world.executions] == [action.id]
