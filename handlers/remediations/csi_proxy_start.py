"""`csi-proxy-start`: start the csi-proxy service on a node, then wait until the CSI node plugins
that need it are Ready."""

from __future__ import annotations

import time
from collections.abc import Mapping

from handlers.checks.cni_not_ready import is_ready
from handlers.checks.csi_proxy import SERVICE, is_csi_node_plugin, pod_ref
from handlers.checks.hostprocess_pod import is_hostprocess
from handlers.context import Context
from handlers.errors import BadInput
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script
from handlers.transports import KubeObject

POLL_S = 1.0


def _plugins(context: Context) -> list[KubeObject]:
    pods = context.transports.cluster.list(
        "Pod", field_selector=f"spec.nodeName={context.node_name}"
    )
    return [p for p in pods if is_csi_node_plugin(p) and not is_hostprocess(p)]


def _run(context: Context, plan: Plan) -> Outcome:
    outcome = run_script(context, plan)[0]
    if not outcome.ok:
        return outcome
    deadline = time.monotonic() + context.settings.work.restart_timeout.total_seconds()
    while True:
        waiting = [pod_ref(p) for p in _plugins(context) if not is_ready(p)]
        if not waiting:
            return Outcome(
                True,
                _("{summary}; the CSI node plugins are Ready").format(summary=outcome.summary),
                outcome.output,
            )
        if time.monotonic() >= deadline:
            return Outcome(
                False,
                _(
                    "{summary}, but {pods} is not Ready yet: a crash-looping plugin waits up to 5 "
                    "minutes before its next start (delete the pod to start it now)"
                ).format(summary=outcome.summary, pods=", ".join(waiting)),
                outcome.output,
            )
        time.sleep(POLL_S)


@remediation(
    "csi-proxy-start",
    risk="medium",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: start the csi-proxy service, wait for the CSI node plugins there to be "
        "Ready, then verify"
    ).format(target=t),
    impact=lambda t: _(
        "none for running pods on {target}: it only starts a stopped service"
    ).format(target=t),
    verified_by=("csi-proxy",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    services = context.node_status().get("services") or {}
    if SERVICE not in services:
        raise BadInput(
            _(
                "csi-proxy is not installed as a service on {target}: install it, or deploy the "
                "CSI driver's HostProcess variant"
            ).format(target=target)
        )
    plugins = ", ".join(pod_ref(p) for p in context.pods_on_node() if is_csi_node_plugin(p))
    return plan_script(
        context,
        "csi-proxy-start",
        target,
        "csi-proxy-start",
        _(
            "run csi-proxy-start.ps1 on {target} (csi-proxy is {state}); CSI node plugins "
            "there: {plugins}"
        ).format(target=target, state=services[SERVICE], plugins=plugins or _("none found")),
    )
