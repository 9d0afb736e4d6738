"""winpod's dated knowledge tables (handlers/data/*.yaml), loaded once into typed rows.

Facts that change with Windows updates and support calendars live in data files, each row with
its sources, so that keeping them current needs no code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

Version = tuple[int, ...]


def _load(name: str) -> dict[str, Any]:
    text = (resources.files("handlers") / "data" / name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"handlers/data/{name} must be a mapping")  # i18n: a packaging bug
    return data


def parse_version(text: str) -> Version | None:
    """(major, minor[, patch]) from "v1.33.2", "1.7.20+azure", "1.26"; None if none."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def runtime_version(container_runtime_version: str) -> tuple[str, Version | None]:
    """("containerd", (1, 7, 20)) from nodeInfo.containerRuntimeVersion "containerd://1.7.20"."""
    name, _, version = container_runtime_version.partition("://")
    return name.strip().lower(), parse_version(version)


@dataclass(frozen=True)
class BuildRegression:
    """A Windows update range with a known container-networking regression."""

    build: int
    first_bad: int
    first_bad_update: str
    fixed_in: int
    fixed_update: str
    networks: str  # "any" | "overlay"
    symptom: str
    sources: tuple[str, ...]

    def affects(self, build: int, revision: int) -> bool:
        return build == self.build and self.first_bad <= revision < self.fixed_in


@cache
def build_regressions() -> tuple[BuildRegression, ...]:
    rows = _load("known_bad_builds.yaml")["regressions"]
    return tuple(
        BuildRegression(
            build=int(row["build"]),
            first_bad=int(row["first_bad"]),
            first_bad_update=str(row["first_bad_update"]),
            fixed_in=int(row["fixed_in"]),
            fixed_update=str(row["fixed_update"]),
            networks=str(row["networks"]),
            symptom=" ".join(str(row["symptom"]).split()),
            sources=tuple(str(s) for s in row["sources"]),
        )
        for row in rows
    )


def regressions_for(build: int, revision: int) -> list[BuildRegression]:
    return [row for row in build_regressions() if row.affects(build, revision)]


@dataclass(frozen=True)
class OsLifecycle:
    """When a Windows release stops being supported on Kubernetes nodes."""

    build: int
    name: str
    unsupported_from: Version | None
    no_new_pools_from: Version | None
    retired_on: date | None
    why: str
    fix: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeLifecycle:
    """From which Kubernetes version the kubelet refuses a container runtime (below a version)."""

    runtime: str
    below: Version | None  # None: every version of the runtime
    unsupported_from: Version
    why: str
    fix: str
    sources: tuple[str, ...]

    def matches(self, runtime: str, version: Version | None) -> bool:
        if runtime != self.runtime:
            return False
        return self.below is None or (version is not None and version < self.below)


def _optional_version(value: Any) -> Version | None:
    return None if value is None else parse_version(str(value))


def _required_version(value: Any) -> Version:
    version = parse_version(str(value))
    if version is None:
        raise ValueError(f"not a version: {value!r}")
    return version


@cache
def os_lifecycle() -> tuple[OsLifecycle, ...]:
    return tuple(
        OsLifecycle(
            build=int(row["build"]),
            name=str(row["name"]),
            unsupported_from=_optional_version(row.get("unsupported_from")),
            no_new_pools_from=_optional_version(row.get("no_new_pools_from")),
            retired_on=row.get("retired_on"),
            why=" ".join(str(row["why"]).split()),
            fix=str(row["fix"]),
            sources=tuple(str(s) for s in row["sources"]),
        )
        for row in _load("os_lifecycle.yaml")["os"]
    )


@cache
def runtime_lifecycle() -> tuple[RuntimeLifecycle, ...]:
    return tuple(
        RuntimeLifecycle(
            runtime=str(row["runtime"]),
            below=_optional_version(row.get("below")),
            unsupported_from=_required_version(row["unsupported_from"]),
            why=" ".join(str(row["why"]).split()),
            fix=str(row["fix"]),
            sources=tuple(str(s) for s in row["sources"]),
        )
        for row in _load("os_lifecycle.yaml")["runtime"]
    )


def version_text(version: Version) -> str:
    return ".".join(str(part) for part in version)
