"""The App Home tab as Block Kit: nodes, actions waiting for approval (with their buttons),
open RDP sessions and the last sweep — within Slack's 100 blocks, the rest counted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.render_actions import Block, status_line
from bot.render_slack import cut, escape
from bot.store import PendingAction, RdpSession
from handlers.i18n import N_, _, ngettext

MAX_BLOCKS = 100  # views.publish refuses more
MAX_NODES = 40
MAX_ACTIONS = 15  # two blocks each: the status and its buttons
MAX_SESSIONS = 10
VERDICTS = {
    "ok": N_(":large_green_circle: ok"),
    "failing": N_(":red_circle: DNS failing"),
    "no-network": N_(":red_circle: no network"),
    "unreachable": N_(":warning: unreachable"),
    "no-pods": N_(":white_circle: no running pods to probe"),
    "not-probed": N_(":white_circle: not probed"),
}


# The sweep's counts as the App Home says them (bot.home.SHOWN_COUNTS).
_SWEEP_COUNTS = {
    "checked": N_("{count} checked"),
    "failing": N_("{count} failing"),
    "unreachable": N_("{count} unreachable"),
}


@dataclass(frozen=True)
class NodeRow:
    name: str
    build: int | None
    os_image: str
    boot_id: str
    rebooted: str | None  # the newest `Rebooted` event's time, while the cluster keeps it
    ready_since: str  # the Ready condition's last transition (after a reboot: about its end)
    verdict: str | None  # the last sweep's state for it; None when no sweep is recorded
    alert_open: bool = False


@dataclass(frozen=True)
class Home:
    cluster: str
    nodes: Sequence[NodeRow]
    nodes_error: str | None
    waiting: Sequence[tuple[PendingAction, int]]  # each open action and how many approvals
    sessions: Sequence[RdpSession]
    last_sweep: datetime | None
    sweep_summary: dict[str, int] = field(default_factory=dict)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 2990)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, 2990)}]}


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, 150)}}


def _more(shown: int, total: int, what: str) -> list[Block]:
    hidden = total - shown
    if hidden <= 0:
        return []
    notes = {
        "nodes": ngettext("… and {count} more node.", "… and {count} more nodes.", hidden),
        "actions": ngettext("… and {count} more action.", "… and {count} more actions.", hidden),
        "sessions": ngettext("… and {count} more session.", "… and {count} more sessions.", hidden),
    }
    return [_context(notes[what].format(count=hidden))]


def _node_block(node: NodeRow, swept: bool) -> Block:
    build = _("build {build}").format(build=node.build) if node.build else _("build unknown")
    verdict = (
        _(VERDICTS[node.verdict])
        if node.verdict in VERDICTS
        else escape(node.verdict)
        if node.verdict
        else (_("not in the last sweep") if swept else _("no sweep recorded"))
    )
    if node.alert_open:
        verdict += " · " + _(":rotating_light: reboot alert open")
    return _section(
        f"*{escape(node.name)}* · {build} · {escape(node.os_image or _('OS unknown'))}\n"
        + _("boot id {boot_id}").format(boot_id=f"`{escape(node.boot_id or '?')}`")
        + (
            " · " + _("last boot {time}").format(time=escape(node.rebooted))
            if node.rebooted
            else ""
        )
        + " · "
        + _("Ready since {time} · last sweep: {verdict}").format(
            time=escape(node.ready_since or "?"), verdict=verdict
        )
    )


def _action_blocks(action: PendingAction, needed: int) -> list[Block]:
    return [
        _section(
            status_line(action, needed)
            + "\n"
            + _("asked by {person} · expires {time}").format(
                person=f"<@{action.requester}>", time=_when(action.expires_at)
            )
        ),
        {
            "type": "actions",
            "block_id": f"home-{action.id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"approve:{action.id}",
                    "value": action.id,
                    "style": "primary",
                    "text": {
                        "type": "plain_text",
                        "text": cut(
                            _("Approve {remediation}").format(remediation=action.remediation), 75
                        ),
                    },
                },
                {
                    "type": "button",
                    "action_id": f"reject:{action.id}",
                    "value": action.id,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": _("Reject")},
                },
            ],
        },
    ]


def home_view(home: Home) -> dict[str, object]:
    """The `home` view for views.publish."""
    sweep = (
        _("Last sweep: {time}").format(time=_when(home.last_sweep))
        + (
            " ("
            + ", ".join(
                _(_SWEEP_COUNTS.get(k, "{count} " + k)).format(count=v)
                for k, v in home.sweep_summary.items()
            )
            + ")"
            if home.sweep_summary
            else ""
        )
        if home.last_sweep
        else _("No sweep recorded yet.")
    )
    blocks: list[Block] = [
        _header(_("winpod · cluster {cluster}").format(cluster=home.cluster)),
        _context(
            _("{sweep} · refreshed {time}").format(sweep=sweep, time=_when(datetime.now(UTC)))
        ),
        {"type": "divider"},
        _header(_("Windows nodes")),
    ]
    if home.nodes_error:
        blocks.append(
            _section(
                _(":warning: Could not list the nodes: {error}").format(
                    error=escape(home.nodes_error)
                )
            )
        )
    elif not home.nodes:
        blocks.append(_context(_("No Windows nodes in this cluster.")))
    swept = home.last_sweep is not None
    blocks += [_node_block(n, swept) for n in home.nodes[:MAX_NODES]]
    blocks += _more(min(len(home.nodes), MAX_NODES), len(home.nodes), "nodes")
    blocks += [{"type": "divider"}, _header(_("Waiting for approval"))]
    if not home.waiting:
        blocks.append(_context(_("Nothing is waiting for approval.")))
    for action, needed in home.waiting[:MAX_ACTIONS]:
        blocks += _action_blocks(action, needed)
    blocks += _more(min(len(home.waiting), MAX_ACTIONS), len(home.waiting), "actions")
    blocks += [{"type": "divider"}, _header(_("Open RDP sessions"))]
    if not home.sessions:
        blocks.append(_context(_("No RDP session is open.")))
    blocks += [
        _section(
            f"*{escape(s.node)}* · "
            + _("for {person} · closes {time} · from {ranges}").format(
                person=f"<@{s.requester}>",
                time=_when(s.expires_at),
                ranges=escape(", ".join(s.source_ranges)),
            )
        )
        for s in home.sessions[:MAX_SESSIONS]
    ]
    blocks += _more(min(len(home.sessions), MAX_SESSIONS), len(home.sessions), "sessions")
    assert len(blocks) <= MAX_BLOCKS, "the caps above keep the view within Slack's limit"
    return {"type": "home", "callback_id": "winpod-home", "blocks": blocks}


def clusters_home_view(homes: Sequence[Home]) -> dict[str, object]:
    """The `home` view of several clusters: each cluster's part in the order given, each within
    an equal share of Slack's block limit (a cut part says where to see all of it)."""
    share = MAX_BLOCKS // max(1, len(homes))
    blocks: list[Block] = []
    for home in homes:
        part = list(home_view(home)["blocks"])  # type: ignore[call-overload]
        if len(part) > share:
            part = [
                *part[: share - 1],
                _context(
                    _("More of cluster {cluster} than fits here.").format(
                        cluster=escape(home.cluster)
                    )
                ),
            ]
        blocks += part
    return {"type": "home", "callback_id": "winpod-home", "blocks": blocks}
