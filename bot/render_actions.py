"""Pending actions in Slack: status lines, thread posts, and editing the original message."""

from __future__ import annotations

import copy
from typing import Any

from bot.render_slack import cut, escape
from bot.store import PendingAction

Block = dict[str, Any]
MAX_CODE = 2600  # a code block inside one 3,000-character text

_STATUS_ICON = {
    "pending": ":hourglass_flowing_sand:",
    "approved": ":white_check_mark:",
    "running": ":gear:",
    "succeeded": ":large_green_circle:",
    "failed": ":red_circle:",
    "rejected": ":no_entry_sign:",
    "expired": ":alarm_clock:",
}


def people(users: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"<@{u}>" for u in users) or "nobody"


def code(text: str) -> str:
    """A Slack code block, cut to fit, with backticks that would end it defused."""
    return "```" + cut(escape(text.replace("```", "'''")), MAX_CODE) + "```"


def status_line(action: PendingAction, needed: int) -> str:
    icon = _STATUS_ICON.get(action.status, ":grey_question:")
    head = f"{icon} *{action.remediation}* on `{escape(action.target)}`: {action.status}"
    if action.status in ("pending", "approved"):
        head += f" · approvals {len(action.approvals)}/{needed} ({people(action.approvals)})"
        if len(action.approvals) < needed:
            head += (
                " · needs a second approver"
                if needed - len(action.approvals) == 1 and (needed > 1)
                else " · needs an approver"
            )
    elif action.status == "rejected":
        head += f" by <@{action.rejected_by}>"
    elif action.result and action.result.get("summary"):
        head += f" · {escape(str(action.result['summary']))}"
    return cut(head, 2900)


def with_action_status(
    blocks: list[Block], offer_id: str, action: PendingAction, needed: int
) -> list[Block]:
    """The original message with this action's status under its button; a finished or
    running action loses its buttons, an open one gets a Reject button beside Approve."""
    result: list[Block] = []
    status_id = f"status-{offer_id}"
    open_action = action.status in ("pending", "approved")
    for block in copy.deepcopy(blocks):
        if block.get("block_id") == status_id:
            continue
        if block.get("type") == "actions":
            elements = [
                e
                for e in block.get("elements", [])
                if e.get("value") not in (offer_id, action.id)
                or (open_action and e.get("value") == offer_id)
            ]
            mine = any(e.get("value") == offer_id for e in block.get("elements", []))
            if open_action and mine:
                for element in elements:
                    if element.get("value") == offer_id:
                        element["text"] = {
                            "type": "plain_text",
                            "emoji": True,
                            "text": cut(f"Approve {action.remediation}", 75),
                        }
                elements.append(
                    {
                        "type": "button",
                        "action_id": f"reject:{action.id}",
                        "value": action.id,
                        "text": {"type": "plain_text", "text": "Reject"},
                    }
                )
            if elements:
                block["elements"] = elements
                result.append(block)
            if mine:
                result.append(
                    {
                        "type": "context",
                        "block_id": status_id,
                        "elements": [{"type": "mrkdwn", "text": status_line(action, needed)}],
                    }
                )
            continue
        result.append(block)
    if not any(b.get("block_id") == status_id for b in result):
        result.append(
            {
                "type": "context",
                "block_id": status_id,
                "elements": [{"type": "mrkdwn", "text": status_line(action, needed)}],
            }
        )
    return result[:50]
