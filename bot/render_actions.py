"""Pending actions in Slack: status lines, thread posts, and editing the original message."""

from __future__ import annotations

import copy
from typing import Any

from bot.remediation import Reply, RunReport
from bot.render_slack import cut, escape
from bot.store import PendingAction
from handlers.registry import Plan, RemediationSpec

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
    if (action.result or {}).get("outcome") == "unknown":
        icon = ":grey_question:"
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


# --- what the remediation service's steps say in Slack ---------------------------------------
# (bot.remediation decides; these word it. Outside text is escaped or in code blocks.)


def _on(action: PendingAction) -> str:
    return f"*{action.remediation}* on `{escape(action.target)}`"


MAX_INLINE_PART = 3800  # one message of a script posted inline
MAX_COMMANDS = 1400  # the commands' code block, so the whole first block stays under 3,000
_EXTENSIONS = {"node-script": "ps1", "api": "json", "pod-exec": "txt", "instructions": "txt"}


def _where(action: PendingAction, plan: Plan, cluster: str) -> str:
    """The target and how winpod reaches it, in plain words."""
    address = str(plan.data.get("address") or "")
    place = f"{action.target_kind} `{escape(action.target)}`"
    if plan.kind == "node-script" and plan.runs_on:
        how = f"over WinRM to Hyper-V host {escape(plan.runs_on)} ({escape(address)})"
    elif plan.kind == "node-script":
        place += f" ({escape(address)})"
        how = f"over WinRM to {escape(address)}"
    elif plan.kind == "pod-exec":
        how = "by exec in the pod, through the Kubernetes API"
    elif plan.kind == "api":
        how = "through the Kubernetes API"
    else:
        how = "nothing runs: instructions to follow by hand"
    return f"{place} in cluster `{escape(cluster)}` — {how}"


def request_message(
    action: PendingAction,
    plan: Plan,
    spec: RemediationSpec,
    needed: int,
    expires_in: str,
    cluster: str,
) -> tuple[str, list[Block]]:
    """The request as approvers see it: first what they judge — target and transport, steps,
    impact and the commands that change state — then who must approve by when."""
    commands = "\n".join(plan.commands) or plan.what
    first = (
        f":memo: <@{action.requester}> asked for {_on(action)} ({action.risk} risk)\n"
        f"*Target:* {_where(action, plan, cluster)}\n"
        f"*Steps:* {escape(spec.does(action.target))}\n"
        f"*Impact:* {escape(spec.impact(action.target))}\n"
        "*Commands that change state:*\n"
        "```" + cut(escape(commands.replace("```", "'''")), MAX_COMMANDS) + "```"
    )
    attached = " The full script is attached in this thread." if plan.kind != "instructions" else ""
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(first, 2990)}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"It needs {needed} approver(s); it expires in {expires_in}."
                    + attached,
                }
            ],
        },
    ]
    text = (
        f":memo: <@{action.requester}> asked for {_on(action)} ({action.risk} risk): "
        f"{_where(action, plan, cluster)}; it needs {needed} approver(s)."
    )
    return text, blocks


def script_file(plan: Plan) -> tuple[str, str]:
    """(file name, title) of the plan's full text attached to the request's thread."""
    name = str(plan.data.get("script") or plan.remediation)
    return (
        f"{name}.{_EXTENSIONS.get(plan.kind, 'txt')}",
        f"{plan.remediation} on {plan.target}: exactly what will run",
    )


def script_attached_text(plan: Plan) -> str:
    return f"Exactly what will run for *{plan.remediation}* (the full text, as approved):"


def script_inline_texts(plan: Plan) -> list[str]:
    """When the file cannot be attached: the whole text in code blocks, as many messages as
    it takes (split between lines, each within Slack's 4,000 characters for one message)."""
    parts: list[str] = []
    for line in escape(plan.preview.replace("```", "'''")).splitlines():
        if parts and len(parts[-1]) + len(line) + 1 <= MAX_INLINE_PART:
            parts[-1] += "\n" + line
        else:
            parts.append(cut(line, MAX_INLINE_PART))
    return [
        f"Exactly what will run for *{plan.remediation}* ({n}/{len(parts)}):\n```{part}```"
        for n, part in enumerate(parts, 1)
    ]


def approved_text(action: PendingAction, by: str, needed: int) -> str:
    if len(set(action.approvals)) < needed:
        return (
            f":ballot_box_with_check: <@{by}> approved ({len(action.approvals)}/{needed}); "
            "it needs a second approver."
        )
    return f":white_check_mark: <@{by}> approved {_on(action)}."


def started_text(action: PendingAction) -> str:
    return f":gear: Approved by {people(action.approvals)}; running {_on(action)}…"


