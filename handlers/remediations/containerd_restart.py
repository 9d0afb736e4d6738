"""`containerd-restart`: restart containerd and kubelet on a node whose HCS/containerd is wedged,
then wait until the pods that were stuck terminating have gone."""

from __future__ import annotations

import time
from collections.abc import Mapping

from handlers.checks.runtime_wedged import NAMED_PODS, overdue_terminating, pod_ref
from handlers.context import Context
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
    return ", ".join(refs[:NAMED_PODS]) + (f" and {more} more" if more > 0 else "")


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
                f"{outcome.summary}; no pod is stuck terminating on {plan.target}",
                outcome.output,
            )
        if time.monotonic() >= deadline:
            return Outcome(
                False,
                f"{outcome.summary}, but these pods are still stuck terminating on "
                f"{plan.target}: {_named(stuck)}; drain and reboot the node",
                outcome.output,
            )
        time.sleep(POLL_S)


def _verify(context: Context, plan: Plan) -> Verification:
    stuck = [pod_ref(p) for p in overdue_terminating(_pods(context))]
    if stuck:
        return Verification(False, f"still stuck terminating on {plan.target}: {_named(stuck)}")
    return Verification(True, f"no pod is stuck terminating on {plan.target}")


@remediation(
    "containerd-restart",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: (
        f"on {t}: restart containerd (ending its process if it will not stop) and kubelet, as a "
        "scheduled task, then wait until the pods stuck terminating have gone and verify"
    ),
    impact=lambda t: (
        f"every pod on {t} is affected: exec sessions and probes fail and HostProcess "
        "containers (kube-proxy, CNI) are cut while containerd and kubelet restart"
    ),
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
    affected = f"pods affected on {target}: " + (_named(running) if running else "none running")
    if stuck:
        affected += f"; stuck terminating (to finish): {_named(sorted(stuck))}"
    return plan_script(
        context,
        "containerd-restart",
        target,
        "containerd-restart",
        f"run containerd-restart.ps1 on {target} as a scheduled task (restarting the runtime "
        f"cuts the connection that starts it); {affected}",
    )
