"""What a serving replica runs besides Slack: leadership, and the timed jobs of the leader.
The leader works for every cluster winpod serves: one sweep each, at the same time, so a cluster
that does not answer holds up only itself."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, get_args

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import home, render_actions, render_slack
from bot.leader import LeaderElector
from bot.scheduler import Jobs
from bot.services import BotServices
from bot.sweeper import Sweeper
from bot.wiring import node_transport
from config.settings import ConfigError
from handlers import rdp
from handlers.errors import WinpodError
from handlers.i18n import _
from handlers.sweep import NodeState
from handlers.transports.hostprocess import reap_leftovers

if TYPE_CHECKING:
    from bot.approvals import ApprovalFlow

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.sweeper = Sweeper(services, client)
        self._sweepers: dict[str, Sweeper] = {services.cluster: self.sweeper}
        # Clusters that did not answer the last sweep: said once per outage, and again once
        # they answer (kept by the leader; a new leader may say it once more).
        self._down: dict[str, str] = {}
        self._down_lock = threading.Lock()
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
        for sweeper in self._sweepers.values():
            sweeper.close()

    def _lead(self) -> None:
        self.services.metrics.leader.set(1)
        self.reap_script_pods()  # a crash or restart may have left some
        self.jobs.start()

    def _follow(self) -> None:
        self.services.metrics.leader.set(0)
        self.jobs.stop()

    # --- jobs (called by bot.scheduler) -------------------------------------------------
    def scheduled_sweep(self) -> None:
        """Every cluster's sweep at once; each posts its own alerts as it finds them."""
        names = self.services.settings.cluster_names
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="sweep") as pool:
            list(pool.map(self._sweep_cluster, names))

    def _sweep_cluster(self, name: str) -> None:
        try:
            services = self.services.in_cluster(name)
            sweeper = self._sweepers.setdefault(name, Sweeper(services, self.client))
            report = sweeper.run(commit=True)
            if report is not None:
                home.record_sweep(services.store, report)
            self._reconcile_rdp(services)
        except (WinpodError, ConfigError) as exc:  # counted in winpod_errors_total
            log.error(
                "the sweep stopped: %s; the next one runs as scheduled",
                exc,
                extra={"cluster": name},
            )
            self._cluster_down(name, str(exc))
            return
        except Exception:  # one cluster's surprise must not end the others' sweeps
            log.exception("the sweep of cluster %s failed", name)
            return
        self._cluster_up(name)

    def _cluster_down(self, name: str, reason: str) -> None:
        with self._down_lock:
            if name in self._down:
                return
            self._down[name] = reason
        services = self.services.in_cluster(name)
        nodes = sorted(services.store.known_boots())
        for state in get_args(NodeState):  # what the dashboards show while it is silent
            not_probed = state == "not-probed"
            services.metrics.sweep_nodes.labels(name, state).set(len(nodes) if not_probed else 0)
        services.store.audit("winpod", "unreachable", {"summary": reason, "not_probed": nodes})
        self._announce(name, render_slack.cluster_unreachable_text(name, reason, nodes))

    def _cluster_up(self, name: str) -> None:
        with self._down_lock:
            if self._down.pop(name, None) is None:
                return
        self.services.in_cluster(name).store.audit(
            "winpod", "reachable", {"summary": f"cluster {name} answers again"}
        )
        self._announce(name, render_slack.cluster_reachable_text(name))

    def _announce(self, cluster: str, text: str) -> None:
        """Outages are said in Slack where winpod serves several clusters; with one, the
        failed sweep is logged and counted as before (readiness reports the cluster)."""
        channel = self.services.settings.alert_channel_of(cluster)
        if not channel or not self.services.settings.many_clusters:
            return
        try:
            self.client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            log.error("could not announce cluster %s: %s", cluster, exc.response.get("error"))

    def housekeeping(self) -> None:
        """Every `housekeeping_interval` on the leader: expire stale requests, end actions cut
        off by a restart, start approved actions that wait, keep RDP teardowns scheduled,
        close any RDP session past its time, and delete node-script pods left behind."""
        for action in self.services.store.expire_due(datetime.now(UTC)):
            services = self.services.in_cluster(action.cluster)
            services.store.audit(
                "winpod",
                "expired",
                {"remediation": action.remediation},
                action_id=action.id,
                target=action.target,
            )
            if services.approvals is not None:
                services.approvals.notifier.expired(action)
        self._schedule_rdp_teardowns()
        self.reconcile_rdp()
        self.reap_script_pods()
        for services in self._clusters():
            if services.approvals is not None:
                fail_cut_off_actions(services.approvals)
                services.approvals.service.start_queued()

    def _clusters(self) -> list[BotServices]:
        """Every cluster's services that can be built (one whose kubeconfig cannot be loaded
        is left out here and reported by the sweep)."""
        found = []
        for name in self.services.settings.cluster_names:
            try:
                found.append(self.services.in_cluster(name))
            except (WinpodError, ConfigError) as exc:
                log.error("cluster %s is left out: %s", name, exc)
        return found

    def reap_script_pods(self) -> None:
        """Delete winpod's HostProcess script pods older than `node.script_timeout`, in every
        cluster that runs scripts that way: each run deletes its own pod, so these are a crashed
        or restarted replica's."""
        for services in self._clusters():
            settings = services.settings
            if node_transport(settings) != "hostprocess":
                continue
            try:
                reaped = reap_leftovers(
                    services.transports.cluster,
                    settings.kubernetes.namespace,
                    settings.node.script_timeout,
                )
            except WinpodError as exc:
                log.error(
                    "could not reap leftover node-script pods in cluster %s: %s; it runs again "
                    "shortly",
                    services.cluster,
                    exc,
                )
                continue
            for name in reaped:
                log.info(
                    "leftover node-script pod deleted",
                    extra={"pod": name, "cluster": services.cluster},
                )

    def _schedule_rdp_teardowns(self) -> None:
        """Sessions opened on any replica get a persisted, precise teardown job here."""
        for services in self._clusters():
            for session in services.store.list_rdp():
                self.jobs.schedule_teardown(session.node, session.expires_at, services.cluster)

    def rdp_teardown(self, node: str, cluster: str | None = None) -> None:
        """The persisted job at a session's expiry: closes it unless it was extended."""
        log.info("RDP teardown due", extra={"node": node, "cluster": cluster})
        self.reconcile_rdp()

    def reconcile_rdp(self) -> None:
        """Close every expired RDP session winpod opened (and nothing else) in every cluster."""
        for services in self._clusters():
            self._reconcile_rdp(services)

    def _reconcile_rdp(self, services: BotServices) -> None:
        settings, store = services.settings, services.store
        try:
            closed = rdp.reconcile(
                services.transports.cluster, settings.kubernetes.namespace, datetime.now(UTC)
            )
        except WinpodError as exc:
            log.error(
                "RDP reconcile in cluster %s failed: %s; it runs again shortly",
                services.cluster,
                exc,
            )
            return
        for session in closed:
            record = store.get_rdp(session.node)
            store.delete_rdp(session.node)
            store.audit(
                "winpod",
                "rdp-expired",
                {"summary": _("RDP to {node} closed at expiry").format(node=session.node)},
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
