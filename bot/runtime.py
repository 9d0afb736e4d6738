"""What a serving replica runs besides Slack: leadership, and the timed jobs of the leader."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import home, render_actions
from bot.leader import LeaderElector
from bot.scheduler import Jobs
from bot.services import BotServices
from bot.sweeper import Sweeper
from bot.wiring import node_transport
from handlers import rdp
from handlers.errors import WinpodError
from handlers.transports.hostprocess import reap_leftovers

if TYPE_CHECKING:
    from bot.approvals import ApprovalFlow

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.sweeper = Sweeper(services, client)
        settings = services.settings
        self.jobs = Jobs(
            self, settings.store.url, settings.sweep.interval, settings.housekeeping_interval
        )
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
        self.sweeper.close()

    def _lead(self) -> None:
        self.services.metrics.leader.set(1)
        self.reap_script_pods()  # a crash or restart may have left some
        self.jobs.start()

    def _follow(self) -> None:
        self.services.metrics.leader.set(0)
        self.jobs.stop()

    # --- jobs (called by bot.scheduler) -------------------------------------------------
    def scheduled_sweep(self) -> None:
        try:
            report = self.sweeper.run(commit=True)
            if report is not None:
                home.record_sweep(self.services.store, report)
            self.reconcile_rdp()
        except WinpodError as exc:  # counted in winpod_errors_total by the transports
            log.error("the sweep stopped: %s; the next one runs as scheduled", exc)

    def housekeeping(self) -> None:
        """Every `housekeeping_interval` on the leader: expire stale requests, end actions cut
        off by a restart, start approved actions that wait, keep RDP teardowns scheduled,
        close any RDP session past its time, and delete node-script pods left behind."""
        flow = self.services.approvals
        for action in self.services.store.expire_due(datetime.now(UTC)):
            self.services.store.audit(
                "winpod",
                "expired",
                {"remediation": action.remediation},
                action_id=action.id,
                target=action.target,
            )
            if flow is not None:
                flow.notifier.expired(action)
        self._schedule_rdp_teardowns()
        self.reconcile_rdp()
        self.reap_script_pods()
        if flow is not None:
            fail_cut_off_actions(flow)
            flow.service.start_queued()

    def reap_script_pods(self) -> None:
        """Delete winpod's HostProcess script pods older than `node.script_timeout`: each run
        deletes its own pod, so these are a crashed or restarted replica's."""
        settings = self.services.settings
        if node_transport(settings) != "hostprocess":
            return
        try:
            reaped = reap_leftovers(
                self.services.transports.cluster,
                settings.kubernetes.namespace,
                settings.node.script_timeout,
            )
        except WinpodError as exc:
            log.error("could not reap leftover node-script pods: %s; it runs again shortly", exc)
            return
        for name in reaped:
            log.info("leftover node-script pod deleted", extra={"pod": name})

    def _schedule_rdp_teardowns(self) -> None:
        """Sessions opened on any replica get a persisted, precise teardown job here."""
        for session in self.services.store.list_rdp():
            self.jobs.schedule_teardown(session.node, session.expires_at)

    def rdp_teardown(self, node: str) -> None:
        """The persisted job at a session's expiry: closes it unless it was extended."""
        log.info("RDP teardown due", extra={"node": node})
        self.reconcile_rdp()

    def reconcile_rdp(self) -> None:
        """Close every expired RDP session winpod opened (and nothing else), and say so."""
        settings, store = self.services.settings, self.services.store
        try:
            closed = rdp.reconcile(
                self.services.transports.cluster, settings.kubernetes.namespace, datetime.now(UTC)
            )
        except WinpodError as exc:
            log.error("RDP reconcile failed: %s; it runs again shortly", exc)
            return
        for session in closed:
            record = store.get_rdp(session.node)
            store.delete_rdp(session.node)
            store.audit(
                "winpod",
                "rdp-expired",
                {"summary": f"RDP to {session.node} closed at expiry"},
                target=session.node,
            )
            log.info("RDP session expired and closed", extra={"node": session.node})
            if record is not None and record.channel and record.thread_ts:
                try:
                    self.client.chat_postMessage(
                        channel=record.channel,
                        thread_ts=record.thread_ts,
                        text=render_actions.rdp_expired_text(session.node),
                    )
                except SlackApiError as exc:
                    log.error("could not announce an RDP expiry: %s", exc.response.get("error"))


def fail_cut_off_actions(flow: ApprovalFlow) -> None:
    """A restart finds the action of a killed replica still `running`; once its lock has
    expired (it is renewed while the run lasts), it ends as failed, never re-run."""
    for action in flow.service.fail_orphaned():
        log.warning(
            "action %s (%s on %s) was cut off; marked failed",
            action.id,
            action.remediation,
            action.target,
        )
        flow.notifier.cut_off(action)
