"""The WinRM adapter's own decisions, on a fake pywinrm protocol: the PowerShell command line it
sends, and which failures mean "nothing ran" and which "it may have run"."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from config.settings import WinRMSettings
from handlers.errors import ChannelLost, Unreachable
from handlers.node_scripts import for_the_wire, render
from handlers.transports import NodeTarget
from handlers.transports import winrm as transport

SCRIPT = render("node-status", DnsServiceIP="10.0.0.10")


class FakeProtocol:
    def __init__(self, fail_in: str = "") -> None:
        self.fail_in = fail_in
        self.commands: list[tuple[str, list[str]]] = []
        self.transport = SimpleNamespace(build_session=lambda: SimpleNamespace(trust_env=True))

    def _maybe_fail(self, step: str) -> None:
        if self.fail_in == step:
            raise requests.exceptions.ConnectionError("Connection reset by peer")

    def open_shell(self) -> str:
        self._maybe_fail("open_shell")
        return "SHELL"

    def run_command(self, shell_id: str, command: str, args: list[str]) -> str:
        self.commands.append((command, list(args)))
        return "COMMAND"

    def get_command_output(self, shell_id: str, command_id: str) -> tuple[bytes, bytes, int]:
        self._maybe_fail("get_command_output")
        progress = b'#< CLIXML\r\n<Objs Version="1.1.0.1"><Obj S="progress"/></Objs>'
        return b'{"script":"node-status"}\r\n', progress, 0

    def cleanup_command(self, shell_id: str, command_id: str) -> None: ...

    def close_shell(self, shell_id: str, close_session: bool = True) -> None: ...


def shell_with(protocol: FakeProtocol, monkeypatch: pytest.MonkeyPatch) -> transport.WinRMShell:
    def session(endpoint: str, auth: Any, **options: Any) -> SimpleNamespace:
        return SimpleNamespace(protocol=protocol)

    monkeypatch.setattr(transport.winrm, "Session", session)
    return transport.WinRMShell(WinRMSettings(username="winpod", password="pw"))


def test_the_script_runs_without_profile_or_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = FakeProtocol()

    result = shell_with(protocol, monkeypatch).run_script(
        NodeTarget("10.0.0.4", "10.0.0.4"), SCRIPT, 20
    )

    [(command, args)] = protocol.commands
    assert command == "powershell.exe"
    assert args[:4] == ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(args[4]).decode("utf-16-le") == for_the_wire(SCRIPT)
    assert (result.stdout.strip(), result.stderr, result.exit_code) == (
        '{"script":"node-status"}',
        "",
        0,
    )


def test_a_connection_lost_before_the_command_means_nothing_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shell = shell_with(FakeProtocol(fail_in="open_shell"), monkeypatch)

    with pytest.raises(Unreachable) as caught:
        shell.run_script(NodeTarget("10.0.0.4", "10.0.0.4"), SCRIPT, 20)

    assert not isinstance(caught.value, ChannelLost)
    assert "cannot connect" in str(caught.value)


def test_a_connection_lost_after_the_command_started_may_have_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shell = shell_with(FakeProtocol(fail_in="get_command_output"), monkeypatch)

    with pytest.raises(ChannelLost, match="may have run"):
        shell.run_script(NodeTarget("10.0.0.4", "10.0.0.4"), SCRIPT, 20)
