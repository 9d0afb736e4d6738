"""`mac-spoofing-on`: enable MAC address spoofing for a node VM, on its Hyper-V host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.context import Context
from handlers.errors import BadInput
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, Verification, remediation
from handlers.remediations._node_script import plan_script, run_script


def _spoofing_on(data: dict[str, Any]) -> bool:
    adapters = data.get("adapters")
    return (
        isinstance(adapters, list)
        and bool(adapters)
        and all(isinstance(a, dict) and a.get("macAddressSpoofing") == "On" for a in adapters)
    )


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    ok = outcome.ok and _spoofing_on(data)
    return Outcome(
        ok,
        (
            _("MAC address spoofing on VM {vm}: On")
            if _spoofing_on(data)
            else _("MAC address spoofing on VM {vm}: not On")
        ).format(vm=data.get("vm")),
        outcome.output,
    )


def _verify(context: Context, plan: Plan) -> Verification:
    read = plan_script(
        context,
        plan.remediation,
        plan.target,
        "mac-spoofing",
        "",
        str(plan.data["address"]),
        VMName=plan.target,
        Enable="false",
    )
    _output, data = run_script(context, read)
    on = _spoofing_on(data)
    return Verification(
        on, f"MacAddressSpoofing {'On' if on else 'still Off'} for VM {plan.target}"
    )


@remediation(
    "mac-spoofing-on",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "over WinRM on the Hyper-V host of {target}: enable MAC address spoofing on the "
        "VM's adapters, then verify"
    ).format(target=t),
    impact=lambda t: _(
        "changes the Hyper-V host's settings for VM {target} (hypervisor rights)"
    ).format(target=t),
    verified_by=("apiserver-unreachable",),
    run=_run,
    verify=_verify,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    try:
        host, address = context.hyperv_host_address()
    except BadInput as exc:
        raise BadInput(
            _(
                "cannot enable MAC spoofing for {node}: {error}; set the annotation to the "
                "Hyper-V host's name (and list it in hyperv.hosts with its address)"
            ).format(node=target, error=exc)
        ) from None
    return plan_script(
        context,
        "mac-spoofing-on",
        target,
        "mac-spoofing",
        _("run mac-spoofing.ps1 -Enable on Hyper-V host {host} for VM {vm}").format(
            host=host, vm=target
        ),
        address,
        runs_on=host,
        VMName=target,
        Enable="true",
    )
