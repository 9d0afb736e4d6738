"""winpod's own PowerShell scripts (handlers/scripts/*.ps1), filled with validated parameters.

Parameters reach a script only through its `param()` block, whose defaults are placeholders
`'{{Name}}'`; each value is checked against a strict pattern and single-quoted, so nothing a
person typed is ever spliced into PowerShell as code.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from handlers.errors import BadInput, WinpodError
from handlers.i18n import _
from handlers.transports import CommandResult

_SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}")
# Pieces of a script uploaded for a detached run: base64 only, never a quote.
_BASE64_VALUE = re.compile(r"[A-Za-z0-9+/]{1,2400}={0,2}")
# HNS endpoints to remove, `ID=IPv4` pairs separated by commas (at most MAX_ENDPOINTS, so the
# encoded command still fits cmd.exe's limit).
MAX_ENDPOINTS = 12
_HEX = "[0-9A-Fa-f]"
_GUID = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_ENDPOINT = rf"{_GUID}=\d{{1,3}}(?:\.\d{{1,3}}){{3}}"
_PATTERNS = {
    "Chunk": _BASE64_VALUE,
    "Endpoints": re.compile(rf"{_ENDPOINT}(?:,{_ENDPOINT}){{0,{MAX_ENDPOINTS - 1}}}"),
}
_PLACEHOLDER = re.compile(r"'\{\{(\w+)\}\}'")
_SECRETISH = re.compile(
    r"(?i)(password|passwd|pwd|secret|token|apikey|api_key|credential)(\W{1,3})([^\s,;\"']+)"
)


def script_text(name: str) -> str:
    path = resources.files("handlers") / "scripts" / f"{name}.ps1"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(_("no node script named {script}").format(script=name)) from None


def render(name: str, **params: str) -> str:
    """The script text with every placeholder replaced by a validated, single-quoted value."""
    text = script_text(name)
    wanted = set(_PLACEHOLDER.findall(text))
    missing = wanted - set(params)
    if missing:
        raise BadInput(
            _("script {script} needs parameters: {names}").format(
                script=name, names=", ".join(sorted(missing))
            )
        )
    for key, value in params.items():
        if key not in wanted:
            raise BadInput(
                _("script {script} has no parameter {name}").format(script=name, name=key)
            )
        pattern = _PATTERNS.get(key, _SAFE_VALUE)
        # fullmatch: `$` in a pattern also matches before a trailing newline
        if not pattern.fullmatch(value):
            raise BadInput(
                _("unsafe value for {script} parameter {name}: {value}").format(
                    script=name, name=key, value=repr(value[:40])
                )
            )
    return _PLACEHOLDER.sub(lambda m: single_quoted(params[m.group(1)]), text)


def single_quoted(value: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded; a quote is doubled."""
    return "'" + value.replace("'", "''") + "'"


def script_name_of(text: str) -> str:
    """NAME from a script's first line `# winpod-script: NAME` (empty if there is none)."""
    first = text.split("\n", 1)[0]
    return first.removeprefix("# winpod-script:").strip() if first.startswith("#") else ""


def for_the_wire(text: str) -> str:
    """The script as sent: comment lines, blank lines and indentation dropped, because the
    encoded command must fit cmd.exe's 8,191 characters. The first line, which names the
    script, stays. (winpod's scripts use no here-strings, where this would change text.)"""
    first, *rest = text.splitlines()
    kept = (line.strip() for line in rest)
    return "\n".join([first, *(line for line in kept if line and not line.startswith("#"))]) + "\n"


def parse_output(name: str, result: CommandResult) -> dict[str, Any]:
    """The one JSON object a script prints on stdout; a clear error when it printed none."""
    for raw in reversed(result.stdout.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                break
            if isinstance(data, dict):
                return data
    excerpt = mask_secrets((result.stderr or result.stdout).strip())[:300]
    raise WinpodError(
        _("node script {script} exited {code} without its JSON result: {excerpt}").format(
            script=name, code=result.exit_code, excerpt=excerpt
        )
    )


def mask_secrets(text: str) -> str:
    """Hide anything in node output that looks like a credential before it is shown."""
    return _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}****", text)
