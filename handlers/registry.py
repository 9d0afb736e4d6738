"""Checks and remediations as frozen specs in one injectable registry (tests build a fresh one).

The default registry is filled by importing the modules listed in `handlers.checks` and
`handlers.remediations`; each spec holds everything about its subject. Which checks verify a
remediation is declared once, on the remediation (`verified_by`); a check offers remediations by
id and learns their risk from here.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from handlers import names
from handlers.context import Context
from handlers.errors import BadInput
from handlers.i18n import _
from handlers.model import Finding, RemediationRef, Risk

Scope = Literal["pod", "node"]
CheckFunction = Callable[[Context], list[Finding]]
PlanKind = Literal["node-script", "pod-exec", "api", "instructions"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high")


class TargetKind(StrEnum):
    """What a remediation acts on, or what a diagnosis looked at: one spelling everywhere."""

    NODE = "node"
    POD = "pod"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class TargetRef:
    """A validated target: `NODE`, `NAMESPACE/POD`, or `cluster`, with its kind said, never
    guessed from its spelling."""

    kind: TargetKind
    ref: str

    @classmethod
    def parse(cls, kind: TargetKind | str, text: str) -> TargetRef:
        kind = TargetKind(kind)
        if kind is TargetKind.NODE:
            return cls(kind, names.node_name(text))
        if kind is TargetKind.POD:
            namespace, pod = names.pod_ref(text)
            return cls(kind, f"{namespace}/{pod}")
        if text != "cluster":
            raise BadInput(
                _("{text}: a cluster-wide remediation's target is `cluster`").format(
                    text=repr(text)
                )
            )
        return cls(kind, "cluster")

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "ref": self.ref}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetRef:
        return cls(TargetKind(str(data["kind"])), str(data["ref"]))


@dataclass(frozen=True)
class Explanation:
    """The knowledge behind a check, for `winpod explain` and the README."""

    cause: str
    signals: tuple[str, ...]
    fixes: tuple[str, ...]
    links: tuple[str, ...]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    scopes: frozenset[Scope]
    explanation: Explanation
    run: CheckFunction


@dataclass(frozen=True)
class Plan:
    """Exactly what will run: shown before approval, frozen with the request, and executed as
    approved. `data` holds what the runner needs (JSON values only, so the plan can be stored).
    `commands` are the lines of `preview` that change state, shown to approvers first;
    `runs_on` names the host a node script runs on when that is not the target (its Hyper-V
    host). Both are read from the rest, so `differences` ignores them."""

    remediation: str
    target: str
    kind: PlanKind
    what: str
    preview: str
    data: dict[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    runs_on: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "remediation": self.remediation,
            "target": self.target,
            "kind": self.kind,
            "what": self.what,
            "preview": self.preview,
            "data": self.data,
            "commands": list(self.commands),
            "runs_on": self.runs_on,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            str(data["remediation"]),
            str(data["target"]),
            data["kind"],
            str(data["what"]),
            str(data["preview"]),
            dict(data.get("data") or {}),
            # plans stored before these fields existed have neither
            tuple(str(c) for c in data.get("commands") or ()),
            str(data.get("runs_on") or ""),
        )

    def differences(self, other: Plan) -> list[str]:
        """What `other` (planned anew) would do differently: the keys of `data` that changed,
        and the script or command itself. Empty when running this plan still means the same."""
        changed = [
            key
            for key in sorted(set(self.data) | set(other.data))
            if _canonical(self.data.get(key)) != _canonical(other.data.get(key))
        ]
        if self.kind != other.kind:
            changed.append("kind")
        if self.kind in ("node-script", "pod-exec") and self.preview != other.preview:
            changed.append("script")
        return changed


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


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
    verified_by: tuple[str, ...]  # the checks re-run on what was diagnosed to verify it
    plan: Planner
    run: Runner
    verify: Verifier | None = None  # beyond re-running the checks
    # False when it must also work on a node that is gone (closing RDP to a deleted node).
    target_must_exist: bool = True
    # False only for what merely removes access (rdp-close): it runs at once, audited.
    needs_approval: bool = True
    # Remediations with the same scope on one target run one at a time; node fixes share
    # `target`; closing RDP never waits behind an open that waits for its load balancer.
    lock_scope: str = "target"


class Registry:
    def __init__(self) -> None:
        self._checks: dict[str, CheckSpec] = {}
        self._remediations: dict[str, RemediationSpec] = {}

    # --- checks -------------------------------------------------------------------------
    def check(
        self,
        check_id: str,
        *,
        title: str,
        scopes: tuple[Scope, ...],
        explanation: Explanation,
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Register the decorated function as a check; it stays a plain, testable function."""

        def register(function: CheckFunction) -> CheckFunction:
            if check_id in self._checks:
                raise ValueError(f"check {check_id} registered twice")
            self._checks[check_id] = CheckSpec(
                check_id, title, frozenset(scopes), explanation, function
            )
            return function

        return register

    def get(self, check_id: str) -> CheckSpec | None:
        return self._checks.get(check_id)

    def all(self) -> list[CheckSpec]:
        return list(self._checks.values())

    def for_scope(self, scope: Scope, only: frozenset[str] | None = None) -> list[CheckSpec]:
        return [
            spec
            for spec in self._checks.values()
            if scope in spec.scopes and (only is None or spec.id in only)
        ]

    # --- remediations -------------------------------------------------------------------
    def remediation(
        self,
        remediation_id: str,
        *,
        target_kind: TargetKind,
        risk: Risk,
        does: Callable[[str], str],
        impact: Callable[[str], str],
        verified_by: tuple[str, ...],
        run: Runner,
        verify: Verifier | None = None,
        target_must_exist: bool = True,
        needs_approval: bool = True,
        lock_scope: str = "target",
    ) -> Callable[[Planner], Planner]:
        """Register a remediation; the decorated function is its planner."""

        def register(planner: Planner) -> Planner:
            if remediation_id in self._remediations:
                raise ValueError(f"remediation {remediation_id} registered twice")
            self._remediations[remediation_id] = RemediationSpec(
                remediation_id,
                target_kind,
                risk,
                does,
                impact,
                verified_by,
                planner,
                run,
                verify,
                target_must_exist,
                needs_approval,
                lock_scope,
            )
            return planner

        return register

    def remediation_spec(self, remediation_id: str) -> RemediationSpec:
        spec = self._remediations.get(remediation_id)
        if spec is None:
            known = ", ".join(self._remediations)
            raise BadInput(f"unknown remediation {remediation_id!r}; known: {known}")
        return spec

    def remediations(self) -> list[RemediationSpec]:
        return list(self._remediations.values())

    def offer(self, remediation_id: str, target: str) -> RemediationRef:
        return RemediationRef(remediation_id, target, self.remediation_spec(remediation_id).risk)


