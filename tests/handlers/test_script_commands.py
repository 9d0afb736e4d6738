"""What an approver reads first: the lines of a node script that change the host."""

from __future__ import annotations

from pathlib import Path

from handlers.registry import Plan
from handlers.script_commands import state_changing_commands

SCRIPTS = Path(__file__).resolve().parents[2] / "handlers" / "scripts"


def test_hns_reset_shows_its_stops_removals_and_starts_in_order() -> None:
    commands = state_changing_commands((SCRIPTS / "hns-reset.ps1").read_text())

    def first(text: str) -> int:
        return next(i for i, c in enumerate(commands) if text in c)

    assert "Stop-Service kubelet -Force" in commands
    assert any(c.startswith("Stop-Service $kp") for c in commands)  # kube-proxy's service
    assert first("tasks kill") > first("Stop-Service kubelet")  # the containers
    assert first("Remove-HnsEndpoint") < first("Remove-HnsPolicyList") < first("Remove-HnsNetwork")
    assert first("Start-Service kubelet") > first("Remove-HnsNetwork")
    # nothing from the header comments, the param block, the helpers' own definitions, the
    # session's own set-up or its waits
    assert not any(
        c.startswith(("#", "param", "function", "New-Object", "Remove-TypeData", "Start-Sleep"))
        for c in commands
    )


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


def test_requests_and_programs_change_state_only_when_they_delete_create_or_stop() -> None:
    script = """Invoke-HnsRequest -Method GET -Type networks
Invoke-HnsRequest -Method DELETE -Type networks -Id $id
Invoke-HnsRequest -Method POST -Type policylists -Data $json
$n = Get-HnsNetwork |
    Where-Object { $_.Name -eq 'cbr0' } |
    Set-HnsNetwork -Flags 2
& sc.exe stop kubeproxy
& sc.exe query kubeproxy
& ctr.exe -n k8s.io tasks ls -q
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
