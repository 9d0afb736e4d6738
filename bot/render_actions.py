"""Pending actions in Slack: status lines, thread posts, and editing the original message.

Every text here is `Mrkdwn`: templates winpod wrote, with every value from outside (targets,
summaries, evidence, script output, error texts) entering escaped or inside a code block."""

from __future__ import annotations

import copy
from typing import Any

from bot.remediation import Reply, RunReport
from bot.render_slack import cut
from bot.render_text import RISK_WORDS
from bot.slack_text import Mrkdwn, code_block, mention
from bot.slack_text import code as inline
from bot.store import PendingAction
from handlers.i18n import N_, _, ngettext
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
# What an action's status and risk read as (the ids stay in the store and the JSON).
_KIND_WORD = {"node": N_("node"), "pod": N_("pod"), "cluster": N_("cluster")}
_STATUS_WORD = {
    "pending": N_("pending"),
    "approved": N_("approved"),
    "running": N_("running"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "rejected": N_("rejected"),
    "expired": N_("expired"),
}


def people(users: tuple[str, ...] | list[str]) -> Mrkdwn:
    return Mrkdwn(", ").join(mention(u) for u in users) or Mrkdwn(_("nobody"))


def code(text: str) -> Mrkdwn:
    """A Slack code block, cut to fit, that nothing inside can close."""
    return code_block(cut(text, MAX_CODE))


def status_line(action: PendingAction, needed: int) -> Mrkdwn:
    icon = _STATUS_ICON.get(action.status, ":grey_question:")
    if (action.result or {}).get("outcome") == "unknown":
        icon = ":grey_question:"
    head = Mrkdwn(icon + " " + _("{remediation} on {target}: {status}")).format(
        remediation=Mrkdwn("*{}*").format(action.remediation),
        target=inline(action.target),
        status=_(_STATUS_WORD.get(action.status, action.status)),
    )
    if action.status in ("pending", "approved"):
        head += Mrkdwn(_(" · approvals {count}/{needed} ({people})")).format(
            count=len(action.approvals), needed=needed, people=people(action.approvals)
        )
        if len(action.approvals) < needed:
            head += Mrkdwn(
                _(" · needs a second approver")
                if needed - len(action.approvals) == 1 and (needed > 1)
                else _(" · needs an approver")
            )
    elif action.status == "rejected":
        head += Mrkdwn(_(" by {person}")).format(
            person=mention(action.rejected_by) if action.rejected_by else _("someone")
        )
    elif action.result and action.result.get("summary"):
        head += Mrkdwn(" · {}").format(str(action.result["summary"]))
    return _fit(head, 2900)


def _fit(text: Mrkdwn, limit: int) -> Mrkdwn:
    """`text` within `limit` characters; the cut is made on the escaped text, so it may only
    drop whole entities (cut() stops before a partial one)."""
    return Mrkdwn(cut(str(text), limit))


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
                            "text": cut(
                                _("Approve {remediation}").format(remediation=action.remediation),
                                75,
                            ),
                        }
                elements.append(
                    {
                        "type": "button",
                        "action_id": f"reject:{action.id}",
                        "value": action.id,
                        "text": {"type": "plain_text", "text": _("Reject")},
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


def _on(action: PendingAction) -> Mrkdwn:
    return Mrkdwn(_("{remediation} on {target}")).format(
        remediation=Mrkdwn("*{}*").format(action.remediation), target=inline(action.target)
    )


MAX_INLINE_PART = 3800  # one message of a script posted inline
MAX_COMMANDS = 1400  # the commands' code block, so the whole first block stays under 3,000
MAX_PLAN = 600  # the plan in words (a node's affected pods, say)
_EXTENSIONS = {"node-script": "ps1", "api": "json", "pod-exec": "txt", "instructions": "txt"}


def _where(action: PendingAction, plan: Plan, cluster: str) -> Mrkdwn:
    """The target and how winpod reaches it, in plain words."""
    address = str(plan.data.get("address") or "")
    kind = _(_KIND_WORD.get(action.target_kind, action.target_kind))
    place = Mrkdwn("{} {}").format(kind, inline(action.target))
    if plan.kind == "node-script" and plan.runs_on:
        how = Mrkdwn(_("over WinRM to Hyper-V host {host} ({address})")).format(
            host=plan.runs_on, address=address
        )
    elif plan.kind == "node-script" and plan.data.get("transport") == "hostprocess":
        how = Mrkdwn(_("in a HostProcess pod on {node}")).format(
            node=str(plan.data.get("node") or "")
        )
    elif plan.kind == "node-script":
        place += Mrkdwn(" ({})").format(address)
        how = Mrkdwn(_("over WinRM to {address}")).format(address=address)
    elif plan.kind == "pod-exec":
        how = Mrkdwn(_("by exec in the pod, through the Kubernetes API"))
    elif plan.kind == "api":
        how = Mrkdwn(_("through the Kubernetes API"))
    else:
        how = Mrkdwn(_("nothing runs: instructions to follow by hand"))
    return Mrkdwn(_("{target} in cluster {cluster} — {how}")).format(
        target=place, cluster=inline(cluster), how=how
    )


def request_message(
    action: PendingAction,
    plan: Plan,
    spec: RemediationSpec,
    needed: int,
    expires_in: str,
    cluster: str,
) -> tuple[Mrkdwn, list[Block]]:
    """The request as approvers see it: first what they judge — target and transport, steps,
    impact and the commands that change state — then who must approve by when."""
    commands = "\n".join(plan.commands) or plan.what
    first = Mrkdwn(
        _(
            ":memo: {requester} asked for {action} ({risk} risk)\n*Target:* {target}\n"
            "*Steps:* {steps}\n*Impact:* {impact}\n*Plan:* {plan}\n"
            "*Commands that change state:*\n{commands}"
        )
    ).format(
        requester=mention(action.requester),
        action=_on(action),
        risk=_(RISK_WORDS.get(action.risk, action.risk)),
        target=_where(action, plan, cluster),
        steps=spec.does(action.target),
        impact=spec.impact(action.target),
        plan=cut(plan.what, MAX_PLAN),
        commands=code_block(cut(commands, MAX_COMMANDS)),
    )
    attached = (
        " " + _("The full script is attached in this thread.")
        if plan.kind != "instructions"
        else ""
    )
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(first, 2990)}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": Mrkdwn(
                        ngettext(
                            "It needs {count} approver; it expires in {expires_in}.",
                            "It needs {count} approvers; it expires in {expires_in}.",
                            needed,
                        )
                    ).format(count=needed, expires_in=expires_in)
                    + attached,
                }
            ],
        },
    ]
    text = Mrkdwn(
        ngettext(
            ":memo: {requester} asked for {action} ({risk} risk): {target}; it needs {count} "
            "approver.",
            ":memo: {requester} asked for {action} ({risk} risk): {target}; it needs {count} "
            "approvers.",
            needed,
        )
    ).format(
        requester=mention(action.requester),
        action=_on(action),
        risk=_(RISK_WORDS.get(action.risk, action.risk)),
        target=_where(action, plan, cluster),
        count=needed,
    )
    return text, blocks


