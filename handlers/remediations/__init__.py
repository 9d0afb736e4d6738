"""Remediations (SPEC §4) as registered specs: what each does, how risky, how it runs, how it
is verified. A remediation is planned first (the exact script, command or patch, shown before
approval and in dry-run) and only then run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from config.settings import Settings
from handlers import engine, names
from handlers.context import Context, Transports
from handlers.errors import BadInput, NotFound
from handlers.model import Finding, Risk
from handlers.registry import REMEDIATION_RISK, Registry

TargetKind = Literal["node", "pod", "cluster"]
PlanKind = Literal["node-script", "pod-exec", "api", "instructions"]


@dataclass(frozen=True)
class Plan:
    """Exactly what will run: shown before approval, in dry-run, and in the audit log."""

    remediation: str
    target: str
    kind: PlanKind
    what: str
    preview: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    summary: str
    output: str = ""


@dataclass(frozen=True)
class Verification:
    fixed: bool | None  # None: nothing could be verified
    summary: str
    evidence: tuple[str, ...] = ()


Planner = Callable[[Context, str, Mapping[str, str]], Plan]
Runner = Callable[[Context, Plan], Outcome]
Verifier = Callable[[Context, Plan], Verification]


@dataclass(frozen=True)
class RemediationSpec:
    id: str
    target_kind: TargetKind
    risk: Risk
    does: Callable[[str], str]
    impact: Callable[[str], str]
    checks: tuple[str, ...]  # the checks that offer it, re-run to verify
    plan: Planner
    run: Runner
    verify: Verifier | None = None  # beyond re-running the checks
    # False when it must also work on a node that is gone (closing RDP to a deleted node).
    target_must_exist: bool = True


SPECS: dict[str, RemediationSpec] = {}


def remediation(
    remediation_id: str,
    *,
    target_kind: TargetKind,
    does: Callable[[str], str],
    impact: Callable[[str], str],
    checks: tuple[str, ...],
    run: Runner,
    verify: Verifier | None = None,
    target_must_exist: bool = True,
) -> Callable[[Planner], Planner]:
    """Register a remediation; the decorated function is its planner."""

    def register(planner: Planner) -> Planner:
        SPECS[remediation_id] = RemediationSpec(
            remediation_id,
            target_kind,
            REMEDIATION_RISK[remediation_id],
            does,
            impact,
            checks,
            planner,
            run,
            verify,
            target_must_exist,
        )
        return planner

    return register


REMEDIATION_MODULES = (
    "rdp_access",
    "hns_reset",
    "kube_proxy_restart",
    "pod_dns_override",
    "dns_keeper",
    "mac_spoofing_on",
    "pin_windows_build",
    "fix_sandbox_image",
)


def all_specs() -> dict[str, RemediationSpec]:
    import importlib  # noqa: PLC0415 - remediations register themselves on import

    for module in REMEDIATION_MODULES:
        importlib.import_module(f"handlers.remediations.{module}")
    return SPECS


def get_spec(remediation_id: str) -> RemediationSpec:
    spec = all_specs().get(remediation_id)
    if spec is None:
        known = ", ".join(all_specs())
        raise BadInput(f"unknown remediation {remediation_id!r}; known: {known}")
    return spec


def impact_texts(target_by_id: dict[str, str] | None = None) -> dict[str, str]:
    """Impact sentences for confirm dialogs, naming each remediation's target when known."""
    targets = target_by_id or {}
    return {rid: s.impact(targets.get(rid, "the target")) for rid, s in all_specs().items()}


def context_for(
    transports: Transports, settings: Settings, spec: RemediationSpec, target: str
) -> Context:
    """The shared per-target memo for planning and running (node, pod, or cluster)."""
    cluster = transports.cluster
    if spec.target_kind == "node":
        node_name = names.node_name(target)
        try:
            node = cluster.get("Node", node_name)
        except NotFound:
            if not spec.target_must_exist:
                return Context(transports, settings, "Node", None, None)
            raise NotFound(f"node {node_name} not found in context {cluster.context}") from None
        return Context(transports, settings, "Node", None, node)
    if spec.target_kind == "pod":
        namespace, pod_name = names.pod_ref(target)
        try:
            pod = cluster.get("Pod", pod_name, namespace)
        except NotFound:
            raise NotFound(
                f"pod {namespace}/{pod_name} not found in context {cluster.context}"
            ) from None
        pod_node = (pod.get("spec") or {}).get("nodeName")
        return Context(
            transports,
            settings,
            "Pod",
            pod,
            cluster.get("Node", str(pod_node)) if pod_node else None,
        )
    if target != "cluster":
        raise BadInput(f"{spec.id} acts on the whole cluster: its target is `cluster`")
    return Context(transports, settings, "Node", None, None)


def plan(
    transports: Transports,
    settings: Settings,
    remediation_id: str,
    target: str,
    params: Mapping[str, str] | None = None,
) -> Plan:
    spec = get_spec(remediation_id)
    return spec.plan(context_for(transports, settings, spec, target), target, params or {})


def execute(transports: Transports, settings: Settings, the_plan: Plan) -> Outcome:
    spec = get_spec(the_plan.remediation)
    return spec.run(context_for(transports, settings, spec, the_plan.target), the_plan)


def verify(
    transports: Transports,
    settings: Settings,
    the_plan: Plan,
    diagnosed: str | None,
    checks: Registry,
    attempts: int = 3,
    pause_s: float = 2.0,
) -> Verification:
    """Re-run the checks that offered the remediation on what was diagnosed; a few attempts,
    because Windows networking takes a moment to settle after a reset."""
    spec = get_spec(the_plan.remediation)
    result = Verification(None, "nothing to verify")
    for attempt in range(attempts):
        result = _verify_once(transports, settings, spec, the_plan, diagnosed, checks)
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
    diagnosed: str | None,
    checks: Registry,
) -> Verification:
    own = Verification(None, "nothing to verify for this target")
    if spec.verify is not None:
        own = spec.verify(context_for(transports, settings, spec, the_plan.target), the_plan)
        if own.fixed is not True:
            return own
    subset = Registry()
    for check_id in spec.checks:
        check_spec = checks.get(check_id)
        if check_spec is not None:
            subset.check(
                check_id,
                title=check_spec.title,
                scopes=tuple(check_spec.scopes),
                needs=tuple(check_spec.needs),
                explanation=check_spec.explanation,
            )(check_spec.run)
    reference = diagnosed or (the_plan.target if spec.target_kind != "cluster" else None)
    if reference is None or not subset.all():
        return own
    if "/" in reference:
        diagnosis = engine.diagnose_pod(transports, settings, reference, subset)
    else:
        diagnosis = engine.diagnose_node(transports, settings, reference, subset)
    relevant = [f for f in diagnosis.findings if f.check in spec.checks and f.severity != "info"]
    failing = [f for f in relevant if f.severity in ("error", "warning")]
    evidence = tuple(_finding_line(f) for f in relevant)
    if not relevant:
        return Verification(None, f"the checks do not apply to {reference}", evidence)
    if failing:
        return Verification(False, f"still failing on {reference}: {failing[0].title}", evidence)
    return Verification(True, ", ".join(f.title for f in relevant), evidence)


def _finding_line(finding: Finding) -> str:
    detail = "; ".join(finding.evidence[:3])
    return f"{finding.severity} {finding.check}: {finding.title}" + (
        f" ({detail})" if detail else ""
    )


def pretty(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
