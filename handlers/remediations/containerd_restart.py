"""`containerd-restart`: restart containerd and kubelet on a node whose HCS/containerd is wedged,
then wait until the pods that were stuck terminating have gone."""

from __future__ import annotations

import time
from collections.abc import Mapping

from handlers.checks.runtime_wedged import NAMED_PODS, overdue_terminating, pod_ref
from handlers.context import Context
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, Verification, remediation
from handlers.remediations._node_script import plan_script, run_script
from handlers.transports import KubeObject

POLL_S = 1.0


def _pods(context: Context) -> list[KubeObject]:
    node = context.node_name
    return context.transports.cluster.list("Pod", field_selector=f"spec.nodeName={node}")


def _named(refs: list[str]) -> str:
    more = len(refs) - NAMED_PODS
    named = ", ".join(refs[:NAMED_PODS])
    return _("{pods} and {more} more").format(pods=named, more=more) if more > 0 else named


def _run(context: Context, plan: Plan) -> Outcome:
    outcome = run_script(context, plan)[0]
    if not outcome.ok:
        return outcome
    deadline = time.monotonic() + context.settings.work.restart_timeout.total_seconds()
    while True:
        stuck = [pod_ref(p) for p in overdue_terminating(_pods(context))]
        if not stuck:
            return Outcome(
                True,
                _("{summary}; no pod is stuck terminating on {node}").format(
                    summary=outcome.summary, node=plan.target
                ),
                outcome.output,
            )
        if time.monotonic() >= deadline:
            return Outcome(
                False,
                _(
                    "{summary}, but these pods are still stuck terminating on {node}: {pods}; "
                    "drain and reboot the node"
                ).format(summary=outcome.summary, node=plan.target, pods=_named(stuck)),
                outcome.output,
            )
        time.sleep(POLL_S)


def _verify(context: Context, plan: Plan) -> Verification:
    stuck = [pod_ref(p) for p in overdue_terminating(_pods(context))]
    if stuck:
        return Verification(
            False,
            _("still stuck terminating on {node}: {pods}").format(
                node=plan.target, pods=_named(stuck)
            ),
        )
    return Verification(True, _("no pod is stuck terminating on {node}").format(node=plan.target))


@remediation(
    "containerd-restart",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: restart containerd (ending its process if it will not stop) and kubelet, "
        "as a scheduled task, then wait until the pods stuck terminating have gone and verify"
    ).format(target=t),
    impact=lambda t: _(
        "every pod on {target} is affected: exec sessions and probes fail and HostProcess "
        "containers (kube-proxy, CNI) are cut while containerd and kubelet restart"
    ).format(target=t),
    verified_by=("runtime-wedged",),
    run=_run,
    verify=_verify,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    pods = [
        p
        for p in context.pods_on_node()
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    stuck = {pod_ref(p) for p in overdue_terminating(pods)}
    running = [pod_ref(p) for p in pods if pod_ref(p) not in stuck]
    affected = (
        _("pods affected on {node}: {pods}").format(node=target, pods=_named(running))
        if running
        else _("pods affected on {node}: none running").format(node=target)
    )
    if stuck:
        affected = _("{affected}; stuck terminating (to finish): {pods}").format(
            affected=affected, pods=_named(sorted(stuck))
        )
    return plan_script(
        context,
        "containerd-restart",
        target,
        "containerd-restart",
        _(
            "run containerd-restart.ps1 on {target} as a scheduled task (restarting the runtime "
            "cuts the connection that starts it); {affected}"
        ).format(target=target, affected=affected),
    )
