"""Diagnoses and bot replies as Slack Block Kit, cut to fit Slack's limits instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.render_text import RISK_WORDS
from bot.slack_text import Mrkdwn, code, mention
from bot.slack_text import escape as escape  # noqa: PLC0414 - render_actions imports it here
from handlers.i18n import _, ngettext
from handlers.model import SEVERITY_ORDER, Diagnosis, Finding, RemediationRef

Block = dict[str, Any]

# Slack's documented limits (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_TEXT = 3000  # a section's text, and any one text object
MAX_HEADER = 150
MAX_BUTTON_LABEL = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
# Slack also refuses a message whose blocks hold more than about 12,000 characters of text in
# all (`msg_blocks_too_long`, undocumented: slackapi/bolt-js#2509), so stay well below that.
MESSAGE_TEXT_BUDGET = 9000
DOCS_BUDGET = 600
OK_LIST_BUDGET = 1000

_MARKERS = {"error": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
_OK_MARKER = ":white_check_mark:"
_UNKNOWN_MARKER = ":grey_question:"
_BUTTON_STYLES = {"high": "danger", "low": "primary"}
_ENTITIES = ("&amp;", "&lt;", "&gt;")


@dataclass(frozen=True)
class Detail:
    """How much of one finding a message shows, in characters."""

    section: int
    evidence: int
    evidence_line: int


# Evidence is the bulk of a finding; one finding's evidence must not crowd out the others.
FULL = Detail(section=MAX_TEXT, evidence=1500, evidence_line=500)
# When the findings do not all fit in full, showing more of them briefly beats a few in full.
BRIEF = Detail(section=600, evidence=500, evidence_line=200)


@dataclass(frozen=True)
class Swept:
    """What a sweep alert's header says where a diagnosis says how long it took: when the node
    last booted (its latest `Rebooted` event) and the cluster (kube context) swept."""

    booted_at: datetime | None
    cluster: str | None


@dataclass(frozen=True)
class _Offer:
    """One remediation as this message offers it; `offer_id` None means no button here."""

    ref: RemediationRef
    offer_id: str | None
    action_id: str


def shorten(text: str, limit: int) -> str:
    """`text`, or its start and "…" in at most `limit` characters (for labels and headers);
    Slack text stays Slack text (a cut never splits an escape such as `&amp;`)."""
    if len(text) <= limit:
        return text
    return _same_kind(text, text[: _before_partial_entity(text, limit - 1)] + "…")


def cut(text: str, limit: int) -> str:
    """`text`, or its start and a note saying how much was cut, in at most `limit` characters."""
    if len(text) <= limit:
        return text
    # The note's number is at most len(text), so its width bounds the note's length.
    keep = limit - len(_cut_note(len(text)))
    if keep <= 0:
        return shorten(text, limit)
    keep = _before_partial_entity(text, keep)
    return _same_kind(text, text[:keep] + _cut_note(len(text) - keep))


def _same_kind(original: str, cut_text: str) -> str:
    return Mrkdwn(cut_text) if isinstance(original, Mrkdwn) else cut_text


def _cut_note(missing: int) -> str:
    return ngettext(
        "… (cut: {count} more character)", "… (cut: {count} more characters)", missing
    ).format(count=missing)


def _before_partial_entity(text: str, keep: int) -> int:
    """Move a cut that would split an escape such as `&amp;` to just before it."""
    start = text.rfind("&", max(0, keep - 4), keep)
    if start != -1 and text.startswith(_ENTITIES, start) and text.find(";", start) >= keep:
        return start
    return keep


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=cut(text, MAX_TEXT))


def _section(text: str) -> Block:
    return SectionBlock(text=_mrkdwn(text)).to_dict()


def _context(*texts: str) -> Block:
    return ContextBlock(elements=[_mrkdwn(text) for text in texts]).to_dict()


def _text_size(value: Any) -> int:
    """Characters of text in blocks, as Slack counts them against its per-message limit."""
    if isinstance(value, list):
        return sum(_text_size(item) for item in value)
    if isinstance(value, dict):
        return sum(
            len(item) if key == "text" and isinstance(item, str) else _text_size(item)
            for key, item in value.items()
        )
    return 0


def diagnosis_message(
    diagnosis: Diagnosis,
    offer_ids: dict[tuple[str, str], str],
    impacts: dict[str, str],
    cluster: str | None = None,
    swept: Swept | None = None,
) -> tuple[str, list[Block]]:
    """The fallback text and blocks of one diagnosis: most severe findings first, one button per
    offered remediation (`offer_ids` maps (remediation id, target) to the caller's offer id);
    `swept` when a sweep found it (an alert)."""
    findings = sorted(diagnosis.findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 2))
    problems = [f for f in findings if f.severity != "ok"]
    fine = [f for f in findings if f.severity == "ok"]
    head = [
        _header(diagnosis, cluster),
        _context(_intro(diagnosis, swept)),
        DividerBlock().to_dict(),
    ]
    if fine:
        tail = [_ok_block(fine)]
    elif not problems:
        tail = [_context(_("No check reported anything."))]
    else:
        tail = []
    plans = _plan_offers(problems, offer_ids)
    blocks = MAX_BLOCKS - len(head) - len(tail)
    text = MESSAGE_TEXT_BUDGET - _text_size(head) - _text_size(tail)
    for detail in (FULL, BRIEF):
        rendered = [
            _finding_blocks(finding, offers, impacts, detail)
            for finding, offers in zip(problems, plans, strict=True)
        ]
        if _fits(rendered, blocks=blocks, text=text):
            return _fallback(diagnosis), head + [b for r in rendered for b in r] + tail
    shown, note = _fit(rendered, blocks=blocks, text=text, command=_full_command(diagnosis))
    return _fallback(diagnosis), head + shown + tail + [note]


def _fallback(diagnosis: Diagnosis) -> str:
    errors = sum(1 for f in diagnosis.findings if f.severity == "error")
    warnings = sum(1 for f in diagnosis.findings if f.severity == "warning")
    summary = _("{target}: {errors}, {warnings}").format(
        target=diagnosis.target.ref,
        errors=ngettext("{count} error", "{count} errors", errors).format(count=errors),
        warnings=ngettext("{count} warning", "{count} warnings", warnings).format(count=warnings),
    )
    return cut(escape(summary), MAX_TEXT)


def _header(diagnosis: Diagnosis, cluster: str | None = None) -> Block:
    """`Pod web/iis-0 on akswin1 · build 17763`, after `[cluster] ` when winpod serves many."""
    target, node = diagnosis.target, diagnosis.node
    suffix = ""
    if target.kind == "Pod":
        suffix = _(" on {node}").format(node=target.node) if target.node else _(" (not scheduled)")
    if node is not None and node.build:
        suffix += _(" · build {build}").format(build=node.build)
    prefix = f"{target.kind} " if cluster is None else f"[{cluster}] {target.kind} "
    # A long name gives way first, so the node and build stay readable.
    room = MAX_HEADER - len(prefix) - len(suffix)
    ref = shorten(target.ref, room) if room >= 20 else target.ref
    text = shorten(prefix + ref + suffix, MAX_HEADER)
    return HeaderBlock(text=PlainTextObject(text=text)).to_dict()


def _intro(diagnosis: Diagnosis, swept: Swept | None) -> str:
    target, node = diagnosis.target, diagnosis.node
    parts: list[str] = []
    state = " / ".join(escape(p) for p in (target.phase, target.reason) if p)
    if state:
        parts.append(f"*{state}*")
    if node is not None:
        image = escape(node.os_image or _("unknown OS"))
        parts.append(f"{image} ({escape(node.kernel_version)})" if node.kernel_version else image)
        parts.append(_("boot ID {boot_id}").format(boot_id=f"`{escape(node.boot_id or '?')}`"))
    if swept is None:
        parts.append(_("diagnosed in {ms} ms").format(ms=diagnosis.duration_ms))
    else:
        if swept.booted_at is not None:
            parts.append(_("rebooted {time} UTC").format(time=f"{swept.booted_at:%Y-%m-%d %H:%M}"))
        parts.append(_("found by the sweep"))
        if swept.cluster:
            parts.append(_("cluster {name}").format(name=f"`{escape(swept.cluster)}`"))
    return " · ".join(parts)


def sweep_alert_text(node: str, fallback: str, cluster: str | None = None) -> str:
    """A sweep alert's notification text; `fallback` is `diagnosis_message`'s (escaped);
    `cluster` when winpod serves several."""
    where = (
        Mrkdwn("{}").format(node)
        if cluster is None
        else Mrkdwn(_("{node} in cluster {cluster}")).format(node=node, cluster=cluster)
    )
    return Mrkdwn(
        _(":rotating_light: {node} rebooted and DNS fails in its pods — {summary}")
    ).format(node=where, summary=Mrkdwn(fallback))


def _ok_block(fine: Sequence[Finding]) -> Block:
    titles = " · ".join(escape(f.title) for f in fine)
    return _context(cut(f"{_OK_MARKER} {titles}", OK_LIST_BUDGET))


def _plan_offers(
    findings: Sequence[Finding], offer_ids: dict[tuple[str, str], str]
) -> list[list[_Offer]]:
    """Each (id, target) once, on the first finding offering it; action ids unique per message."""
    seen: set[tuple[str, str]] = set()
    uses: Counter[str] = Counter()
    plans: list[list[_Offer]] = []
    for finding in findings:
        offers: list[_Offer] = []
        for ref in finding.remediations:
            key = (ref.id, ref.target)
            if key in seen:
                continue
            seen.add(key)
            uses[ref.id] += 1
            action_id = f"remediate:{ref.id}" + (f":{uses[ref.id]}" if uses[ref.id] > 1 else "")
            offer_id = offer_ids.get(key)
            buttons = sum(1 for o in offers if o.offer_id is not None)
            if offer_id is not None and (
                len(offer_id) > MAX_BUTTON_VALUE or buttons >= MAX_ACTIONS_ELEMENTS
            ):
                offer_id = None
            offers.append(_Offer(ref, offer_id, action_id))
        plans.append(offers)
    return plans


def _finding_blocks(
    finding: Finding, offers: Sequence[_Offer], impacts: dict[str, str], detail: Detail
) -> list[Block]:
    marker = _MARKERS.get(finding.severity, _UNKNOWN_MARKER)
    text = f"{marker} *{escape(finding.title)}*  `{escape(finding.check)}`"
    if finding.summary:
        text += "\n" + escape(finding.summary)
    blocks = [_section(cut(text, detail.section))]
    details = [
        _evidence_text(finding.evidence, detail),
        _docs_text(finding.docs),
        " · ".join(
            _("{remediation} on {target} (not offerable here)").format(
                remediation=f"`{escape(o.ref.id)}`", target=escape(o.ref.target)
            )
            for o in offers
            if o.offer_id is None
        ),
    ]
    if any(details):
        blocks.append(_context(*(d for d in details if d)))
    buttons = [
        _button(o.ref, o.action_id, o.offer_id, impacts) for o in offers if o.offer_id is not None
    ]
    if buttons:
        blocks.append(ActionsBlock(elements=buttons).to_dict())
    return blocks


def _evidence_text(evidence: Sequence[str], detail: Detail) -> str:
    """Evidence as bullets within the detail's budget; what does not fit is cut and counted."""
    room = detail.evidence - 60  # keeps room for the "… N more evidence lines" line
    lines: list[str] = []
    for line in evidence:
        bullet = cut("• " + escape(line), detail.evidence_line)
        if len(bullet) > room:
            if room >= 80:
                lines.append(cut(bullet, room))
            break
        lines.append(bullet)
        room -= len(bullet) + 1
    hidden = len(evidence) - len(lines)
    if hidden:
        lines.append(
            ngettext(
                "… {count} more evidence line not shown",
                "… {count} more evidence lines not shown",
                hidden,
            ).format(count=hidden)
        )
    return "\n".join(lines)


def _docs_text(docs: Sequence[str]) -> str:
    links: list[str] = []
    used = 0
    for number, url in enumerate(docs, start=1):
        label = _("docs") if len(docs) == 1 else _("docs {number}").format(number=number)
        if url.startswith(("https://", "http://")):
            link = f"<{escape(url).replace('|', '%7C')}|{label}>"
        else:
            link = escape(url)
        if used + len(link) > DOCS_BUDGET:
            more = len(docs) - number + 1
            links.append(
                ngettext("… {count} more link", "… {count} more links", more).format(count=more)
            )
            break
        links.append(link)
        used += len(link) + 3
    return " · ".join(links)


def _button(
    ref: RemediationRef, action_id: str, offer_id: str, impacts: dict[str, str]
) -> ButtonElement:
    # Anything not known to be low risk asks for confirmation: the safe side.
    confirm = _confirm(ref, impacts) if ref.risk != "low" else None
    return ButtonElement(
        text=PlainTextObject(
            text=shorten(
                _("Run {remediation} on {target}").format(remediation=ref.id, target=ref.target),
                MAX_BUTTON_LABEL,
            )
        ),
        action_id=action_id,
        value=offer_id,
        style=_BUTTON_STYLES.get(ref.risk),
        confirm=confirm,
    )


def _confirm(ref: RemediationRef, impacts: dict[str, str]) -> ConfirmObject:
    impact = impacts.get(ref.id) or _(
        "{remediation} on {target} is a {risk}-risk change. This opens an approval "
        "request; nothing runs until it is approved."
    ).format(remediation=ref.id, target=ref.target, risk=_(RISK_WORDS.get(ref.risk, ref.risk)))
    return ConfirmObject(
        title=PlainTextObject(
            text=shorten(_("Run {remediation}?").format(remediation=ref.id), MAX_CONFIRM_TITLE)
        ),
        text=PlainTextObject(text=cut(impact, MAX_CONFIRM_TEXT)),
        confirm=PlainTextObject(text=_("Request approval")),
        deny=PlainTextObject(text=_("Cancel")),
        style="danger" if ref.risk == "high" else None,
    )


def _full_command(diagnosis: Diagnosis) -> str:
    target = diagnosis.target
    verb = "diagnose" if target.kind == "Pod" else "node"
    return f"winpod {verb} {target.ref}"


def _fits(rendered: Sequence[list[Block]], *, blocks: int, text: int) -> bool:
    return sum(len(r) for r in rendered) <= blocks and _text_size(rendered) <= text


def _fit(
    rendered: Sequence[list[Block]], *, blocks: int, text: int, command: str
) -> tuple[list[Block], Block]:
    """The items' blocks that fit, in order, and the note counting the items that do not."""
    blocks -= 1
    # The note's number is at most len(rendered), so this bounds the note's size.
    text -= _text_size(_more_note(len(rendered), command))
    shown: list[Block] = []
    count = 0
    for finding_blocks in rendered:
        size = _text_size(finding_blocks)
        if len(finding_blocks) > blocks or size > text:
            break
        shown.extend(finding_blocks)
        blocks -= len(finding_blocks)
        text -= size
        count += 1
    return shown, _more_note(len(rendered) - count, command)


def _more_note(hidden: int, command: str) -> Block:
    """What was left out: findings (with the command that shows them all), or commands."""
    if command:
        text = ngettext(
            "… {count} more finding not shown; run {command} for all",
            "… {count} more findings not shown; run {command} for all",
            hidden,
        ).format(count=hidden, command=f"`{escape(command)}`")
    else:
        text = ngettext(
            "… {count} more command not shown", "… {count} more commands not shown", hidden
        ).format(count=hidden)
    return _context(text)


def in_cluster(text: str, cluster: str | None) -> str:
    """`text` led by `[cluster]` when winpod serves several clusters (as headers are)."""
    return text if cluster is None else f"[{cluster}] {text}"


def progress_message(
    target_ref: str, node: str | None, cluster: str | None = None
) -> tuple[str, list[Block]]:
    """The first post of a diagnosis, edited into the result when it is done."""
    what = (
        _("Diagnosing {target} on {node}…").format(target=target_ref, node=node)
        if node
        else _("Diagnosing {target}…").format(target=target_ref)
    )
    text = cut(escape(in_cluster(what, cluster)), MAX_TEXT)
    return text, [_section(f":hourglass_flowing_sand: {text}")]


def error_message(text: str) -> tuple[str, list[Block]]:
    """A diagnosis that could not be done, with the reason."""
    escaped = cut(escape(text), MAX_TEXT)
    return escaped, [_section(f":x: {escaped}")]


def help_message(commands: Sequence[tuple[str, str, str]]) -> tuple[str, list[Block]]:
    """Every command as (usage, description, example), one section each."""
    header = HeaderBlock(text=PlainTextObject(text=_("winpod commands"))).to_dict()
    sections: list[list[Block]] = []
    for usage, description, example in commands:
        text = f"`{escape(usage)}`\n{escape(_(description))}"
        if example:
            text += "\n" + _("_e.g._ {example}").format(example=f"`{escape(example)}`")
        sections.append([_section(text)])
    blocks, text_room = MAX_BLOCKS - 1, MESSAGE_TEXT_BUDGET - _text_size(header)
    if _fits(sections, blocks=blocks, text=text_room):
        body = [section for [section] in sections]
    else:
        shown, note = _fit(sections, blocks=blocks, text=text_room, command="")
        body = [*shown, note]
    fallback = _("winpod commands: {commands}").format(
        commands=", ".join(usage for usage, _description, _example in commands)
    )
    return cut(escape(fallback), MAX_TEXT), [header, *body]


def usage_error(problem: str, right_form: str) -> str:
    """The ephemeral reply to a malformed command: what is wrong and the form that works."""
    text = _(":warning: {problem}\nUse {form} (`/winpod help` lists every command).").format(
        problem=escape(problem), form=f"`{escape(right_form)}`"
    )
    return cut(text, MAX_TEXT)


def queued_note(position: int) -> str:
    """Where a diagnosis waits while others run; `position` 1 is next in line."""
    if position <= 1:
        return _(
            ":hourglass: Queued: next in line, starts as soon as a running diagnosis finishes."
        )
    ahead = position - 1
    return ngettext(
        ":hourglass: Queued: {count} diagnosis ahead of this one; it starts as soon as a slot "
        "frees up.",
        ":hourglass: Queued: {count} diagnoses ahead of this one; it starts as soon as a slot "
        "frees up.",
        ahead,
    ).format(count=ahead)


def rdp_request_message(
    requester: str, what: str, node: str, offer_id: str, impact: str, cluster: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """An RDP request waiting for approval, with the button that opens the approval flow."""
    text = Mrkdwn(_(":closed_lock_with_key: {requester} asks to {what}.")).format(
        requester=mention(requester), what=what
    )
    if cluster is not None:
        text = Mrkdwn("[{}] ").format(cluster) + text
    button = ButtonElement(
        text=shorten(_("Approve RDP to {node}").format(node=node), MAX_BUTTON_LABEL),
        action_id="remediate:rdp-open",
        value=offer_id,
        style="danger",
        confirm=ConfirmObject(
            title=_("Open RDP?"),
            text=cut(escape(impact), MAX_CONFIRM_TEXT),
            confirm=_("Approve"),
            deny=_("Cancel"),
        ),
    )
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=cut(text, MAX_TEXT))),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=_("High risk: two approvers; it closes by itself at expiry.")
                )
            ]
        ),
        ActionsBlock(elements=[button]),
    ]
    return cut(text, MAX_TEXT), [block.to_dict() for block in blocks]


def cluster_unreachable_text(cluster: str, reason: str, nodes: list[str]) -> Mrkdwn:
    """Said once per outage: a cluster did not answer the sweep, so its nodes were not probed."""
    shown = ", ".join(nodes[:20])
    if len(nodes) > 20:
        shown += " " + _("and {count} more").format(count=len(nodes) - 20)
    return Mrkdwn(
        _(
            ":warning: Cluster {cluster} does not answer ({reason}); its Windows nodes were not "
            "probed{nodes}."
        )
    ).format(cluster=code(cluster), reason=cut(reason, 300), nodes=f": {shown}" if nodes else "")


def cluster_reachable_text(cluster: str) -> Mrkdwn:
    return Mrkdwn(
        _(":white_check_mark: Cluster {cluster} answers again; its nodes are swept again.")
    ).format(cluster=code(cluster))
