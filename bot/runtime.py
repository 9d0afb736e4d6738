"""What a serving replica runs besides Slack: leadership, and the timed jobs of the leader."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.leader import LeaderElector
from bot.scheduler import Jobs
from bot.services import BotServices
from bot.sweeper import Sweeper
from handlers.errors import WinpodError

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.sweeper = Sweeper(services, client)
        settings = services.settings
        self.jobs = Jobs(self, settings.store.url, settings.sweep.interval)
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.elector: LeaderElector | None = None
        if settings.kubernetes.leader_election:
            self.elector = LeaderElector(
                services.transports.cluster,
                settings.kubernetes.namespace,
                self.identity,
                on_started=self._lead,
                on_stopped=self._follow,
            )
            self.elector.check_permission()

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector is not None else self.jobs.running

    def start(self) -> None:
        if self.elector is None:
            self._lead()
        else:
            self.elector.start()

    def stop(self) -> None:
        if self.elector is not None:
            self.elector.stop()
        self.jobs.stop()

    def _lead(self) -> None:
        self.services.metrics.leader.set(1)
        self.jobs.start()

    def _follow(self) -> None:
        self.services.metrics.leader.set(0)
        self.jobs.stop()

    # --- jobs (called by bot.scheduler) -------------------------------------------------
    def scheduled_sweep(self) -> None:
        try:
            self.sweeper.run(commit=True)
        except WinpodError as exc:
            self.services.metrics.errors.labels("kubernetes", type(exc).__name__).inc()
            log.error("the sweep stopped: %s; the next one runs as scheduled", exc)

    def expire_actions(self) -> None:
        for action in self.services.store.expire_due(datetime.now(UTC)):
            self.services.store.audit(
                "winpod",
                "expired",
                {"remediation": action.remediation},
                action_id=action.id,
                target=action.target,
            )
            if action.channel and action.thread_ts:
                try:
                    self.client.chat_postMessage(
                        channel=action.channel,
                        thread_ts=action.thread_ts,
                        text=f":alarm_clock: *{action.remediation}* on `{action.target}` "
                        "expired before it was approved; nothing ran.",
                    )
                except SlackApiError as exc:
                    log.error("could not announce an expiry: %s", exc.response.get("error"))

    def rdp_teardown(self, node: str) -> None:
        del node  # RDP access arrives with the rdp feature
