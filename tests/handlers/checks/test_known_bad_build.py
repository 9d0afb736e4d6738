"""`known-bad-build` on the simulator: the node's exact update revision against the data file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers import knowledge

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_known_bad_build.yaml"
CHECK = "known-bad-build"
WC_516 = "https://github.com/microsoft/Windows-Containers/issues/516"


@pytest.mark.parametrize("node", ["akswin-july", "akswin-september"])
def test_a_revision_inside_the_july_2024_regression_is_named_with_its_fix(
    cluster: CheckCluster, node: str
) -> None:
    finding = cluster.node_finding(node, CHECK)

    assert finding.severity == "warning"
    assert "KB5040437" in finding.summary
    assert "Fixed in 20348.2762 (KB5044281" in finding.summary
    assert finding.evidence[0].startswith(f"node {node} kernelVersion 10.0.20348.")
    assert "fixed in 20348.2762" in finding.evidence[1]
    assert WC_516 in finding.docs
    assert finding.remediations == ()


def test_a_pod_on_the_bad_build_hears_it_too(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("shop/web-0", CHECK)

    assert finding.severity == "warning"
    assert finding.evidence[0] == "node akswin-july kernelVersion 10.0.20348.2582"


@pytest.mark.parametrize(
    ("node", "reference"), [("akswin-fixed", None), ("win2025-fixed", None), (None, "shop/web-1")]
)
def test_fixed_and_unaffected_revisions_stay_quiet(
    cluster: CheckCluster, node: str | None, reference: str | None
) -> None:
    finding = (
        cluster.node_finding(node, CHECK) if node else cluster.pod_finding(str(reference), CHECK)
    )

    assert finding.severity == "ok"
    assert finding.title == "No known networking regression in this Windows update"


def test_the_server_2025_overlay_regression_needs_an_overlay_node(cluster: CheckCluster) -> None:
    vxlan = cluster.node_finding("win2025-vxlan", CHECK)
    l2bridge = cluster.node_finding("akswin2025-l2bridge", CHECK)

    assert vxlan.severity == "warning"
    assert "overlay pod networks only" in vxlan.summary
    assert "26100.6899 (KB5066835" in vxlan.summary
    assert vxlan.evidence[-1] == (
        "overlay network: node annotation flannel.alpha.coreos.com/backend-type=vxlan"
    )
    # without an overlay sign it is said, not alarmed
    assert l2bridge.severity == "info"
    assert "probably not affected" in l2bridge.summary


def test_every_row_of_the_table_names_a_source_and_a_later_fix() -> None:
    rows = knowledge.build_regressions()

    assert rows
    for row in rows:
        assert row.sources and all(s.startswith("https://") for s in row.sources)
        assert row.first_bad < row.fixed_in
        assert row.affects(row.build, row.first_bad)
        assert not row.affects(row.build, row.fixed_in)
        assert not row.affects(row.build, row.first_bad - 1)
