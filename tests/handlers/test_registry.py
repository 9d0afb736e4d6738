"""The registry is the one place checks and remediations are declared: the README's tables
must say what it says (ids, targets, risks), and every remediation a check offers exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.errors import BadInput
from handlers.registry import Registry, TargetKind, TargetRef, default_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under `## heading`."""
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def ids(cell: str) -> list[str]:
    return re.findall(r"`([a-z0-9-]+)`", cell)


def test_the_readme_check_table_lists_exactly_the_registered_checks() -> None:
    rows = table("Checks")
    listed = [ids(row[0])[0] for row in rows]
    assert sorted(listed) == sorted(spec.id for spec in default_registry().all())
    remediations = {spec.id for spec in default_registry().remediations()}
    for row in rows:
        offered = row[-1]
        if not offered.startswith("none"):
            assert ids(offered) and set(ids(offered)) <= remediations, row[0]


def test_the_readme_remediation_table_says_what_each_spec_declares() -> None:
    declared = {
        spec.id: (spec.target_kind.value, spec.risk) for spec in default_registry().remediations()
    }
    listed: dict[str, tuple[str, str]] = {}
    for row in table("Remediations"):
        names, target, risks = ids(row[0]), row[1], row[2].split(", ")
        kind = next(k.value for k in TargetKind if k.value in target)
        for name, risk in zip(names, risks * len(names) if len(risks) == 1 else risks, strict=True):
            listed[name] = (kind, risk)
    assert listed == declared


def test_a_target_kind_is_said_not_guessed() -> None:
    assert TargetRef.parse("pod", "web/iis-0") == TargetRef(TargetKind.POD, "web/iis-0")
    assert TargetRef.parse("node", "akswin000001").kind is TargetKind.NODE
    with pytest.raises(BadInput):
        TargetRef.parse("node", "web/iis-0")  # a pod reference is no node name
    with pytest.raises(BadInput):
        TargetRef.parse("cluster", "akswin000001")


def test_a_fresh_registry_is_independent_of_the_default_one() -> None:
    fresh = Registry()
    assert fresh.all() == [] and fresh.remediations() == []
    with pytest.raises(BadInput, match="unknown remediation"):
        fresh.remediation_spec("hns-reset")
    assert default_registry().remediation_spec("hns-reset").risk == "high"