def script_file(plan: Plan) -> tuple[str, str]:
    """(file name, title) of the plan's full text attached to the request's thread."""
    name = str(plan.data.get("script") or plan.remediation)
    return (
        f"{name}.{_EXTENSIONS.get(plan.kind, 'txt')}",
        _("{remediation} on {target}: exactly what will run").format(
            remediation=plan.remediation, target=plan.target
        ),
    )


def script_attached_text(plan: Plan) -> Mrkdwn:
    return Mrkdwn(
        _("Exactly what will run for {remediation} (the full text, as approved):")
    ).format(remediation=Mrkdwn("*{}*").format(plan.remediation))


def script_inline_texts(plan: Plan) -> list[Mrkdwn]:
    """When the file cannot be attached: the whole text in code blocks, as many messages as
    it takes (split between lines, each within Slack's 4,000 characters for one message)."""
    parts: list[str] = []
    for line in plan.preview.splitlines():
        if parts and len(parts[-1]) + len(line) + 1 <= MAX_INLINE_PART:
            parts[-1] += "\n" + line
        else:
            parts.append(cut(line, MAX_INLINE_PART))
    return [
        Mrkdwn(_("Exactly what will run for {remediation} ({part}/{parts}):") + "\n").format(
            remediation=Mrkdwn("*{}*").format(plan.remediation), part=n, parts=len(parts)
        )
        + code_block(part)
        for n, part in enumerate(parts, 1)
    ]