REGISTRY = Registry()
check = REGISTRY.check
remediation = REGISTRY.remediation


@functools.cache
def default_registry() -> Registry:
    """The shared registry with every check and remediation module imported once (they
    register themselves on import)."""
    from handlers.checks import CHECK_MODULES  # noqa: PLC0415 - those import this module
    from handlers.remediations import REMEDIATION_MODULES  # noqa: PLC0415

    for module in CHECK_MODULES:
        importlib.import_module(f"handlers.checks.{module}")
    for module in REMEDIATION_MODULES:
        importlib.import_module(f"handlers.remediations.{module}")
    return REGISTRY


def offer(remediation_id: str, target: str) -> RemediationRef:
    """A remediation offered by a check, with the risk its own spec declares."""
    return default_registry().offer(remediation_id, target)


def not_applicable(check_id: str, why: str) -> list[Finding]:
    """`why` is marked with N_() where it is written, translated here."""
    return [Finding(check_id, "info", _("{check}: not applicable").format(check=check_id), _(why))]


def could_not_check(check_id: str, what: str, why: object) -> list[Finding]:
    """`what` is marked with N_() where it is written (or is already translated, when it names
    something), translated here."""
    return [
        Finding(check_id, "warning", _("Could not check {what}").format(what=_(what)), str(why))
    ]
