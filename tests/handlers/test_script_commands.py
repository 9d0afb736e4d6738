"""What an approver reads first: the lines of a node script that change the host."""

from __future__ import annotations

from pathlib import Path

from handlers.registry import Plan
from handlers.script_commands import state_changing_commands

SCRIPTS = Path(__file__).resolve().parents[2] / "handlers" / "scripts"


def test_hns_reset_shows_its_stops_removals_and_starts_in_order() -> None:
    commands = state_changing_commands((SCRIPTS / "hns-reset.ps1").read_text())

    stops = [c for c in commands if c.startswith("Stop-Service")]
    removals = [c for c in commands if "Remove-Hns" in c]
    starts = [c for c in commands if c.startswith("Start-Service")]
    assert [s.split()[1] for s in stops] == ["kubeproxy", "kubelet"]
    assert any("Remove-HnsPolicyList" in r for r in removals)
    assert any("Remove-HnsNetwork" in r and "L2Bridge" in r for r in removals)
    assert [s.split()[1] for s in starts] == ["kubelet", "kubeproxy"]
    assert commands.index(removals[-1]) < commands.index(starts[0])
    # nothing from the header comments, the param block or the helper's own definition
    assert not any(c.startswith(("#", "param", "function", "New-Object")) for c in commands)


def test_read_only_scripts_change_nothing() -> None:
    for name in ("node-status", "node-memory"):
        assert state_changing_commands((SCRIPTS / f"{name}.ps1").read_text()) == ()


def test_comments_strings_params_and_definitions_are_not_commands() -> None:
    script = """# Remove-HnsNetwork would be bad
param([string]$Why = 'Stop-Service kubelet')
Write-Output "Restart-Service kubeproxy"
function Remove-Everything {
    Get-HnsNetwork | Remove-HnsNetwork
}
$list = New-Object System.Collections.ArrayList
Remove-TypeData System.Array -ErrorAction SilentlyContinue
Get-Service kubelet
"""
    assert state_changing_commands(script) == ()


def test_a_helper_is_shown_where_it_is_called_with_what_it_is_given() -> None:
    script = """function Invoke-Step([scriptblock]$Action) { & $Action }
function Clear-Policies {
    Get-HnsPolicyList | Remove-HnsPolicyList
}
Invoke-Step { Stop-Service kubeproxy -Force }
Clear-Policies
Clear-Policies
"""
    assert state_changing_commands(script) == (
        "Stop-Service kubeproxy -Force",
        "Get-HnsPolicyList | Remove-HnsPolicyList",
    )


def test_hns_requests_change_state_only_when_they_delete_or_create() -> None:
    script = """Invoke-HnsRequest -Method GET -Type networks
Invoke-HnsRequest -Method DELETE -Type networks -Id $id
Invoke-HnsRequest -Method POST -Type policylists -Data $json
$n = Get-HnsNetwork |
    Where-Object { $_.Name -eq 'cbr0' } |
    Set-HnsNetwork -Flags 2
& sc.exe stop kubeproxy
"""
    assert state_changing_commands(script) == (
        "Invoke-HnsRequest -Method DELETE -Type networks -Id $id",
        "Invoke-HnsRequest -Method POST -Type policylists -Data $json",
        "Get-HnsNetwork | Where-Object { $_.Name -eq 'cbr0' } | Set-HnsNetwork -Flags 2",
        "& sc.exe stop kubeproxy",
    )


def test_a_plan_stored_before_commands_existed_still_loads() -> None:
    stored = {
        "remediation": "hns-reset",
        "target": "akswin000002",
        "kind": "node-script",
        "what": "run hns-reset.ps1",
        "preview": "Stop-Service kubelet",
        "data": {"address": "10.240.0.4"},
    }
    plan = Plan.from_json(stored)
    assert (plan.commands, plan.runs_on) == ((), "")
    again = Plan.from_json({**stored, "commands": ["Stop-Service kubelet"], "runs_on": "hv01"})
    assert Plan.from_json(again.to_json()) == again
    assert again.commands == ("Stop-Service kubelet",)
    assert plan.differences(again) == []  # read from the script, not a change of plan
