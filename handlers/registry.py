"""Checks as registered, frozen specs in an injectable registry (tests build a fresh one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from handlers.context import Context
from handlers.model import Finding, RemediationRef, Risk

Scope = Literal["pod", "node"]
Need = Literal["cluster", "exec", "node-shell"]
CheckFunction = Callable[[Context], list[Finding]]

# SPEC §4: remediation ids and their risk; the remediation specs themselves live elsewhere.
REMEDIATION_RISK: dict[str, Risk] = {
    "hns-reset": "high",
    "kube-proxy-restart": "medium",
    "pod-dns-override": "low",
    "dns-keeper": "low",
    "mac-spoofing-on": "high",
    "pin-windows-build": "low",
    "fix-sandbox-image": "medium",
    "rdp-open": "high",
    "rdp-close": "low",
}


def offer(remediation_id: str, target: str) -> RemediationRef:
    return RemediationRef(remediation_id, target, REMEDIATION_RISK[remediation_id])


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
    needs: frozenset[Need]
    explanation: Explanation
    run: CheckFunction


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, CheckSpec] = {}

    def check(
        self,
        check_id: str,
        *,
        title: str,
        scopes: tuple[Scope, ...],
        needs: tuple[Need, ...],
        explanation: Explanation,
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Register the decorated function as a check; it stays a plain, testable function."""

        def register(function: CheckFunction) -> CheckFunction:
            if check_id in self._specs:
                raise ValueError(f"check {check_id} registered twice")
            self._specs[check_id] = CheckSpec(
                check_id, title, frozenset(scopes), frozenset(needs), explanation, function
            )
            return function

        return register

    def get(self, check_id: str) -> CheckSpec | None:
        return self._specs.get(check_id)

    def all(self) -> list[CheckSpec]:
        return list(self._specs.values())

    def for_scope(self, scope: Scope) -> list[CheckSpec]:
        return [spec for spec in self._specs.values() if scope in spec.scopes]


REGISTRY = Registry()
check = REGISTRY.check


def not_applicable(check_id: str, why: str) -> list[Finding]:
    return [Finding(check_id, "info", f"{check_id}: not applicable", why)]


def could_not_check(check_id: str, what: str, why: object) -> list[Finding]:
    return [Finding(check_id, "warning", f"Could not check {what}", str(why))]
