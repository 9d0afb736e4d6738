"""The diagnosis data model: findings and their evidence, free of Slack and Kubernetes types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info", "ok"]
Risk = Literal["low", "medium", "high"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2, "ok": 3}


@dataclass(frozen=True)
class RemediationRef:
    """A remediation offered for a finding: which one, on what, and how risky."""

    id: str
    target: str
    risk: Risk

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "risk": self.risk}


@dataclass(frozen=True)
class Finding:
    """One conclusion of one check, with the evidence that supports it."""

    check: str
    severity: Severity
    title: str
    summary: str
    evidence: tuple[str, ...] = ()
    remediations: tuple[RemediationRef, ...] = ()
    docs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "remediations": [r.to_json() for r in self.remediations],
            "docs": list(self.docs),
        }


@dataclass(frozen=True)
class Target:
    """What was diagnosed: a Pod (namespace, name) or a Node (name only)."""

    kind: Literal["Pod", "Node"]
    name: str
    namespace: str | None = None
    node: str | None = None
    phase: str | None = None
    reason: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.kind == "Pod" else self.name

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "Pod":
            data["namespace"] = self.namespace
        data["name"] = self.name
        data["node"] = self.node
        if self.kind == "Pod":
            data["phase"] = self.phase
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class NodeFacts:
    """What the Node object says about the Windows host."""

    name: str
    build: int | None
    kernel_version: str
    os_image: str
    boot_id: str
    windows: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "build": self.build,
            "kernelVersion": self.kernel_version,
            "osImage": self.os_image,
            "bootID": self.boot_id,
        }


@dataclass(frozen=True)
class Diagnosis:
    """The result of one diagnosis: SPEC §3's JSON."""

    target: Target
    node: NodeFacts | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    duration_ms: int = 0

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.to_json(),
            "node": None if self.node is None else self.node.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "duration_ms": self.duration_ms,
        }


def sort_findings(findings: list[Finding]) -> tuple[Finding, ...]:
    """Most severe first; a stable order within a severity (the checks' listed order)."""
    return tuple(sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity]))
