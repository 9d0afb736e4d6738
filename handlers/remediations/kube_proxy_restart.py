"""`kube-proxy-restart`: restart the kubeproxy service on a Windows node."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.context import Context
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    return Outcome(
        outcome.ok,
        f"{outcome.summary}: kubeproxy {data.get('before')} → {data.get('after')}",
        outcome.output,
    )


@remediation(
    "kube-proxy-restart",
    risk="medium",
    target_kind=TargetKind.NODE,
    does=lambda t: f"over WinRM on {t}: restart the kubeproxy service, then verify",
    impact=lambda t: (
        f"Services are unreachable from pods on {t} for a few seconds while kube-proxy restarts"
    ),
    verified_by=("dns-after-reboot", "node-services"),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    return plan_script(
        context,
        "kube-proxy-restart",
        target,
        "kube-proxy-restart",
        f"run kube-proxy-restart.ps1 on {target} over WinRM",
    )
