"""`kube-proxy-restart`: restart kube-proxy on a Windows node: its Windows service (`kubeproxy`
or `kube-proxy`) with a node script, or, when it runs as a HostProcess pod, that pod."""

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
    if plan.kind == "api":
        return restart_kube_proxy_pod(context, str(plan.data["pod"]))
    outcome, data = run_script(context, plan)
    return Outcome(
        outcome.ok,
        f"{outcome.summary}: {data.get('service') or 'kube-proxy'} "
        f"{data.get('before')} → {data.get('after')}",
        outcome.output,
    )


@remediation(
    "kube-proxy-restart",
    risk="medium",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: restart kube-proxy (its kubeproxy / kube-proxy service, or its "
        "HostProcess pod), then verify"
    ).format(target=t),
    impact=lambda t: _(
        "Services are unreachable from pods on {target} for a few seconds while kube-proxy restarts"
    ).format(target=t),
    verified_by=("dns-after-reboot", "node-services", "hns-stale-endpoints"),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    pod = kube_proxy_pod(context)
    if pod is not None:
        name = pod["metadata"]["name"]
        return Plan(
            "kube-proxy-restart",
            target,
            "api",
            _(
                "delete kube-proxy pod kube-system/{pod} on {node} and wait for its "
                "replacement to be Ready"
            ).format(pod=name, node=target),
            f"kubectl -n kube-system delete pod {name}",  # i18n: a command
            {"pod": name},
        )
    return plan_script(
        context,
        "kube-proxy-restart",
        target,
        "kube-proxy-restart",
        _("run kube-proxy-restart.ps1 on {node}").format(node=target),
    )
