"""The App Home: gathered from the cluster and the store when a user opens it (or after a
click there), and published with views.publish. Sweeps leave their time and verdicts in the
audit log (kind `sweep`), which every replica reads."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.render_home import Home, NodeRow, clusters_home_view, home_view
from bot.services import BotServices
from bot.store import PendingAction, Store
from config.settings import ConfigError
from handlers.context import node_facts
from handlers.errors import WinpodError
from handlers.node_watch import WINDOWS_NODES
from handlers.sweep import SweepReport
from handlers.transports import Cluster, KubeObject

log = logging.getLogger(__name__)
MAX_VERDICTS = 500  # nodes whose non-ok state one sweep's audit entry keeps
SWEEP_ENTRIES_READ = 200  # how far back in the audit log the last sweep is looked for
SHOWN_COUNTS = ("checked", "failing", "unreachable")


def record_sweep(store: Store, report: SweepReport) -> None:
    """Remember when a sweep ran and which nodes it did not find ok (for the App Home)."""
    not_ok = {n.name: n.state for n in report.nodes if n.state != "ok"}
    counts = report.summary()
    store.audit(
        "winpod",
        "sweep",
        {
            # the line `/winpod audit` shows
            "summary": ", ".join(f"{counts.get(k, 0)} {k}" for k in SHOWN_COUNTS),
            "counts": counts,
            "not_ok": dict(list(not_ok.items())[:MAX_VERDICTS]),
        },
    )


def _reboots(cluster: Cluster) -> dict[str, str]:
    """Each node's newest `Rebooted` event time (kubelet's, kept as long as events are)."""
    newest: dict[str, str] = {}
    try:
        events = cluster.list("Event", field_selector="reason=Rebooted")
    except WinpodError:
        return newest  # the nodes still show; only their reboot times are missing
    for event in events:
        node = str((event.get("involvedObject") or {}).get("name") or "")
        when = str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or ""
        )
        if node and when > newest.get(node, ""):
            newest[node] = when
    return newest


def _ready_since(node: KubeObject) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return str(condition.get("lastTransitionTime") or "")
    return "not Ready"


def gather(services: BotServices) -> Home:
    store, cluster = services.store, services.transports.cluster
    sweeps = [
        e
        for e in store.audit_log(SWEEP_ENTRIES_READ)
        if e.kind == "sweep" and e.cluster == store.cluster
    ]
    last = sweeps[-1] if sweeps else None
    not_ok: dict[str, str] = dict((last.detail.get("not_ok") or {}) if last else {})
    alerts = {a.node for a in store.open_alerts()}
    rows: list[NodeRow] = []
    error = None
    try:
        nodes = cluster.list("Node", label_selector=WINDOWS_NODES)
    except WinpodError as exc:
        nodes, error = [], str(exc)
    reboots = _reboots(cluster) if nodes else {}
    for node in nodes:
        facts = node_facts(node)
        if not facts.windows:
            continue
        verdict = not_ok.get(facts.name, "ok") if last else None
        rows.append(
            NodeRow(
                facts.name,
                facts.build,
                facts.os_image,
                facts.boot_id,
                reboots.get(facts.name),
                _ready_since(node),
                verdict,
                facts.name in alerts,
            )
        )
    rows.sort(key=lambda r: (r.verdict in (None, "ok"), r.name))  # trouble first
    approvals = services.approvals
    waiting: list[tuple[PendingAction, int]] = []
    for status in ("pending", "approved"):
        for action in store.list_actions(status, limit=200):
            needed = approvals.service.needed(action) if approvals else 1
            waiting.append((action, needed))
    waiting.sort(key=lambda pair: pair[0].created_at)
    counts = last.detail.get("counts") if last else None
    return Home(
        services.cluster if services.settings.many_clusters else cluster.context,
        rows,
        error,
        waiting,
        store.list_rdp(),
        last.at if last else None,
        {k: int(counts.get(k, 0)) for k in SHOWN_COUNTS} if isinstance(counts, dict) else {},
    )


def publish(services: BotServices, client: WebClient, user: str) -> None:
    """Publish `user`'s App Home as it is now."""
    try:
        client.views_publish(user_id=user, view=_view(services))
    except SlackApiError as exc:
        services.metrics.error("slack", str(exc.response.get("error")))
        log.error("views.publish failed: %s", exc.response.get("error"))


def _view(services: BotServices) -> dict[str, object]:
    """One cluster's home, or every cluster's in the order the config lists them."""
    if not services.settings.many_clusters:
        return home_view(gather(services))
    homes = []
    for name in services.settings.cluster_names:
        try:
            homes.append(gather(services.in_cluster(name)))
        except ConfigError as exc:  # its kubeconfig cannot be loaded: say so in its part
            homes.append(Home(name, [], str(exc), [], [], None))
    return clusters_home_view(homes)
