"""`memory-overcommit` on the simulator: node capacity vs allocatable, the host's available memory
(node-memory.ps1 over WinRM), pods without limits and the paging-file error."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers.checks.memory_overcommit import mebibytes

if TYPE_CHECKING:
    from conftest import CheckCluster

SCENARIO = "check_memory_overcommit.yaml"
CHECK = "memory-overcommit"


@pytest.mark.wire
def test_a_node_without_reservation_names_the_pods_without_limits(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-noreserve", CHECK)

    assert finding.severity == "warning"
    assert "allocatable memory equals its capacity" in finding.summary
    assert "Pods without a memory limit: erp/report-0." in finding.summary
    assert "erp/api-0" not in finding.summary  # it has a limit
    assert (
        "node akswin-noreserve: memory capacity 16384 MiB, allocatable 16384 MiB "
        "(no system/kube reservation)"
    ) in finding.evidence
    assert "pods without a memory limit on akswin-noreserve: erp/report-0" in finding.evidence
    assert finding.remediations == ()  # advice only


@pytest.mark.wire
def test_the_pod_with_limits_hears_about_its_neighbours(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("erp/api-0", CHECK)

    assert finding.severity == "warning"
    assert "erp/report-0" in finding.summary


@pytest.mark.wire
def test_low_available_memory_comes_from_the_host(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("erp/cache-0", CHECK)

    assert finding.severity == "warning"
    assert "only 310 MB of memory is available" in finding.summary
    assert "node akswin-lowmem: 310 MB of 16384 MB available (low)" in finding.evidence
    assert "erp/cache-0" in finding.summary


@pytest.mark.wire
def test_the_paging_file_error_is_an_error(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("erp/batch-7", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Node memory overcommitted"
    assert "paging file is too small" in finding.summary
    assert any(
        e.startswith("event Failed: ") and "The paging file is too small" in e
        for e in finding.evidence
    )


@pytest.mark.wire
def test_a_node_diagnosis_sees_the_paging_file_error_of_its_pods(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-lowmem", CHECK)

    assert finding.severity == "error"
    assert any("The paging file is too small" in e for e in finding.evidence)


@pytest.mark.wire
def test_nothing_reserved_but_every_pod_limited_is_only_information(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-limited", CHECK)

    assert finding.severity == "info"
    assert "every pod on it has a memory limit" in finding.summary


@pytest.mark.wire
def test_a_pod_without_limits_on_a_roomy_reserved_node_stays_quiet(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("erp/web-0", CHECK)

    assert finding.severity == "ok"
    assert "node akswin-roomy: 21000 MB of 32768 MB available" in finding.evidence


@pytest.mark.wire
def test_when_the_host_cannot_be_asked_the_api_signals_still_count(
    cluster: CheckCluster,
) -> None:
    with cluster.fault("winrm", fail_next=5, mode="reset"):
        finding = cluster.node("akswin-noreserve", fresh=True)
    found = cluster.only(finding, CHECK)

    assert found.severity == "warning"
    assert any(e.startswith("available memory unknown: ") for e in found.evidence)


@pytest.mark.parametrize(
    ("quantity", "mib"),
    [("16Gi", 16384), ("16777216Ki", 16384), ("17179869184", 16384), ("1.5Gi", 1536), ("x", None)],
)
def test_mebibytes(quantity: str, mib: int | None) -> None:
    assert mebibytes(quantity) == mib
