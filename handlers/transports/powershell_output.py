"""What powershell.exe leaves on a WinRM shell's streams, made readable: the console code page
(437 unless the script switched to 65001) and the CLIXML that PowerShell writes to stderr for
progress records (module loading) and errors when no console is attached."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

OEM_CODE_PAGE = "cp437"
_SETS_UTF8 = re.compile(
    r"\[Console\]::OutputEncoding\s*=\s*\[(?:System\.)?Text\.Encoding\]::UTF8|chcp(?:\.com)?\s+65001",
    re.I,
)
_CLIXML_MARKER = "#< CLIXML"
_OBJS = re.compile(r"<Objs\b.*?</Objs>", re.S)
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def encoding_of(script: str) -> str:
    """The code page the script's output arrives in."""
    return "utf-8" if _SETS_UTF8.search(script) else OEM_CODE_PAGE


def decode(raw: bytes, script: str) -> str:
    return raw.decode(encoding_of(script), "replace")


def strip_clixml(text: str) -> str:
    """stderr without CLIXML: progress records dropped, error records kept as their text,
    plain text (a script's own `[Console]::Error` lines) kept as it is."""
    if _CLIXML_MARKER not in text:
        return text
    kept: list[str] = []
    for part in _OBJS.split(text.replace(_CLIXML_MARKER, "")):
        if part.strip():
            kept.append(part.strip("\r\n"))
    errors = [_error_text(objs) for objs in _OBJS.findall(text)]
    return "\n".join([*(e for e in errors if e), *kept]).strip()


def _error_text(objs: str) -> str:
    try:
        # The document comes from the node's PowerShell; expat refuses entity bombs.
        root = ET.fromstring(objs)  # noqa: S314
    except ET.ParseError:
        return ""
    lines = [
        element.text or ""
        for element in root.iter()
        if element.tag.endswith("}S") and element.get("S") == "Error"
    ]
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(lines)).strip()
