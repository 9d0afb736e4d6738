"""The approval request on data: target and transport first, for every kind of plan."""

from __future__ import annotations

from dataclasses import replace

from test_render_home import _action

from bot.render_actions import request_message, script_inline_texts
from handlers.registry import Plan, default_registry


def _first_block(plan: Plan, remediation: str, target: str, kind: str = "node") -> str:
    action = replace(_action(1), remediation=remediation, target=target, target_kind=kind)
    spec = default_registry().remediation_spec(remediation)
    _, blocks = request_message(action, plan, spec, 2, "15m", "prod-eu")
    return str(blocks[0]["text"]["text"])


def test_a_node_script_names_its_address_and_commands() -> None:
    plan = Plan(
        "hns-reset",
        "akswin000002",
        "node-script",
        "run",
        "…",
        {"address": "10.240.0.4"},
        ("Stop-Service kubelet -Force", "Get-HnsNetwork | Where-Object { $_.X -lt 2 }"),
    )
    first = _first_block(plan, "hns-reset", "akswin000002")
    assert (
        "node `akswin000002` (10.240.0.4) in cluster `prod-eu` — over WinRM to 10.240.0.4" in first
    )
    assert "Stop-Service kubelet -Force" in first
    assert "$_.X -lt 2" in first and "<" not in first.replace("<@", "")  # escaped where needed


def test_a_node_script_in_a_hostprocess_pod_names_the_pod_and_node() -> None:
    plan = Plan(
        "hns-reset",
        "akswin000002",
        "node-script",
        "run",
        "…",
        {"address": "10.240.0.4", "node": "akswin000002", "transport": "hostprocess"},
        ("Stop-Service kubelet -Force",),
    )
    first = _first_block(plan, "hns-reset", "akswin000002")
    assert "in cluster `prod-eu` — in a HostProcess pod on akswin000002" in first
    assert "WinRM" not in first


def test_a_script_on_the_hyperv_host_names_that_host() -> None:
    plan = Plan(
        "mac-spoofing-on",
        "hvwin000004",
        "node-script",
        "run",
        "…",
        {"address": "10.0.0.9"},
        ("$off | Set-VMNetworkAdapter -MacAddressSpoofing On",),
        "hv01",
    )
    first = _first_block(plan, "mac-spoofing-on", "hvwin000004")
    assert "over WinRM to Hyper-V host hv01 (10.0.0.9)" in first
    assert "Set-VMNetworkAdapter" in first


def test_an_api_plan_goes_through_the_kubernetes_api_and_shows_the_change() -> None:
    plan = Plan("rdp-open", "akswin000001", "api", "create Service winpod-rdp-akswin000001", "{}")
    first = _first_block(plan, "rdp-open", "akswin000001")
    assert "through the Kubernetes API" in first
    assert "create Service winpod-rdp-akswin000001" in first


def test_an_inline_script_is_whole_across_its_parts() -> None:
    script = "\n".join(f"Write-Output {i} # {'x' * 80}" for i in range(200))
    plan = Plan("hns-reset", "akswin000002", "node-script", "run", script)
    parts = script_inline_texts(plan)
    assert len(parts) > 1 and all(len(p) < 4000 for p in parts)
    bodies = [p.split("```")[1].removeprefix("\n").removesuffix("\n") for p in parts]
    assert "\n".join(bodies) == script
