"""Slack messages as a person sees them, drawn in a terminal (for `winpod demo`).

Block Kit in, lines out: the header in bold, sections with their mrkdwn softened, context lines
dimmed, and every button numbered so a person (or the scripted demo) can press it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.wrapping import wrap

EMOJI = {
    "red_circle": "●",
    "warning": "▲",
    "information_source": "ℹ",
    "white_check_mark": "✔",
    "large_green_circle": "●",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⏳",
    "gear": "⚙",
    "memo": "✎",
    "ballot_box_with_check": "☑",
    "no_entry": "⛔",
    "no_entry_sign": "⛔",
    "rotating_light": "🚨",
    "mag": "🔍",
    "lock": "🔒",
    "closed_lock_with_key": "🔐",
    "alarm_clock": "⏰",
    "test_tube": "⚗",
    "raised_hand": "✋",
    "x": "✖",
    "grey_question": "?",
}
WIDTH = 96
MAX_CODE_LINES = 12  # a terminal shows the start of long scripts; Slack shows them whole


@dataclass(frozen=True)
class Button:
    number: int
    label: str
    action_id: str
    value: str
    message_ts: str
    channel: str


def _mrkdwn(text: str) -> str:
    text = re.sub(r":([a-z0-9_+-]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<@(\w+)>", r"@\1", text)
    text = re.sub(r"<!subteam\^(\w+)>", r"@\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.replace("*", "")


def _wrap(text: str, indent: str) -> list[str]:
    out: list[str] = []
    in_code = False
    code_lines = 0
    for raw in text.split("\n"):
        fence = raw.count("```")
        line = raw.replace("```", "")
        if fence:
            starts = not in_code
            in_code = in_code != (fence % 2 == 1)
            code_lines = 0 if starts else code_lines
            if not line:
                continue
            if not starts:  # the closing line of a code block
                out.append(indent + "│ " + line[:WIDTH])
                continue
        if in_code:
            code_lines += 1
            if code_lines <= MAX_CODE_LINES:
                out.append(indent + "│ " + line[:WIDTH])
            elif code_lines == MAX_CODE_LINES + 1:
                out.append(indent + "│ …")
        else:
            out.extend(
                wrap(line, WIDTH, initial_indent=indent, subsequent_indent=indent, keep_words=False)
                or [indent]
            )
    return out


def draw(
    message: dict[str, Any], channel: str, first_number: int = 1, colour: bool = False
) -> tuple[list[str], list[Button]]:
    bold = (lambda s: f"\033[1m{s}\033[0m") if colour else (lambda s: s)
    dim = (lambda s: f"\033[2m{s}\033[0m") if colour else (lambda s: s)
    lines: list[str] = []
    buttons: list[Button] = []
    blocks = message.get("blocks") or []
    if not blocks:
        lines.extend(_wrap(_mrkdwn(str(message.get("text", ""))), "  "))
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(bold("  " + _mrkdwn(block["text"]["text"])))
        elif kind == "section" and block.get("text"):
            lines.extend(_wrap(_mrkdwn(block["text"]["text"]), "  "))
        elif kind == "context":
            for element in block.get("elements", []):
                for line in _wrap(_mrkdwn(str(element.get("text", ""))), "    "):
                    lines.append(dim(line))
        elif kind == "divider":
            lines.append("  " + "─" * 40)
        elif kind == "actions":
            row = []
            for element in block.get("elements", []):
                number = first_number + len(buttons)
                label = str(element.get("text", {}).get("text", "?"))
                buttons.append(
                    Button(
                        number,
                        label,
                        str(element.get("action_id")),
                        str(element.get("value", "")),
                        str(message["ts"]),
                        channel,
                    )
                )
                row.append(f"[{number}] {label}")
            lines.extend(wrap("   ".join(row), WIDTH, "  ", "  ", keep_words=False))
    for reply in message.get("replies") or []:
        lines.append(dim("  ↳ thread:"))
        lines.extend(_wrap(_mrkdwn(str(reply.get("text", ""))), "      "))
    return lines, buttons
