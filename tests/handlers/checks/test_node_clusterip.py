"""`node-clusterip` on the simulator: a known Windows limitation, reported as info, not a fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_node_clusterip.yaml"
CHECK = "node-clusterip"
DOCS = ("https://kubernetes.io/docs/concepts/services-networking/windows-networking/#limitations",)


def test_a_windows_node_gets_the_limitation_as_info(cluster: CheckCluster) -> None:
    diagnosis = cluster.node("akswin000000")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "info"
    assert finding.title == "The node cannot reach Service ClusterIPs (by design)"
    assert "tools run on akswin000000 itself cannot reach them" in finding.summary
    assert "Run the client in a pod, or use endpoint IPs" in finding.summary
    assert finding.remediations == ()
    assert finding.docs == DOCS
    # a limitation is no fault: the healthy node has no error and no warning
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]


def test_the_limitation_needs_no_winrm(cluster: CheckCluster) -> None:
    diagnosis = cluster.node("akswin000001")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "info"
    assert finding.docs == DOCS
    # the WinRM-based checks of the same diagnosis say they could not look
    assert cluster.only(diagnosis, "node-services").severity == "warning"


def test_not_applicable_on_a_linux_node(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("aks-linux-0", CHECK)

    assert finding.severity == "info"
    assert finding.title == "node-clusterip: not applicable"
    assert finding.summary == "not a Windows node"


def test_pod_diagnoses_do_not_include_it(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/web-0")

    assert CHECK not in {f.check for f in diagnosis.findings}
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]
