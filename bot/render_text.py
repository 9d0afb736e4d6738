"""Diagnoses as terminal text (grouped by severity, colour on a terminal) or SPEC §3 JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.wrapping import wrap
from handlers.i18n import N_, _
from handlers.model import Diagnosis, Finding
from handlers.registry import CheckSpec

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is slow to import for a type hint
    from bot.clusters import ClusterStatus
    from bot.remediation import RunReport
    from bot.store import AuditEntry

_MARKS = {
    "error": N_("✖ ERROR"),
    "warning": N_("▲ WARNING"),
    "info": N_("ℹ INFO"),
    "ok": N_("✔ OK"),
}
# A risk as read (the id stays in JSON and the store); Slack's renderers use it too.
RISK_WORDS = {"low": N_("low"), "medium": N_("medium"), "high": N_("high")}
_COLOURS = {"error": "31;1", "warning": "33;1", "info": "36", "ok": "32"}
_WIDTH = 100


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def _wrap(text: str, indent: str) -> list[str]:
    # Names, images and inline manifests must survive: break at spaces only.
    return wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)


def diagnosis_json(diagnosis: Diagnosis, cluster: str | None = None) -> str:
    """SPEC §3's JSON, with the cluster it came from first when it is named."""
    data = diagnosis.to_json() if cluster is None else {"cluster": cluster, **diagnosis.to_json()}
    return json.dumps(data, indent=2, ensure_ascii=False)


def diagnosis_text(diagnosis: Diagnosis, colour: bool = False) -> str:
    target, node = diagnosis.target, diagnosis.node
    head = f"{target.kind} {target.ref}"
    if target.kind == "Pod":
        head += _(" on {node}").format(node=target.node) if target.node else _(" (not scheduled)")
        state = "/".join(p for p in (target.phase, target.reason) if p)
        if state:
            head += f" — {state}"
    if node is not None:
        build = _("build {build}").format(build=node.build) if node.build else node.kernel_version
        head += "\n  " + _("node {node}: {os} ({build}), boot ID {boot_id}").format(
            node=node.name,
            os=node.os_image or _("unknown OS"),
            build=build,
            boot_id=node.boot_id or "?",
        )
    lines = [_paint(head, "1", colour), ""]
    for finding in diagnosis.findings:
        lines.extend(_finding_lines(finding, colour))
    counts = {s: sum(1 for f in diagnosis.findings if f.severity == s) for s in _MARKS}
    lines.append(
        _("{errors} error(s), {warnings} warning(s), {info} info, {ok} ok · {ms} ms").format(
            errors=counts["error"],
            warnings=counts["warning"],
            info=counts["info"],
            ok=counts["ok"],
            ms=diagnosis.duration_ms,
        )
    )
    return "\n".join(lines)


def _finding_lines(finding: Finding, colour: bool) -> list[str]:
    mark = _paint(_(_MARKS[finding.severity]), _COLOURS[finding.severity], colour)
    if finding.severity in ("ok", "info") and not finding.remediations and not finding.docs:
        detail = f" — {finding.summary}" if finding.summary else ""
        return [f"{mark}  {finding.title} [{finding.check}]{detail}"]
    lines = [f"{mark}  {finding.title} [{finding.check}]"]
    lines.extend(_wrap(finding.summary, "    "))
    if finding.evidence:
        lines.append("    " + _("evidence:"))
        for item in finding.evidence:
            lines.extend(
                wrap(
                    item,
                    _WIDTH,
                    initial_indent="      • ",
                    subsequent_indent="        ",
                    keep_words=False,
                )
            )
    for ref in finding.remediations:
        lines.append(
            "    "
            + _("fix: {remediation} ({risk} risk) on {target}").format(
                remediation=ref.id, risk=_(RISK_WORDS.get(ref.risk, ref.risk)), target=ref.target
            )
            + f"   → winpod remediate {ref.id} {ref.target}"
        )
    lines.extend("    " + _("docs: {link}").format(link=link) for link in finding.docs)
    lines.append("")
    return lines


def explain_text(spec: CheckSpec) -> str:
    info = spec.explanation
    lines = [f"{spec.id} — {_(spec.title)}", ""]
    lines.append(_("Cause:"))
    lines.extend(_wrap(_(info.cause), "  "))
    for heading, items in (
        (_("Signals winpod looks for:"), [_(s) for s in info.signals]),
        (_("Fixes:"), [_(f) for f in info.fixes]),
        (_("Read more:"), info.links),
    ):
        lines.append("")
        lines.append(heading)
        lines.extend(_bullets(items))
    return "\n".join(lines)


def _bullets(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        out.extend(wrap(item, _WIDTH, "  • ", "    ", keep_words=False))
    return out


def audit_text(entries: Sequence[AuditEntry]) -> str:
    """The audit log as aligned lines, oldest first: when, who, what, on what, details."""
    if not entries:
        return _("The audit log is empty.")
    lines = []
    for entry in entries:
        detail = entry.detail
        summary = str(
            detail.get("summary")
            or detail.get("remediation")
            or detail.get("text")
            or detail.get("reason")
            or detail.get("what")
            or ""
        )
        action = f" [{entry.action_id}]" if entry.action_id else ""
        target = entry.target or "-"
        if len({e.cluster for e in entries}) > 1:  # several clusters: each line names its own
            target = f"{entry.cluster}:{target}"
        lines.append(
            f"{entry.at:%Y-%m-%d %H:%M:%S}Z  {_shown(entry.actor):<14} {entry.kind:<10} "
            f"{_shown(target):<28}{action} {_shown(summary)}".rstrip()
        )
    return "\n".join(lines)


def clusters_text(statuses: Sequence[ClusterStatus]) -> str:
    """One line per cluster: name, marks (home, default), whether it answers, Windows nodes."""
    lines = []
    for status in statuses:
        marks = ", ".join(m for m, on in (("home", status.home), ("default", status.default)) if on)
        name = f"{status.name} ({marks})" if marks else status.name
        if status.reachable:
            state = f"reachable, {status.windows_nodes} Windows node(s)"
        else:
            state = f"UNREACHABLE: {_shown(status.error or 'no answer')}"
        lines.append(f"{_shown(name):<28} {state}")
    return "\n".join(lines)


def run_report_text(report: RunReport) -> str:
    """A finished remediation for the terminal: what it did, and what verification found."""
    lines = [report.summary]
    if report.output:
        lines.append(report.output)
    verification = report.verification
    if verification is not None:
        state = {True: _("fixed"), False: _("still failing"), None: _("not verified")}[
            verification.fixed
        ]
        lines.append(
            _("Verification — {verdict}: {summary}").format(
                verdict=state, summary=verification.summary
            )
        )
        lines.extend(f"  • {line}" for line in verification.evidence)
    return "\n".join(lines)


def _shown(text: str) -> str:
    """What people typed and nodes said, on one line and without control characters: an
    escape sequence would otherwise drive the reader's terminal, a newline forge an entry."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
