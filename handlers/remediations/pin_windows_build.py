"""`pin-windows-build`: give the pod's owning workload the right OS / Windows-build selector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import windows
from handlers.context import Context, pod_images
from handlers.errors import NotFound
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, Verification, pretty, remediation
from handlers.transports import KubeObject

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def _owner(context: Context) -> tuple[str, str] | None:
    """(kind, name) of the workload that owns the pod; None for a bare pod."""
    assert context.pod is not None
    namespace = str(context.pod["metadata"]["namespace"])
    for ref in (context.pod.get("metadata") or {}).get("ownerReferences") or []:
        kind, name = str(ref.get("kind")), str(ref.get("name"))
        if kind in WORKLOADS:
            return kind, name
        if kind == "ReplicaSet":
            try:
                replica_set = context.transports.cluster.get("ReplicaSet", name, namespace)
            except NotFound:
                return None
            for parent in (replica_set.get("metadata") or {}).get("ownerReferences") or []:
                if parent.get("kind") == "Deployment":
                    return "Deployment", str(parent.get("name"))
            return "ReplicaSet", name
    return None


def _selector(context: Context) -> dict[str, str]:
    assert context.pod is not None
    images = [image for _container, image in pod_images(context.pod)]
    if context.windows_node and any(windows.looks_like_linux_image(i) for i in images):
        return {"kubernetes.io/os": "linux"}
    selector = {"kubernetes.io/os": "windows"}
    builds = [b for b in (windows.image_build(i) for i in images) if b is not None]
    if builds:
        selector["node.kubernetes.io/windows-build"] = f"10.0.{max(builds)}"
    return selector


def _run(context: Context, plan: Plan) -> Outcome:
    if plan.kind == "instructions":
        return Outcome(
            True, _("a bare pod's nodeSelector cannot change: recreate it as shown"), plan.preview
        )
    kind, name = plan.data["kind"], plan.data["name"]
    namespace = plan.data["namespace"]
    context.transports.cluster.patch(kind, name, plan.data["patch"], namespace)
    return Outcome(
        True,
        _("patched {kind} {name}; its pods roll out with the new nodeSelector").format(
            kind=kind, name=f"{namespace}/{name}"
        ),
        plan.preview,
    )


def _verify(context: Context, plan: Plan) -> Verification:
    if plan.kind == "instructions":
        return Verification(None, _("nothing applied (bare pod)"))
    workload: KubeObject = context.transports.cluster.get(
        plan.data["kind"], plan.data["name"], plan.data["namespace"]
    )
    selector = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "nodeSelector"
    ) or {}
    wanted: dict[str, str] = plan.data["selector"]
    missing = {k: v for k, v in wanted.items() if selector.get(k) != v}
    if missing:
        return Verification(False, f"nodeSelector still lacks {missing}")
    return Verification(True, f"{plan.data['kind']} {plan.data['name']} now selects {wanted}")


@remediation(
    "pin-windows-build",
    risk="low",
    target_kind=TargetKind.POD,
    does=lambda t: _(
        "patch the workload owning {target} with the kubernetes.io/os and "
        "node.kubernetes.io/windows-build nodeSelector"
    ).format(target=t),
    impact=lambda t: _("the workload owning {target} rolls out its pods again").format(target=t),
    verified_by=(),
    run=_run,
    verify=_verify,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    assert context.pod is not None
    namespace = str(context.pod["metadata"]["namespace"])
    selector = _selector(context)
    owner = _owner(context)
    if owner is None or owner[0] == "ReplicaSet":
        spec_patch: dict[str, Any] = {"spec": {"nodeSelector": selector}}
        return Plan(
            "pin-windows-build",
            target,
            "instructions",
            _(
                "{pod} has no Deployment, StatefulSet or DaemonSet: recreate it with this "
                "nodeSelector"
            ).format(pod=target),
            pretty(spec_patch),
            {"selector": selector},
        )
    kind, name = owner
    patch = {"spec": {"template": {"spec": {"nodeSelector": selector}}}}
    return Plan(
        "pin-windows-build",
        target,
        "api",
        f"patch {kind} {namespace}/{name}: nodeSelector {selector}",
        pretty(patch),
        {"kind": kind, "name": name, "namespace": namespace, "patch": patch, "selector": selector},
    )
