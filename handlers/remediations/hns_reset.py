"""`hns-reset`: rebuild the node's HNS state (policy lists, then the l2bridge network)."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.context import Context
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    steps = data.get("steps") or []
    lines = [
        f"{'ok ' if s.get('ok') else 'FAILED '}{s.get('step')}"
        + (f": {s.get('error')}" if s.get("error") else "")
        for s in steps
        if isinstance(s, dict)
    ]
    return Outcome(
        outcome.ok, outcome.summary + ("\n" + "\n".join(lines) if lines else ""), outcome.output
    )


@remediation(
    "hns-reset",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: (
        f"over WinRM on {t}: stop kubeproxy and kubelet, remove every HNS policy list "
        "and then the l2bridge network, start kubelet and kubeproxy, then verify DNS"
    ),
    impact=lambda t: (
        f"kube-proxy and kubelet stop on {t}; every pod there loses network for about a minute"
    ),
    verified_by=("dns-after-reboot",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    return plan_script(
        context, "hns-reset", target, "hns-reset", f"run hns-reset.ps1 on {target} over WinRM"
    )
