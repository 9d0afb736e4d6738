"""The sweep with its memory and its voice: stored boot ids, one alert per node per boot, a
follow-up in the alert's thread when DNS works again, metrics and a log summary. Boot ids come
from a watch on Nodes, started with the first sweep and kept while the process lives."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import get_args

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import render_slack
from bot.services import BotServices
from bot.slack_text import Mrkdwn, code
from handlers import sweep
from handlers.i18n import N_, _, ngettext
from handlers.model import Diagnosis, Target
from handlers.registry import TargetKind, TargetRef
from handlers.remediations import impact_texts

log = logging.getLogger(__name__)


class Sweeper:
    """One sweep at a time per process (`services.sweep_lock`); `client` is None where nobody
    is to be told (the CLI)."""

    FIRST_LIST_WAIT_S = 60.0  # how long a sweep waits for the watch's first list of nodes

    def __init__(self, services: BotServices, client: WebClient | None) -> None:
        self.services = services
        self.client = client

    def close(self) -> None:
        if self.services.node_watch is not None:
            self.services.node_watch.stop()

    def run(
        self, commit: bool = True, progress: Callable[[int, int], None] | None = None
    ) -> sweep.SweepReport | None:
        """Sweep; with `commit`, record boots and alert. None if a sweep is already running."""
        if not self.services.sweep_lock.acquire(blocking=False):
            return None
        try:
            return self._run(commit, progress)
        finally:
            self.services.sweep_lock.release()

    def _run(self, commit: bool, progress: Callable[[int, int], None] | None) -> sweep.SweepReport:
        store, metrics = self.services.store, self.services.metrics
        # One cheap read first: a cluster that does not answer fails here, at once, rather than
        # after its watch's wait (the watch would keep its old list while the API is gone).
        self.services.transports.cluster.list("Node", label_selector="winpod.io/ping")
        open_alerts = {a.node: a for a in store.open_alerts()} if commit else {}
        watch = self.services.node_watch
        boots = None if watch is None else watch.boots(self.FIRST_LIST_WAIT_S)
        report = sweep.sweep(
            self.services.transports,
            self.services.settings,
            store.known_boots(),
            set(open_alerts),
            progress,
            boots,
            None if watch is None else watch.rebooted_nodes,
        )
        if commit:
            unsent: set[str] = set()
            for node in report.nodes:
                if (
                    node.finding is not None
                    and node.finding.severity == "error"
                    and not self._alert(node)
                ):
                    unsent.add(node.name)
                alert = open_alerts.get(node.name)
                if (
                    alert is not None
                    and node.state == "ok"
                    and store.resolve_alert(alert.node, alert.boot_id)
                ):
                    self._follow_up(alert.channel, alert.message_ts, node)
            # Boots are recorded after alerting: a node whose alert did not reach Slack keeps
            # its old boot id, so the next sweep sees the reboot again and retries the alert.
            store.record_boots(
                {n.name: n.boot_id for n in report.nodes if n.name not in unsent},
                datetime.now(UTC),
            )
        summary = report.summary()
        metrics.sweep_seconds.observe(report.duration_ms / 1000)
        for state in get_args(sweep.NodeState):
            metrics.sweep_nodes.labels(self.services.cluster, state).set(report.count(state))
        log.info("sweep finished", extra={"sweep": summary})
        return report

    def _alert(self, node: sweep.NodeReport) -> bool:
        """Post this boot's alert unless it was claimed already; False when the post failed,
        after giving the claim back so that a later sweep can post it."""
        store = self.services.store
        channel = self.services.settings.alert_channel_of(self.services.cluster)
        if self.client is None or not channel or not store.claim_alert(node.name, node.boot_id):
            return True
        posted = False
        try:
            posted = self._post_alert(node, channel)
        finally:
            if not posted:
                store.release_alert(node.name, node.boot_id)
        return posted

    def _post_alert(self, node: sweep.NodeReport, channel: str) -> bool:
        store = self.services.store
        assert self.client is not None and node.finding is not None
        diagnosis = Diagnosis(
            Target("Node", node.name, node=node.name), node.facts, (node.finding,)
        )
        offers = {}
        for ref in node.finding.remediations:
            diagnosed = (
                TargetRef(TargetKind.POD, node.probed[0])
                if node.probed
                else TargetRef(TargetKind.NODE, node.name)
            )
            offers[(ref.id, ref.target)] = store.save_offer(
                ref.id, ref.target, {}, node.finding.check, ref.risk, diagnosed.to_json()
            )
        cluster = self.services.named_cluster
        swept = render_slack.Swept(
            node.booted_at, cluster or self.services.transports.cluster.context
        )
        text, blocks = render_slack.diagnosis_message(
            diagnosis,
            offers,
            impact_texts({rid: target for rid, target in offers}),
            cluster,
            swept,
        )
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=render_slack.sweep_alert_text(node.name, text, cluster),
                blocks=blocks,
            )
        except SlackApiError as exc:
            log.error("could not post the alert for %s: %s", node.name, exc.response.get("error"))
            return False
        store.set_alert_message(node.name, node.boot_id, channel, str(response["ts"]))
        store.audit(
            "winpod",
            "alert",
            {"summary": node.finding.title, "boot": node.boot_id},
            target=node.name,
        )
        return True

    def _follow_up(self, channel: str | None, ts: str | None, node: sweep.NodeReport) -> None:
        self.services.store.audit(
            "winpod",
            "recovered",
            {"summary": f"DNS works again on {node.name}"},  # i18n: the audit log is English
            target=node.name,
        )
        if self.client is None or not channel or not ts:
            return
        # the evidence is what the pods answered: it enters the message escaped
        evidence = Mrkdwn("\n").join(Mrkdwn("• {}").format(line) for line in node.evidence[:2])
        try:
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=ts,
                text=Mrkdwn(_(":white_check_mark: DNS works again on {node}.") + "\n").format(
                    node=code(node.name)
                )
                + evidence,
            )
        except SlackApiError as exc:
            log.error("could not post the recovery of %s: %s", node.name, exc.response.get("error"))


class ProgressMessage:
    """Edits one Slack message as probes finish ("probed 37/100 nodes…"), at most once a
    second so a big sweep does not hit Slack's rate limits."""

    def __init__(self, client: WebClient, channel: str, ts: str) -> None:
        self.client, self.channel, self.ts = client, channel, ts
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            if done < total and time.monotonic() - self._last < 1.0:
                return
            self._last = time.monotonic()
        try:
            self.client.chat_update(
                channel=self.channel,
                ts=self.ts,
                text=ngettext(
                    ":mag: Sweeping: probed {done}/{total} node…",
                    ":mag: Sweeping: probed {done}/{total} nodes…",
                    total,
                ).format(done=done, total=total),
            )
        except SlackApiError as exc:
            log.warning("progress update failed: %s", exc.response.get("error"))


_STATE_WORD = {
    "failing": N_("failing"),
    "no-network": N_("no network"),
    "unreachable": N_("unreachable"),
    "no-pods": N_("no pods"),
}


def sweep_text(report: sweep.SweepReport) -> str:
    """The on-demand summary: counts, then one line per node that is not fine."""
    s = report.summary()
    lines = [
        ngettext(
            "Sweep: {checked} Windows node checked, {rebooted} rebooted, {failing} with failing "
            "DNS, {unreachable} could not be checked ({ms} ms).",
            "Sweep: {checked} Windows nodes checked, {rebooted} rebooted, {failing} with failing "
            "DNS, {unreachable} could not be checked ({ms} ms).",
            s["checked"],
        ).format(
            checked=s["checked"],
            rebooted=s["rebooted"],
            failing=s["failing"],
            unreachable=s["unreachable"],
            ms=s["duration_ms"],
        )
    ]
    for node in report.nodes:
        if node.state in _STATE_WORD:
            lines.append(
                f"• {node.name}: {_(_STATE_WORD[node.state])}"
                + (f" — {node.evidence[-1]}" if node.evidence else "")
            )
    return "\n".join(lines)
