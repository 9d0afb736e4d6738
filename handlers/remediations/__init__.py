"""Remediations (SPEC §4) as registered specs: what each does, how risky, how it runs, how it
is verified. A remediation is planned first (the exact script, command or patch, shown before
approval and in dry-run), the plan is frozen, and only that plan is run."""

from __future__ import annotations

import json
import pkgutil
import time
from collections.abc import Mapping

from config.settings import Settings
from handlers import engine
from handlers.context import Context, Transports
from handlers.errors import NotFound
from handlers.i18n import _
from handlers.model import Finding
from handlers.registry import (
    Outcome,
    Plan,
    Registry,
    RemediationSpec,
    TargetKind,
    TargetRef,
    Verification,
    default_registry,
    remediation,
)

__all__ = [
    "REMEDIATION_MODULES",
    "Outcome",
    "Plan",
    "Verification",
    "context_for",
    "execute",
    "impact_texts",
    "plan",
    "pretty",
    "remediation",
    "verify",
]

# Every module of this package but the private helpers (`_node_script`): a new remediation is
# its own module and test, and nothing else to keep by hand.
REMEDIATION_MODULES = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)


def impact_texts(
    target_by_id: dict[str, str] | None = None, registry: Registry | None = None
) -> dict[str, str]:
    """Impact sentences for confirm dialogs, naming each remediation's target when known."""
    targets = target_by_id or {}
    return {
        spec.id: spec.impact(targets.get(spec.id, "the target"))
        for spec in (registry or default_registry()).remediations()
    }


def context_for(
    transports: Transports, settings: Settings, spec: RemediationSpec, target: TargetRef
) -> Context:
    """The shared per-target memo for planning and running (node, pod, or cluster)."""
    cluster = transports.cluster
    if target.kind is TargetKind.NODE:
        try:
            node = cluster.get("Node", target.ref)
        except NotFound:
            if not spec.target_must_exist:
                return Context(transports, settings, "Node", None, None)
            raise NotFound(
                _("node {node} not found in context {context}").format(
                    node=target.ref, context=cluster.context
                )
            ) from None
        return Context(transports, settings, "Node", None, node)
    if target.kind is TargetKind.POD:
        namespace, pod_name = target.ref.split("/", 1)
        try:
            pod = cluster.get("Pod", pod_name, namespace)
        except NotFound:
            raise NotFound(
                _("pod {pod} not found in context {context}").format(
                    pod=target.ref, context=cluster.context
                )
            ) from None
        pod_node = (pod.get("spec") or {}).get("nodeName")
        return Context(
            transports,
            settings,
            "Pod",
            pod,
            cluster.get("Node", str(pod_node)) if pod_node else None,
        )
    return Context(transports, settings, "Cluster", None, None)


def plan(
    transports: Transports,
    settings: Settings,
    remediation_id: str,
    target: str,
    params: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> Plan:
    """Validate the target for the remediation's kind, then plan exactly what would run."""
    spec = (registry or default_registry()).remediation_spec(remediation_id)
    ref = TargetRef.parse(spec.target_kind, target)
    return spec.plan(context_for(transports, settings, spec, ref), ref.ref, params or {})


def execute(
    transports: Transports, settings: Settings, the_plan: Plan, registry: Registry | None = None
) -> Outcome:
    """Run the plan as it is (never planned anew)."""
    spec = (registry or default_registry()).remediation_spec(the_plan.remediation)
    target = TargetRef(spec.target_kind, the_plan.target)
    return spec.run(context_for(transports, settings, spec, target), the_plan)


def verify(
    transports: Transports,
    settings: Settings,
    the_plan: Plan,
    diagnosed: TargetRef | None,
    registry: Registry | None = None,
    attempts: int = 3,
    pause_s: float = 2.0,
) -> Verification:
    """Re-run the checks that verify the remediation on what was diagnosed; a few attempts,
    because Windows networking takes a moment to settle after a reset."""
    registry = registry or default_registry()
    spec = registry.remediation_spec(the_plan.remediation)
    result = Verification(None, _("nothing to verify"))
    for attempt in range(attempts):
        result = _verify_once(transports, settings, spec, the_plan, diagnosed, registry)
        if result.fixed is not False:
            return result
        if attempt + 1 < attempts:
            time.sleep(pause_s)
    return result


def _verify_once(
    transports: Transports,
    settings: Settings,
    spec: RemediationSpec,
    the_plan: Plan,
    diagnosed: TargetRef | None,
    registry: Registry,
) -> Verification:
    own = Verification(None, _("nothing to verify for this target"))
    if spec.verify is not None:
        target = TargetRef(spec.target_kind, the_plan.target)
        own = spec.verify(context_for(transports, settings, spec, target), the_plan)
        if own.fixed is not True:
            return own
    if diagnosed is None and spec.target_kind is not TargetKind.CLUSTER:
        diagnosed = TargetRef(spec.target_kind, the_plan.target)
    only = frozenset(spec.verified_by)
    if diagnosed is None or not only:
        return own
    if diagnosed.kind is TargetKind.POD:
        diagnosis = engine.diagnose_pod(transports, settings, diagnosed.ref, registry, only=only)
    else:
        diagnosis = engine.diagnose_node(transports, settings, diagnosed.ref, registry, only=only)
    relevant = [f for f in diagnosis.findings if f.check in only and f.severity != "info"]
    failing = [f for f in relevant if f.severity in ("error", "warning")]
    evidence = tuple(_finding_line(f) for f in relevant)
    if not relevant:
        return Verification(
            None, _("the checks do not apply to {target}").format(target=diagnosed.ref), evidence
        )
    if failing:
        return Verification(
            False,
            _("still failing on {target}: {title}").format(
                target=diagnosed.ref, title=failing[0].title
            ),
            evidence,
        )
    # i18n: the separator of a list of clauses (", " in English)
    return Verification(True, _(", ").join(f.title for f in relevant), evidence)


def _finding_line(finding: Finding) -> str:
    detail = "; ".join(finding.evidence[:3])
    return f"{finding.severity} {finding.check}: {finding.title}" + (
        f" ({detail})" if detail else ""
    )


def pretty(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