def approved_text(action: PendingAction, by: str, needed: int) -> Mrkdwn:
    if len(set(action.approvals)) < needed:
        return Mrkdwn(
            _(
                ":ballot_box_with_check: {person} approved ({count}/{needed}); it needs a second "
                "approver."
            )
        ).format(person=mention(by), count=len(action.approvals), needed=needed)
    return Mrkdwn(_(":white_check_mark: {person} approved {action}.")).format(
        person=mention(by), action=_on(action)
    )


def started_text(action: PendingAction) -> Mrkdwn:
    return Mrkdwn(_(":gear: Approved by {people}; running {action}…")).format(
        people=people(action.approvals), action=_on(action)
    )


def queued_text(action: PendingAction, holder: str | None, busy: bool) -> Mrkdwn:
    if busy:
        return Mrkdwn(
            _(
                ":hourglass: {action} is approved; winpod is busy, so it starts as soon as "
                "there is room. Nothing to do."
            )
        ).format(action=_on(action))
    return Mrkdwn(
        _(
            ":hourglass: {action} is approved and waits: another remediation ({holder}) is "
            "running there. It starts by itself when that ends."
        )
    ).format(action=_on(action), holder=holder or _("unknown"))


def rejected_text(action: PendingAction, by: str) -> Mrkdwn:
    return Mrkdwn(_(":no_entry_sign: {person} rejected {action}; nothing ran.")).format(
        person=mention(by), action=_on(action)
    )


def changed_text(action: PendingAction, changes: list[str], fresh_offer: bool) -> Mrkdwn:
    return Mrkdwn(
        _(
            ":warning: {action} did not run: the target changed since it was approved "
            "({changes}), so what was approved is no longer what would run. {next}"
        )
    ).format(
        action=_on(action),
        changes=", ".join(changes),
        next=_("Use the new button to request it again.")
        if fresh_offer
        else _("Request it again."),
    )


def finished_text(report: RunReport) -> Mrkdwn:
    action = report.action
    if report.dry_run:
        return Mrkdwn(
            _(
                ":test_tube: *Dry run* (dry_run: true): this is exactly what would run, and "
                "nothing did:"
            )
            + "\n{}"
        ).format(code(report.output))
    if report.unknown:
        return Mrkdwn(
            _(
                ":grey_question: {action}: outcome unknown — it started, and its result could "
                "not be read: {summary}\nLook at the target before running it again."
            )
        ).format(action=_on(action), summary=report.summary)
    if report.verification is None:
        retry = (
            " " + _("It may work when tried again (a network or API problem, not the fix itself).")
            if report.failure is not None and report.failure.retryable
            else ""
        )
        return Mrkdwn(":red_circle: {}: {}{}").format(_on(action), report.summary, retry)
    verification = report.verification
    fixed = {True: _("fixed"), False: _("still failing"), None: _("not verified")}[
        verification.fixed
    ]
    text = Mrkdwn("{} {}: {}\n").format(
        Mrkdwn(":large_green_circle:" if report.ok else ":red_circle:"),
        _on(action),
        report.summary,
    )
    if report.output:
        text += code(report.output) + Mrkdwn("\n")
    text += Mrkdwn(_("*Verification — {verdict}:* {summary}")).format(
        verdict=fixed, summary=verification.summary
    )
    for line in verification.evidence[:5]:
        text += Mrkdwn("\n• {}").format(line)
    return text


