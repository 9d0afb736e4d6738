"""`known-bad-build`: the node runs a Windows update with a container-networking regression."""

from __future__ import annotations

from handlers import knowledge, windows
from handlers.context import Context
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable

CHECK_ID = "known-bad-build"
# Node annotations the overlay (VXLAN) CNIs set: flannel's backend, Calico's VXLAN tunnel address.
OVERLAY_ANNOTATIONS = {
    "flannel.alpha.coreos.com/backend-type": "vxlan",
    "projectcalico.org/IPv4VXLANTunnelAddr": None,  # any value
}
DOCS = tuple(dict.fromkeys(s for row in knowledge.build_regressions() for s in row.sources))


def _ranges() -> tuple[str, ...]:
    return tuple(
        f"{row.build}.{row.first_bad} ({row.first_bad_update}) up to {row.build}.{row.fixed_in} "
        f"({row.fixed_update}, the fix): {row.symptom}"
        for row in knowledge.build_regressions()
    )


@check(
    CHECK_ID,
    title=N_("Windows update with a networking regression"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=N_(
            "Some Windows cumulative updates broke container networking until a later update "
            "fixed it. A node whose kernelVersion revision lies in such a range loses pod "
            "networking however healthy kubelet, kube-proxy and the CNI look. The ranges, each "
            "with its sources, are in handlers/data/known_bad_builds.yaml; they are listed "
            "among the signals below."
        ),
        signals=(
            N_("node nodeInfo.kernelVersion 10.0.<build>.<revision> inside a known range"),
            N_("failures (General failure, pods unreachable) clustered on nodes of one revision"),
            *_ranges(),
        ),
        fixes=(
            N_("move the node pool to a node image with the fixing update (or later)"),
            N_("until then, keep workloads on nodes of an unaffected revision"),
        ),
        links=DOCS,
    ),
)
def known_bad_build(context: Context) -> list[Finding]:
    facts = context.node_facts
    if facts is None or not facts.windows or facts.build is None:
        return not_applicable(CHECK_ID, N_("not on a Windows node"))
    revision = windows.revision_from_kernel_version(facts.kernel_version)
    kernel = f"node {facts.name} kernelVersion {facts.kernel_version}"
    if revision is None:
        return [
            Finding(
                CHECK_ID,
                "info",
                _("Windows update revision unknown"),
                _(
                    "the node's kernelVersion names no update revision to compare with "
                    "known regressions"
                ),
                (kernel,),
            )
        ]
    found = knowledge.regressions_for(facts.build, revision)
    if not found:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("No known networking regression in this Windows update"),
                _(
                    "{build}.{revision} is not in any range of known container-networking "
                    "regressions"
                ).format(build=facts.build, revision=revision),
                (kernel,),
            )
        ]
    row = found[0]
    evidence: tuple[str, ...] = (
        kernel,
        _(
            "known regression: revisions {first_bad} up to {fixed_in} of build {build}; fixed "
            "in {build}.{fixed_in} ({fixed_update})"
        ).format(
            first_bad=row.first_bad,
            fixed_in=row.fixed_in,
            build=row.build,
            fixed_update=row.fixed_update,
        ),
    )
    overlay = _overlay_sign(context)
    if row.networks == "overlay" and overlay is None:
        return [
            Finding(
                CHECK_ID,
                "info",
                _("Windows update with an overlay-network regression"),
                _(
                    "{name} runs Windows {build}.{revision}, which has a known regression "
                    "in overlay (VXLAN) pod networks: {symptom}. The node shows no overlay "
                    "annotation ({annotations}), so it is probably not affected; if it is, the "
                    "fix is {build2}.{fixed_in} ({fixed_update})."
                ).format(
                    name=facts.name,
                    build=facts.build,
                    revision=revision,
                    symptom=row.symptom,
                    annotations=", ".join(OVERLAY_ANNOTATIONS),
                    build2=row.build,
                    fixed_in=row.fixed_in,
                    fixed_update=row.fixed_update,
                ),
                evidence,
                (),
                row.sources,
            )
        ]
    if overlay is not None:
        evidence = (
            *evidence,
            _("overlay network: node annotation {annotation}").format(annotation=overlay),
        )
    scope = (
        ""
        if row.networks == "any"
        else " " + _("It affects {networks} pod networks only.").format(networks=row.networks)
    )
    return [
        Finding(
            CHECK_ID,
            "warning",
            _("Windows update with a known container-networking regression"),
            _(
                "{name} runs Windows {build}.{revision}, inside the regression that "
                "started with {build2}.{first_bad} ({first_bad_update}): "
                "{symptom}.{scope} Fixed in {build2}.{fixed_in} ({fixed_update}): move "
                "the node pool to a node image with that update or later."
            ).format(
                name=facts.name,
                build=facts.build,
                revision=revision,
                build2=row.build,
                first_bad=row.first_bad,
                first_bad_update=row.first_bad_update,
                symptom=row.symptom,
                scope=scope,
                fixed_in=row.fixed_in,
                fixed_update=row.fixed_update,
            ),
            evidence,
            (),
            row.sources,
        )
    ]


def _overlay_sign(context: Context) -> str | None:
    """The node annotation that shows an overlay (VXLAN) pod network, as `key=value`, or None."""
    assert context.node is not None
    annotations = (context.node.get("metadata") or {}).get("annotations") or {}
    for key, wanted in OVERLAY_ANNOTATIONS.items():
        value = annotations.get(key)
        if value is not None and (wanted is None or str(value).lower() == wanted):
            return f"{key}={value}"
    return None