def queued_text(action: PendingAction, holder: str | None, busy: bool) -> str:
    if busy:
        return (
            f":hourglass: {_on(action)} is approved; winpod is busy, so it starts as soon as "
            "there is room. Nothing to do."
        )
    return (
        f":hourglass: {_on(action)} is approved and waits: another remediation "
        f"({escape(holder or 'unknown')}) is running there. It starts by itself when that ends."
    )


def rejected_text(action: PendingAction, by: str) -> str:
    return f":no_entry_sign: <@{by}> rejected {_on(action)}; nothing ran."


def changed_text(action: PendingAction, changes: list[str], fresh_offer: bool) -> str:
    return (
        f":warning: {_on(action)} did not run: the target changed since it was approved "
        f"({escape(', '.join(changes))}), so what was approved is no longer what would run."
        + (" Use the new button to request it again." if fresh_offer else " Request it again.")
    )


def finished_text(report: RunReport) -> str:
    action = report.action
    if report.dry_run:
        return (
            ":test_tube: *Dry run* (dry_run: true): this is exactly what would run, and "
            f"nothing did:\n{code(report.output)}"
        )
    if report.unknown:
        return (
            f":grey_question: {_on(action)}: outcome unknown — it started, and its result could "
            f"not be read: {escape(report.summary)}\nLook at the target before running it again."
        )
    if report.verification is None:
        retry = (
            " It may work when tried again (a network or API problem, not the fix itself)."
            if report.failure is not None and report.failure.retryable
            else ""
        )
        return f":red_circle: {_on(action)}: {escape(report.summary)}{retry}"
    verification = report.verification
    fixed = {True: "fixed", False: "still failing", None: "not verified"}[verification.fixed]
    evidence = "\n".join(f"• {escape(line)}" for line in verification.evidence[:5])
    return (
        f"{':large_green_circle:' if report.ok else ':red_circle:'} {_on(action)}: "
        f"{escape(report.summary)}\n"
        + (f"{code(report.output)}\n" if report.output else "")
        + f"*Verification — {fixed}:* {escape(verification.summary)}"
        + (f"\n{evidence}" if evidence else "")
    )


def expired_text(action: PendingAction) -> str:
    return f":alarm_clock: {_on(action)} expired before it was approved; nothing ran."


def cut_off_text(action: PendingAction) -> str:
    return (
        f":red_circle: {_on(action)}: outcome unknown: winpod stopped while it ran; check the "
        "target and diagnose again."
    )


def why_not(action: PendingAction) -> str:
    """Why a click on an action changes nothing."""
    name = f"*{action.remediation}*"
    return {
        "approved": f":hourglass: {name} is already approved; it runs as soon as its target "
        "is free. Nothing to do.",
        "running": f":gear: {name} is already running.",
        "succeeded": f"{name} already ran (succeeded); nothing to do.",
        "failed": f"{name} already ran and failed; diagnose again to retry.",
        "rejected": f"{name} was rejected by <@{action.rejected_by}>.",
        "expired": f":alarm_clock: {name} expired before it was approved; "
        "diagnose again to ask anew.",
    }.get(action.status, f"{name} is {action.status}.")


def reply_text(reply: Reply, approvers: str, needed: int) -> str | None:
    """The ephemeral answer to the person who clicked; None when the thread says it all."""
    action = reply.action
    if reply.kind == "approvers-unknown":
        return (
            ":warning: winpod could not check who may approve right now "
            f"({escape(reply.detail)}); nothing changed. Try again in a minute."
        )
    if reply.kind == "unknown" or action is None:
        return ":warning: This button no longer works; run the diagnosis again."
    name = f"*{action.remediation}*"
    texts = {
        "not-approver": f":no_entry: Only approvers can approve or reject {name}. "
        f"Approvers: {approvers}.",
        "already-approved": f":raised_hand: You already approved {name}; "
        + ("it needs a second, different approver." if needed > 1 else "it is on its way."),
        "needs-more": f"Approved. {name} needs a second approver.",
        "queued": queued_text(action, reply.detail or None, reply.detail == "busy"),
        "ended": why_not(action),
    }
    return texts.get(reply.kind)


def cannot_run_text(remediation: str, target: str, why: str) -> str:
    return f":no_entry: *{remediation}* on `{escape(target)}` cannot run: {escape(why)}"


def fresh_request_blocks(action: PendingAction, offer_id: str) -> list[Block]:
    """A new button in the thread, for a request refused because its target changed."""
    return [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"remediate:{action.remediation}",
                    "value": offer_id,
                    "text": {
                        "type": "plain_text",
                        "text": cut(f"Request {action.remediation} again", 75),
                    },
                }
            ],
        }
    ]


def rdp_expired_text(node: str) -> str:
    return f":lock: RDP to `{escape(node)}` expired and was closed."
