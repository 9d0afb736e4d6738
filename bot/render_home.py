"""The App Home tab as Block Kit: nodes, actions waiting for approval (with their buttons),
open RDP sessions and the last sweep — within Slack's 100 blocks, the rest counted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.render_actions import Block, status_line
from bot.render_slack import cut, escape
from bot.store import PendingAction, RdpSession

MAX_BLOCKS = 100  # views.publish refuses more
MAX_NODES = 40
MAX_ACTIONS = 15  # two blocks each: the status and its buttons
MAX_SESSIONS = 10
VERDICTS = {
    "ok": ":large_green_circle: ok",
    "failing": ":red_circle: DNS failing",
    "no-network": ":red_circle: no network",
    "unreachable": ":warning: unreachable",
    "no-pods": ":white_circle: no running pods to probe",
    "not-probed": ":white_circle: not probed",
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
    return [_context(f"… and {total - shown} more {what}.")] if total > shown else []


def _node_block(node: NodeRow, swept: bool) -> Block:
    build = f"build {node.build}" if node.build else "build unknown"
    verdict = (
        VERDICTS.get(node.verdict, escape(node.verdict))
        if node.verdict
        else ("not in the last sweep" if swept else "no sweep recorded")
    )
    if node.alert_open:
        verdict += " · :rotating_light: reboot alert open"
    return _section(
        f"*{escape(node.name)}* · {build} · {escape(node.os_image or 'OS unknown')}\n"
        f"boot id `{escape(node.boot_id or '?')}`"
        + (f" · last boot {escape(node.rebooted)}" if node.rebooted else "")
        + f" · Ready since {escape(node.ready_since or '?')} · last sweep: {verdict}"
    )


def _action_blocks(action: PendingAction, needed: int) -> list[Block]:
    return [
        _section(
            status_line(action, needed)
            + f"\nasked by <@{action.requester}> · expires {_when(action.expires_at)}"
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
                        "text": cut(f"Approve {action.remediation}", 75),
                    },
                },
                {
                    "type": "button",
                    "action_id": f"reject:{action.id}",
                    "value": action.id,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                },
            ],
        },
    ]


def home_view(home: Home) -> dict[str, object]:
    """The `home` view for views.publish."""
    sweep = (
        f"Last sweep: {_when(home.last_sweep)}"
        + (
            " (" + ", ".join(f"{v} {k}" for k, v in home.sweep_summary.items()) + ")"
            if home.sweep_summary
            else ""
        )
        if home.last_sweep
        else "No sweep recorded yet."
    )
    blocks: list[Block] = [
        _header(f"winpod · cluster {home.cluster}"),
        _context(f"{sweep} · refreshed {_when(datetime.now(UTC))}"),
        {"type": "divider"},
        _header("Windows nodes"),
    ]
    if home.nodes_error:
        blocks.append(_section(f":warning: Could not list the nodes: {escape(home.nodes_error)}"))
    elif not home.nodes:
        blocks.append(_context("No Windows nodes in this cluster."))
    swept = home.last_sweep is not None
    blocks += [_node_block(n, swept) for n in home.nodes[:MAX_NODES]]
    blocks += _more(min(len(home.nodes), MAX_NODES), len(home.nodes), "nodes")
    blocks += [{"type": "divider"}, _header("Waiting for approval")]
    if not home.waiting:
        blocks.append(_context("Nothing is waiting for approval."))
    for action, needed in home.waiting[:MAX_ACTIONS]:
        blocks += _action_blocks(action, needed)
    blocks += _more(min(len(home.waiting), MAX_ACTIONS), len(home.waiting), "actions")
    blocks += [{"type": "divider"}, _header("Open RDP sessions")]
    if not home.sessions:
        blocks.append(_context("No RDP session is open."))
    blocks += [
        _section(
            f"*{escape(s.node)}* · for <@{s.requester}> · closes {_when(s.expires_at)} · "
            f"from {escape(', '.join(s.source_ranges))}"
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
                _context(f"More of cluster {escape(home.cluster)} than fits here."),
            ]
        blocks += part
    return {"type": "home", "callback_id": "winpod-home", "blocks": blocks}
