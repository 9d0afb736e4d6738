"""A bounded pool for slow work (diagnoses), separate from the threads that acknowledge Slack."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)
# Jobs let the acknowledgements in progress go first (see `WorkPool.answering`): they start
# once none has been in progress for QUIET_S, and after ACKS_FIRST_S whatever happens.
ACKS_FIRST_S = 2.0
QUIET_S = 0.05


@dataclass(frozen=True)
class Admission:
    accepted: bool
    queued_behind: int  # jobs waiting ahead of this one; 0 when it starts at once


class WorkPool:
    """At most `workers` jobs run at once and at most `queue_limit` wait; beyond that, refuse."""

    def __init__(self, workers: int, queue_limit: int) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="work")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._answering = 0
        self._last_answer = 0.0
        self._answered = threading.Condition(self._lock)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, job: Callable[[], None]) -> Admission:
        with self._lock:
            if self._in_flight >= self.workers + self.queue_limit:
                return Admission(False, self._in_flight - self.workers)
            waiting = max(0, self._in_flight - self.workers + 1)
            self._in_flight += 1
        self._executor.submit(self._run, job)
        return Admission(True, waiting)

    def _wait_for_answers(self) -> None:
        """Start once no acknowledgement has been in progress for QUIET_S, or after
        ACKS_FIRST_S at the latest: a burst of commands is answered first, then worked on."""
        deadline = time.monotonic() + ACKS_FIRST_S
        with self._lock:
            while (now := time.monotonic()) < deadline:
                if self._answering:
                    self._answered.wait(deadline - now)
                elif (quiet := now - self._last_answer) < QUIET_S:
                    self._answered.wait(min(deadline - now, QUIET_S - quiet))
                else:
                    return

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Marks a Slack request being acknowledged. Jobs wait for those (up to ACKS_FIRST_S)
        before they start: one interpreter runs both, and a burst of commands would otherwise
        be answered only as fast as the diagnoses it started leave room for."""
        with self._lock:
            self._answering += 1
        try:
            yield
        finally:
            with self._lock:
                self._answering -= 1
                self._last_answer = time.monotonic()
                if not self._answering:
                    self._answered.notify_all()

    def _run(self, job: Callable[[], None]) -> None:
        self._wait_for_answers()
        try:
            job()
        except Exception:
            log.exception("background job failed")
        finally:
            with self._lock:
                self._in_flight -= 1

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
