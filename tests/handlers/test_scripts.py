"""winpod's node scripts (handlers/scripts/*.ps1) are valid PowerShell that fits a WinRM command."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from handlers.detached import CHUNK
from handlers.node_scripts import for_the_wire
from handlers.remediations._node_script import DETACHED_SCRIPTS

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "handlers" / "scripts").glob("*.ps1"))
# cmd.exe's limit on one command line, which `powershell -encodedcommand …` must fit in.
COMMAND_LINE_LIMIT = 8191
PLACEHOLDER = re.compile(r"'\{\{(\w+)\}\}'")
PARAM_BLOCK = re.compile(r"^param\((.*?)^\)|^param\(\)", re.I | re.M | re.S)
DECLARED = re.compile(r"\[\w+\]\s*\$(\w+)\s*=\s*'\{\{(\w+)\}\}'")


def broken_nodes(node: Node) -> Iterator[Node]:
    if node.type == "ERROR" or node.is_missing:
        yield node
    for child in node.children:
        yield from broken_nodes(child)


def test_the_four_node_scripts_exist() -> None:
    assert {p.stem for p in SCRIPTS} >= {
        "node-status",
        "hns-reset",
        "kube-proxy-restart",
        "mac-spoofing",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_parses_as_powershell(script: Path) -> None:
    parser = Parser(Language(tree_sitter_powershell.language()))
    tree = parser.parse(script.read_bytes())

    problems = [
        f"line {n.start_point[0] + 1}: {'missing ' + n.type if n.is_missing else 'syntax error'}"
        for n in broken_nodes(tree.root_node)
    ]
    assert problems == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_names_itself_on_its_first_line(script: Path) -> None:
    first_line = script.read_text(encoding="utf-8").splitlines()[0]

    assert first_line == f"# winpod-script: {script.stem}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_placeholder_is_a_param_default_of_the_same_name(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    block = PARAM_BLOCK.search(text)
    assert block is not None, "the script has no param() block"

    declared = {variable: placeholder for variable, placeholder in DECLARED.findall(text)}
    placeholders = set(PLACEHOLDER.findall(text))
    assert all(name == placeholder for name, placeholder in declared.items())
    assert placeholders == set(declared)
    assert all(f"'{{{{{name}}}}}'" in block.group(0) for name in placeholders)


# What the encoded command may use of cmd.exe's limit: room for a longer script or a longer
# parameter value before a real node answers "The command line is too long."
MARGIN = 512
SENT_DIRECTLY = [p for p in SCRIPTS if p.stem not in DETACHED_SCRIPTS]


def encoded_command(text: str, value: str) -> str:
    """The command line the WinRM transport sends for the script filled with `value`."""
    wire = for_the_wire(PLACEHOLDER.sub("'" + value + "'", text))
    encoded = base64.b64encode(wire.encode("utf-16-le")).decode()
    return "powershell.exe -NoLogo -NoProfile -NonInteractive -EncodedCommand " + encoded


@pytest.mark.parametrize("script", SENT_DIRECTLY, ids=lambda p: p.stem)
def test_encoded_command_fits_on_one_command_line_with_a_margin(script: Path) -> None:
    # Filled with values as long as the bot accepts (253 characters), not just as written.
    command = encoded_command(script.read_text(encoding="utf-8"), "x" * 253)

    assert len(command) < COMMAND_LINE_LIMIT - MARGIN


def test_a_detached_script_arrives_in_pieces_that_each_fit() -> None:
    upload = (SCRIPTS[0].parent / "detached-upload.ps1").read_text(encoding="utf-8")
    piece = "A" * CHUNK  # the largest piece handlers/detached.py sends

    command = encoded_command(upload.replace("'{{Id}}'", "'" + "x" * 253 + "'"), piece)

    assert len(command) < COMMAND_LINE_LIMIT - MARGIN


def test_the_wire_form_keeps_the_name_line_and_drops_comments() -> None:
    text = (SCRIPTS[0].parent / "node-status.ps1").read_text(encoding="utf-8")

    wire = for_the_wire(text)

    assert wire.splitlines()[0] == "# winpod-script: node-status"
    assert not any(line.startswith(("#", " ")) for line in wire.splitlines()[1:])
    assert len(wire) < len(text)


@pytest.mark.parametrize("name", ["node-status", "hns-reset"])
def test_hns_cmdlets_are_gated_on_get_hnsnetwork_and_prefer_aks_v2_module(name: str) -> None:
    # Get-HnsNetwork is in-box since 1709 (Get-HnsPolicyList is not everywhere); AKS ships
    # hns.v2.psm1, older guides hns.psm1.
    text = (SCRIPTS[0].parent / f"{name}.ps1").read_text(encoding="utf-8")

    assert "(Has Get-HnsNetwork)" in text
    assert "(Has Get-HnsPolicyList)" not in text.split("Get-HnsNetwork", 1)[0]
    assert text.index("hns.v2.psm1") < text.index("hns.psm1")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_writes_utf8_and_round_trip_dates(script: Path) -> None:
    text = script.read_text(encoding="utf-8")

    assert "[Console]::OutputEncoding = [" in text and "Encoding]::UTF8" in text
    assert "ToString('yyyy" not in text  # the culture's separators; 'o' is the same everywhere
