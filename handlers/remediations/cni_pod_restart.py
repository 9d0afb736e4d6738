"""`cni-pod-restart`: delete the node's CNI pod so that its DaemonSet starts a fresh one, then
wait for the new one to be Ready (the sandboxes that waited for a network can then start)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from handlers.checks.cni_not_ready import cni_pod, is_ready
from handlers.context import Context
from handlers.errors import BadInput, NotFound
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation

POLL_S = 1.0


def _run(context: Context, plan: Plan) -> Outcome:
    cluster = context.transports.cluster
    namespace, name, node = plan.data["namespace"], plan.data["name"], plan.target
    with contextlib.suppress(NotFound):  # gone already: its DaemonSet starts the next one
        cluster.delete("Pod", name, namespace)
    deadline = time.monotonic() + context.settings.work.restart_timeout.total_seconds()
    while True:
        pods = cluster.list("Pod", field_selector=f"spec.nodeName={node}")
        fresh = cni_pod([p for p in pods if p["metadata"].get("uid") != plan.data["uid"]])
        if fresh is not None and is_ready(fresh):
            new_name = fresh["metadata"]["name"]
            return Outcome(
                True,
                _("deleted {old}; {new} is Ready").format(
                    old=f"{namespace}/{name}", new=f"{namespace}/{new_name}"
                ),
            )
        if time.monotonic() >= deadline:
            return Outcome(
                False,
                _(
                    "deleted {old}, but no new CNI pod was Ready on {node} in time; check "
                    "DaemonSet {daemonset}"
                ).format(
                    old=f"{namespace}/{name}",
                    node=node,
                    daemonset=f"{namespace}/{plan.data['daemonset']}",
                ),
            )
        time.sleep(POLL_S)


@remediation(
    "cni-pod-restart",
    risk="medium",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "delete the CNI pod on {target} (its DaemonSet starts a fresh one), wait until it is "
        "Ready, then verify that the pods there get their network"
    ).format(target=t),
    impact=lambda t: _(
        "new pods on {target} wait for a network for a few seconds while the CNI restarts"
    ).format(target=t),
    verified_by=("cni-not-ready",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    pod = cni_pod(context.pods_on_node())
    if pod is None:
        raise BadInput(
            _("no CNI pod (calico-node-windows, flannel, antrea) runs on {node}").format(
                node=target
            )
        )
    meta = pod["metadata"]
    daemonset = next(
        str(o.get("name"))
        for o in meta.get("ownerReferences") or []
        if o.get("kind") == "DaemonSet"
    )
    namespace, name = str(meta.get("namespace")), str(meta["name"])
    return Plan(
        "cni-pod-restart",
        target,
        "api",
        _("delete pod {pod} on {node}; DaemonSet {daemonset} starts a fresh one").format(
            pod=f"{namespace}/{name}", node=target, daemonset=daemonset
        ),
        _(
            "DELETE pod {pod} (uid {uid}); wait for the new {daemonset} pod on {node} to be Ready"
        ).format(pod=f"{namespace}/{name}", uid=meta.get("uid"), daemonset=daemonset, node=target),
        {"namespace": namespace, "name": name, "uid": meta.get("uid"), "daemonset": daemonset},
    )
