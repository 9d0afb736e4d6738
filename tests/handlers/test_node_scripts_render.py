"""`node_scripts.render()` itself: only plain values reach a script, always single-quoted."""

from __future__ import annotations

import pytest

from handlers import node_scripts
from handlers.errors import BadInput

HOSTILE = [
    "akswin000001\n",  # a trailing newline slips past a `$`-anchored match
    "akswin000001\nStop-Computer",
    "x'; Stop-Computer; '",
    "x' + $(Stop-Computer) + '",
    "two words",
    "$env:WINRM_PASSWORD",
    "`whoami`",
    "fe80::1%x');Stop-Computer;('",
    "",
    "-Enable",
    "a" * 254,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_that_is_not_plain_is_refused(value: str) -> None:
    with pytest.raises(BadInput, match="unsafe value for mac-spoofing parameter VMName"):
        node_scripts.render("mac-spoofing", VMName=value, Enable="true")


@pytest.mark.parametrize(
    "value", ["akswin000001", "win-01.corp.example.com", "10.0.0.10", "fd00::a"]
)
def test_a_plain_value_is_placed_single_quoted_in_the_param_block(value: str) -> None:
    text = node_scripts.render("mac-spoofing", VMName=value, Enable="false")
    assert f"[string]$VMName = '{value}'," in text
    assert "[string]$Enable = 'false'" in text
    assert "{{" not in text


def test_single_quoting_doubles_quotes_so_nothing_ends_the_string() -> None:
    assert node_scripts.single_quoted("O'Brien") == "'O''Brien'"
    assert node_scripts.single_quoted("'); Stop-Computer; ('") == "'''); Stop-Computer; ('''"
    assert node_scripts.single_quoted("$x") == "'$x'"  # single quotes expand nothing


def test_missing_and_unknown_parameters_are_refused() -> None:
    with pytest.raises(BadInput, match="needs parameters: Enable"):
        node_scripts.render("mac-spoofing", VMName="akswin000001")
    with pytest.raises(BadInput, match="has no parameter Force"):
        node_scripts.render("node-status", DnsServiceIP="10.0.0.10", Force="true")
