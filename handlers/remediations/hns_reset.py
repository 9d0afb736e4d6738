"""`hns-reset`: rebuild the node's pod network (policy lists, then the pod network only: never
the management network), then restart kube-proxy in whatever form it runs."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.context import Context
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import (
    kube_proxy_pod,
    plan_script,
    restart_kube_proxy_pod,
    run_script,
)


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    steps = data.get("steps") or []
    lines = [
        f"{'ok ' if s.get('ok') else 'FAILED '}{s.get('step')}"
        + (f": {s.get('error')}" if s.get("error") else "")
        for s in steps
        if isinstance(s, dict)
    ]
    if outcome.ok and not str(data.get("kubeProxy") or "").startswith("service"):
        # kube-proxy is a HostProcess pod: the script could not restart it.
        pod = kube_proxy_pod(context)
        if pod is not None:
            restarted = restart_kube_proxy_pod(context, pod["metadata"]["name"])
            lines.append(f"{'ok ' if restarted.ok else 'FAILED '}{restarted.summary}")
            outcome = Outcome(restarted.ok, outcome.summary, outcome.output)
    return Outcome(
        outcome.ok, outcome.summary + ("\n" + "\n".join(lines) if lines else ""), outcome.output
    )


@remediation(
    "hns-reset",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: stop kube-proxy, kubelet and the containers, remove the HNS policy "
        "lists and then the pod network (never the management network), start kubelet and "
        "kube-proxy, then verify DNS"
    ).format(target=t),
    impact=lambda t: _(
        "kube-proxy and kubelet stop on {target}; its containers are stopped and every pod there "
        "gets a new sandbox, without network for about a minute"
    ).format(target=t),
    verified_by=("dns-after-reboot",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    return plan_script(
        context,
        "hns-reset",
        target,
        "hns-reset",
        _(
            "run hns-reset.ps1 on {node} (its result is read back even if the network blips "
            "or kubelet restarts)"
        ).format(node=target),
    )
