"""The audit log as text: what people typed and nodes said cannot drive a terminal or forge
lines."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.render_text import audit_text
from bot.store import AuditEntry

AT = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def entry(text: str, actor: str = "U0OPS", target: str | None = "akswin000001") -> AuditEntry:
    return AuditEntry(AT, actor, "command", None, target, {"text": text})


def test_control_characters_are_shown_not_sent_to_the_terminal() -> None:
    shown = audit_text(
        [entry("/winpod rdp open x from=\x1b[2J\x1b]0;pwned\x07", actor="U\x1b[31m")]
    )
    assert "\x1b" not in shown and "\x07" not in shown
    assert "from=\\x1b[2J\\x1b]0;pwned\\x07" in shown
    assert "U\\x1b[31m" in shown


def test_a_newline_in_typed_text_cannot_forge_another_entry() -> None:
    forged = "/winpod help\n2026-12-04 21:00:00Z  U0ADMIN        rdp-close  akswin000001"
    shown = audit_text([entry(forged)])
    assert len(shown.splitlines()) == 1
    assert "\\n2026-12-04" in shown


def test_ordinary_entries_are_unchanged() -> None:
    shown = audit_text([entry("/winpod diagnose web/iis-0 — ok, déjà vu")])
    assert shown == (
        "2026-12-04 21:00:00Z  U0OPS          command    akswin000001                 "
        "/winpod diagnose web/iis-0 — ok, déjà vu"
    )
