"""Shared planning and running for remediations that are one of winpod's node scripts."""

from __future__ import annotations

from typing import Any

from handlers import node_scripts, script_commands
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.remediations import Outcome, Plan, pretty


def plan_script(
    context: Context,
    remediation_id: str,
    target: str,
    script: str,
    what: str,
    address: str | None = None,
    runs_on: str = "",
    **params: str,
) -> Plan:
    """`address` and `runs_on` (its name) when the script runs elsewhere than on `target`."""
    text = node_scripts.render(script, **params)
    host = address or context.node_address()
    return Plan(
        remediation_id,
        target,
        "node-script",
        what,
        text,
        {"script": script, "address": host, "params": params},
        script_commands.state_changing_commands(text),
        runs_on,
    )


def run_script(context: Context, plan: Plan) -> tuple[Outcome, dict[str, Any]]:
    shell = context.transports.node_shell
    if shell is None:
        raise WinpodError("WinRM is not configured (winrm.username / winrm.password)")
    name, address = str(plan.data["script"]), str(plan.data["address"])
    result = shell.run_script(address, plan.preview, float(context.settings.winrm.read_timeout_s))
    data = node_scripts.parse_output(name, result)
    output = node_scripts.mask_secrets(pretty(data))
    ok = result.ok and bool(data.get("ok", True)) and not data.get("error")
    summary = f"{name} on {address} " + ("succeeded" if ok else f"failed (exit {result.exit_code})")
    return Outcome(ok, summary, output), data
