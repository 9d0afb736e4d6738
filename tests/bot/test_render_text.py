"""The terminal text renderer on data: long summaries wrap at spaces only."""

from __future__ import annotations

from bot.render_text import diagnosis_text
from handlers.model import Diagnosis, Finding, Target

NAME = "prepull-contoso-erp-legacy-reporting-service-windows"


def test_summaries_break_at_spaces_never_inside_a_name() -> None:
    summary = " ".join(["word"] * 21 + [f"{NAME}:", "{app:", f"{NAME}}}"] * 3)
    finding = Finding("image-pull-slow", "error", "t", summary)
    text = diagnosis_text(Diagnosis(Target("Node", "akswin1"), None, (finding,)))

    summary_lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert " ".join(summary_lines).split(" ") == summary.split(" ")
