"""The work pool: bounded, and acknowledgements in progress go before queued jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bot import work
from bot.work import WorkPool

WAIT_S = 10.0  # generous: only ever reached when something is broken


@pytest.fixture
def pool() -> Iterator[WorkPool]:
    pool = WorkPool(workers=2, queue_limit=1)
    yield pool
    pool.shutdown(wait=False)


def _job(started: threading.Event, release: threading.Event | None = None) -> None:
    started.set()
    if release is not None:
        release.wait(WAIT_S)


def test_a_job_waits_for_the_acknowledgement_in_progress(pool: WorkPool) -> None:
    started = threading.Event()
    with pool.answering():
        assert pool.submit(lambda: _job(started)).accepted
        assert not started.wait(0.3), "the job ran while a Slack request was being answered"
    assert started.wait(WAIT_S), "the job never started after the acknowledgement"


def test_a_job_starts_anyway_when_answers_never_stop(
    pool: WorkPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(work, "ACKS_FIRST_S", 0.2)
    started = threading.Event()
    with pool.answering():
        pool.submit(lambda: _job(started))
        assert started.wait(WAIT_S), "a stuck request held the job back for good"


def test_beyond_workers_and_queue_the_pool_refuses(pool: WorkPool) -> None:
    release = threading.Event()
    started = [threading.Event() for _ in range(3)]
    try:
        admissions = [pool.submit(lambda e=e: _job(e, release)) for e in started]
        assert [a.accepted for a in admissions] == [True, True, True]
        assert admissions[2].queued_behind == 1
        assert started[0].wait(WAIT_S) and started[1].wait(WAIT_S)
        refused = pool.submit(lambda: None)
        assert not refused.accepted
        assert refused.queued_behind == 1
    finally:
        release.set()
    assert started[2].wait(WAIT_S), "the queued job never ran"


def test_failing_jobs_free_their_places(pool: WorkPool) -> None:
    def boom() -> None:
        raise RuntimeError("job failed")

    assert all(pool.submit(boom).accepted for _ in range(3))  # every place taken
    deadline = time.monotonic() + WAIT_S
    while pool.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.in_flight == 0, "failed jobs kept their places"
    done = threading.Event()
    assert pool.submit(done.set).accepted
    assert done.wait(WAIT_S)
