"""Decoding what powershell.exe leaves on a WinRM shell (code page, CLIXML on stderr)."""

from __future__ import annotations

from handlers.transports.powershell_output import decode, strip_clixml

PROGRESS = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '</TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
    "</PR></MS></Obj></Objs>"
)
ERROR = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<S S="Error">Remove-HnsNetwork : The network was not found._x000D__x000A_</S></Objs>'
)


def test_output_is_code_page_437_unless_the_script_switches_to_utf8() -> None:
    raw = "Zugriff verweigert: Gerät".encode("cp437")

    assert decode(raw, "Get-Service") == "Zugriff verweigert: Gerät"
    utf8 = "[Console]::OutputEncoding = [Text.Encoding]::UTF8\n"
    assert decode("Gerät".encode(), utf8) == "Gerät"


def test_progress_records_are_dropped_and_plain_text_kept() -> None:
    assert strip_clixml(PROGRESS) == ""
    assert strip_clixml(PROGRESS + "stop kubelet: cannot stop\r\n") == "stop kubelet: cannot stop"


def test_error_records_become_their_text() -> None:
    assert strip_clixml(ERROR) == "Remove-HnsNetwork : The network was not found."


def test_text_without_clixml_is_left_alone() -> None:
    assert strip_clixml("plain error\r\n") == "plain error\r\n"
