"""A bounded pool for slow work (diagnoses), separate from the threads that acknowledge Slack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)


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

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("background job failed")
        finally:
            with self._lock:
                self._in_flight -= 1

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