def expired_text(action: PendingAction) -> Mrkdwn:
    return Mrkdwn(_(":alarm_clock: {action} expired before it was approved; nothing ran.")).format(
        action=_on(action)
    )


def cut_off_text(action: PendingAction) -> Mrkdwn:
    return Mrkdwn(
        _(
            ":red_circle: {action}: outcome unknown: winpod stopped while it ran; check the "
            "target and diagnose again."
        )
    ).format(action=_on(action))


def why_not(action: PendingAction) -> Mrkdwn:
    """Why a click on an action changes nothing."""
    name = Mrkdwn("*{}*").format(action.remediation)
    templates = {
        "approved": N_(
            ":hourglass: {action} is already approved; it runs as soon as its target is free. "
            "Nothing to do."
        ),
        "running": N_(":gear: {action} is already running."),
        "succeeded": N_("{action} already ran (succeeded); nothing to do."),
        "failed": N_("{action} already ran and failed; diagnose again to retry."),
        "expired": N_(
            ":alarm_clock: {action} expired before it was approved; diagnose again to ask anew."
        ),
    }
    if action.status == "rejected":
        return Mrkdwn(_("{action} was rejected by {person}.")).format(
            action=name, person=mention(action.rejected_by or "")
        )
    if action.status not in templates:
        return Mrkdwn(_("{action} is {status}.")).format(
            action=name, status=_(_STATUS_WORD.get(action.status, action.status))
        )
    return Mrkdwn(_(templates[action.status])).format(action=name)


def reply_text(reply: Reply, approvers: Mrkdwn, needed: int) -> Mrkdwn | None:
    """The ephemeral answer to the person who clicked; None when the thread says it all."""
    action = reply.action
    if reply.kind == "approvers-unknown":
        return Mrkdwn(
            _(
                ":warning: winpod could not check who may approve right now ({reason}); nothing "
                "changed. Try again in a minute."
            )
        ).format(reason=reply.detail)
    if reply.kind == "unknown" or action is None:
        return Mrkdwn(_(":warning: This button no longer works; run the diagnosis again."))
    name = Mrkdwn("*{}*").format(action.remediation)
    if reply.kind == "not-approver":
        return Mrkdwn(
            _(":no_entry: Only approvers can approve or reject {action}. Approvers: {people}.")
        ).format(action=name, people=approvers)
    if reply.kind == "already-approved":
        return Mrkdwn(_(":raised_hand: You already approved {action}; {next}")).format(
            action=name,
            next=_("it needs a second, different approver.")
            if needed > 1
            else _("it is on its way."),
        )
    if reply.kind == "needs-more":
        return Mrkdwn(_("Approved. {action} needs a second approver.")).format(action=name)
    if reply.kind == "queued":
        return queued_text(action, reply.detail or None, reply.detail == "busy")
    if reply.kind == "ended":
        return why_not(action)
    return None


def cannot_run_text(remediation: str, target: str, why: str) -> Mrkdwn:
    return Mrkdwn(_(":no_entry: {remediation} on {target} cannot run: {why}")).format(
        remediation=Mrkdwn("*{}*").format(remediation), target=inline(target), why=why
    )


def not_approver_text(remediation: str, approvers: Mrkdwn) -> Mrkdwn:
    return Mrkdwn(
        _(":no_entry: Only approvers can approve {remediation}. Approvers: {people}.")
    ).format(remediation=Mrkdwn("*{}*").format(remediation), people=approvers)


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
                        "text": cut(
                            _("Request {remediation} again").format(remediation=action.remediation),
                            75,
                        ),
                    },
                }
            ],
        }
    ]


def rdp_expired_text(node: str) -> Mrkdwn:
    return Mrkdwn(_(":lock: RDP to {node} expired and was closed.")).format(node=inline(node))
