"""Timed jobs (sweeps, expiring actions, RDP teardown) on APScheduler, run by the leader only.

APScheduler 3 stores jobs in the SQLAlchemy job store by reference to importable functions, so
the jobs below are module-level functions that find the running bot through `_RUNTIME`, set
when this replica starts leading. APScheduler must never share a job store between two running
schedulers: only the leader starts one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.store import normalise_url

log = logging.getLogger(__name__)
SWEEP_JOB = "winpod-sweep"
HOUSEKEEPING_JOB = "winpod-housekeeping"
_RUNTIME: Any = None  # the running Runtime (bot.runtime) while this replica leads


def scheduled_sweep() -> None:
    if _RUNTIME is not None:
        _RUNTIME.scheduled_sweep()


def housekeeping() -> None:
    if _RUNTIME is not None:
        _RUNTIME.housekeeping()


def rdp_teardown(node: str, cluster: str | None = None) -> None:
    """`cluster` None: a job persisted before winpod knew clusters (the default one)."""
    if _RUNTIME is not None:
        _RUNTIME.rdp_teardown(node, cluster)


class Jobs:
    def __init__(
        self,
        runtime: Any,
        store_url: str,
        sweep_interval: timedelta,
        housekeeping_interval: timedelta,
    ) -> None:
        self._runtime = runtime
        self._url = normalise_url(store_url).render_as_string(hide_password=False)
        self._interval = sweep_interval
        self._housekeeping_interval = housekeeping_interval
        self._scheduler: BackgroundScheduler | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        global _RUNTIME  # noqa: PLW0603 - see the module docstring
        _RUNTIME = self._runtime
        interval = self._interval.total_seconds()
        scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(url=self._url, tablename="winpod_scheduler_jobs")
            },
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.start()
        # A sweep missed by more than half an interval is skipped: the next one is near.
        scheduler.add_job(
            scheduled_sweep,
            "interval",
            seconds=interval,
            id=SWEEP_JOB,
            replace_existing=True,
            misfire_grace_time=max(1, int(interval / 2)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=1),
        )
        housekeeping_s = self._housekeeping_interval.total_seconds()
        scheduler.add_job(
            housekeeping,
            "interval",
            seconds=housekeeping_s,
            id=HOUSEKEEPING_JOB,
            replace_existing=True,
            misfire_grace_time=max(1, int(housekeeping_s)),
        )
        self._scheduler = scheduler
        log.info("scheduler started", extra={"sweep_interval_s": interval})

    def schedule_teardown(self, node: str, at: datetime, cluster: str) -> None:
        """A persisted one-off job; a teardown missed while nobody led still runs (grace None)."""
        if self._scheduler is not None:
            self._scheduler.add_job(
                rdp_teardown,
                "date",
                run_date=at,
                args=[node, cluster],
                id=f"winpod-rdp-{cluster}-{node}",
                replace_existing=True,
                misfire_grace_time=None,
            )

    def stop(self) -> None:
        global _RUNTIME  # noqa: PLW0603
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        _RUNTIME = None
