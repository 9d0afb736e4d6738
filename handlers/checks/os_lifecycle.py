"""`os-lifecycle`: the node's Windows release or container runtime is past support."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from handlers import knowledge, windows
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.knowledge import Version, version_text
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable

CHECK_ID = "os-lifecycle"
DOCS = tuple(
    dict.fromkeys(
        [
            *(s for row in knowledge.os_lifecycle() for s in row.sources),
            *(s for row in knowledge.runtime_lifecycle() for s in row.sources),
        ]
    )
)


@dataclass(frozen=True)
class Concern:
    """One lifecycle rule that applies to the node, and how loudly to say it."""

    severity: Literal["warning", "info"]
    text: str
    sources: tuple[str, ...]


def assess(build: int, runtime: str, cluster: Version | None, today: date) -> list[Concern]:
    """The lifecycle rules (handlers/data/os_lifecycle.yaml) that a node of `build` with
    `runtime` (nodeInfo.containerRuntimeVersion) meets on a cluster of version `cluster`."""
    concerns: list[Concern] = []
    release = windows.describe_build(build)
    for row in knowledge.os_lifecycle():
        if row.build != build:
            continue
        if row.unsupported_from and cluster:
            ends = version_text(row.unsupported_from)
            if cluster[:2] >= row.unsupported_from:
                concerns.append(
                    Concern(
                        "warning",
                        _(
                            "{release} is not supported on Kubernetes {ends} and later (this "
                            "cluster is {cluster}): {why}; {fix}."
                        ).format(
                            release=release,
                            ends=ends,
                            cluster=version_text(cluster),
                            why=row.why,
                            fix=row.fix,
                        ),
                        row.sources,
                    )
                )
            elif (cluster[0], cluster[1] + 1) >= row.unsupported_from:
                concerns.append(
                    Concern(
                        "info",
                        _(
                            "{release} will not be supported from Kubernetes {ends}: {why}; {fix} "
                            "before upgrading."
                        ).format(release=release, ends=ends, why=row.why, fix=row.fix),
                        row.sources,
                    )
                )
        if row.no_new_pools_from and cluster and cluster[:2] >= row.no_new_pools_from:
            concerns.append(
                Concern(
                    "info",
                    _("{why} (this cluster is {cluster}); {fix}.").format(
                        why=row.why, cluster=version_text(cluster), fix=row.fix
                    ),
                    row.sources,
                )
            )
        if row.retired_on:
            if today > row.retired_on:
                concerns.append(
                    Concern(
                        "warning",
                        _("{release} is out of support since {date}: {why}; {fix}.").format(
                            release=release,
                            date=row.retired_on.isoformat(),
                            why=row.why,
                            fix=row.fix,
                        ),
                        row.sources,
                    )
                )
            else:
                concerns.append(
                    Concern(
                        "info",
                        _("{release} goes out of support on {date}: {why}; {fix}.").format(
                            release=release,
                            date=row.retired_on.isoformat(),
                            why=row.why,
                            fix=row.fix,
                        ),
                        row.sources,
                    )
                )
    name, version = knowledge.runtime_version(runtime)
    for rule in knowledge.runtime_lifecycle():
        if cluster and rule.matches(name, version) and cluster[:2] >= rule.unsupported_from:
            concerns.append(
                Concern(
                    "warning",
                    _(
                        "The container runtime {runtime} is not supported on Kubernetes {ends} "
                        "and later (this cluster is {cluster}): {why}; {fix}."
                    ).format(
                        runtime=runtime,
                        ends=version_text(rule.unsupported_from),
                        cluster=version_text(cluster),
                        why=rule.why,
                        fix=rule.fix,
                    ),
                    rule.sources,
                )
            )
    return concerns


def _cluster_version(context: Context) -> tuple[Version | None, str]:
    """The cluster's version and where it came from: `/version`, else the node's kubelet."""
    try:
        served = context.cluster_version()
        version = knowledge.parse_version(served)
        if version is not None:
            return version, _("cluster version {version} (from /version)").format(version=served)
        problem = _("/version said {answer}").format(answer=repr(served))
    except WinpodError as exc:
        problem = str(exc)
    assert context.node is not None
    kubelet = str(((context.node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion"))
    return knowledge.parse_version(kubelet), _(
        "cluster version unknown ({problem}); using the node's kubelet {kubelet}"
    ).format(problem=problem, kubelet=kubelet)


@check(
    CHECK_ID,
    title=N_("Windows and runtime support"),
    scopes=("node",),
    explanation=Explanation(
        cause=(
            N_(
                "Windows releases and container runtimes drop out of support as Kubernetes moves "
                "on: "
                "Windows Server 2019 is not supported on AKS from Kubernetes 1.33, no new Windows "
                "Server 2022 pools are created from 1.35, the Annual Channel was retired on "
                "2026-05-15, and from 1.26 a kubelet will not register with a runtime lacking CRI "
                "v1. Nothing fails at once, but upgrades and support stop. The rules, with their "
                "dates and sources, are in handlers/data/os_lifecycle.yaml. Reported as warning or "
                "info, never as an error."
            )
        ),
        signals=(
            N_("node build (nodeInfo.kernelVersion) and osImage"),
            N_("nodeInfo.containerRuntimeVersion (containerd://1.x, docker://…)"),
            N_("the cluster's version from /version (else the node's kubeletVersion)"),
        ),
        fixes=(
            N_("move workloads to node pools on a supported Windows Server LTSC release"),
            N_("upgrade containerd to 1.7 or later"),
        ),
        links=DOCS,
    ),
)
def os_lifecycle(context: Context) -> list[Finding]:
    facts = context.node_facts
    if facts is None or not facts.windows or facts.build is None:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    assert context.node is not None
    runtime = context.container_runtime
    cluster, cluster_evidence = _cluster_version(context)
    evidence = (
        f"node {facts.name}: {facts.os_image or 'Windows'}, kernelVersion {facts.kernel_version}, "
        f"runtime {runtime or '(not reported)'}",
        cluster_evidence,
    )
    concerns = assess(facts.build, runtime, cluster, datetime.now(UTC).date())
    if not concerns:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Windows release and runtime are supported"),
                _(
                    "{build} with {runtime} has no known support end for this cluster version"
                ).format(
                    build=windows.describe_build(facts.build),
                    runtime=runtime or _("its runtime"),
                ),
                evidence,
            )
        ]
    warnings = [c for c in concerns if c.severity == "warning"]
    return [
        Finding(
            CHECK_ID,
            "warning" if warnings else "info",
            _("Windows release or runtime past support")
            if warnings
            else _("Windows release or runtime nearing the end of support"),
            " ".join(f"{c.text[0].upper()}{c.text[1:]}" for c in concerns),
            evidence,
            (),
            tuple(dict.fromkeys(s for c in concerns for s in c.sources)),
        )
    ]
