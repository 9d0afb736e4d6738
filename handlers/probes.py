"""Probes run inside Windows pods, using only tools a Windows container has (never ping).

`nslookup` exists on every Windows image, Nano Server included; PowerShell may be missing there,
so PowerShell probes are skipped for Nano Server images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import Context, pod_images
from handlers.i18n import _
from handlers.transports import CommandResult

API_NAME = "kubernetes.default.svc.cluster.local"
TOKEN_PATH = r"C:\var\run\secrets\kubernetes.io\serviceaccount\token"  # noqa: S105 - a path
_ADDRESS = re.compile(r"^Address(?:es)?:\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    command: str
    output: str

    def evidence(self) -> str:
        lines = dict.fromkeys(line.strip() for line in self.output.splitlines() if line.strip())
        excerpt = " / ".join(lines)  # nslookup repeats its timeout lines: show each once
        if len(excerpt) > 240:
            excerpt = excerpt[:240] + "…"
        if self.ok:
            said = (
                _("probe `{command}` succeeded")
                if not excerpt
                else _("probe `{command}` succeeded: {output}")
            )
        else:
            said = (
                _("probe `{command}` failed")
                if not excerpt
                else _("probe `{command}` failed: {output}")
            )
        return said.format(command=self.command, output=excerpt)


def _combined(result: CommandResult) -> str:
    return (result.stdout + ("\n" + result.stderr if result.stderr else "")).strip()


def has_powershell(context: Context) -> bool:
    assert context.pod is not None
    return not any("nanoserver" in image.lower() for _name, image in pod_images(context.pod))


def nslookup(context: Context, name: str = API_NAME, server: str | None = None) -> ProbeResult:
    """Resolve `name` (through the pod's configured DNS server unless `server` is given)."""
    argv = ["nslookup", name] + ([server] if server else [])
    result = context.exec(argv)
    answered = result.ok and "Name:" in result.stdout and len(_ADDRESS.findall(result.stdout)) >= 2
    return ProbeResult(answered, " ".join(argv), _combined(result))


def tcp_connect(context: Context, address: str, port: int) -> ProbeResult:
    """Test-NetConnection's TcpTestSucceeded for address:port (PowerShell images only)."""
    text = f"Test-NetConnection {address} -Port {port} -InformationLevel Quiet"
    argv = ["powershell", "-NoProfile", "-NonInteractive", "-Command", text]
    result = context.exec(argv)
    succeeded = result.ok and result.stdout.strip().splitlines()[-1:] == ["True"]
    return ProbeResult(succeeded, text, _combined(result))


def token_length(context: Context) -> tuple[ProbeResult, int | None]:
    """Whether the ServiceAccount token can be read, and its length — never its content."""
    text = f"(Get-Content -Raw '{TOKEN_PATH}').Length"
    argv = ["powershell", "-NoProfile", "-NonInteractive", "-Command", text]
    result = context.exec(argv)
    value = result.stdout.strip()
    length = int(value) if result.ok and value.isdigit() else None
    output = f"length {length}" if length is not None else _combined(result)
    return ProbeResult(length is not None and length > 0, text, output), length
