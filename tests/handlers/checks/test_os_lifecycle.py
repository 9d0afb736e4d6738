"""`os-lifecycle` on the simulator (cluster version from /version) and its rules on dates."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pytest

from handlers.checks.os_lifecycle import assess

if TYPE_CHECKING:
    from conftest import CheckCluster

SCENARIO = "check_os_lifecycle.yaml"
CHECK = "os-lifecycle"


@pytest.mark.wire
def test_server_2019_on_a_1_33_cluster_is_a_warning_with_its_source(
    cluster: CheckCluster,
) -> None:
    diagnosis = cluster.node("akswin2019")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "warning"
    assert finding.title == "Windows release or runtime past support"
    assert "not supported on Kubernetes 1.33 and later (this cluster is 1.33.2)" in finding.summary
    assert finding.evidence[1] == "cluster version v1.33.2 (from /version)"
    assert "https://github.com/Azure/AKS/issues/4268" in finding.docs
    # never an error: nothing is broken yet
    assert not [f for f in diagnosis.findings if f.check == CHECK and f.severity == "error"]


@pytest.mark.wire
def test_the_annual_channel_is_past_its_retirement_date(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin23h2", CHECK)

    assert finding.severity == "warning"
    assert "out of support since 2026-05-15" in finding.summary
    assert "https://github.com/Azure/AKS/issues/5608" in finding.docs


@pytest.mark.wire
def test_a_runtime_without_cri_v1_is_named(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("win2022-old-runtime", CHECK)

    assert finding.severity == "warning"
    assert "containerd://1.5.13 is not supported on Kubernetes 1.26" in finding.summary
    assert "CRI v1" in finding.summary
    assert "runtime containerd://1.5.13" in finding.evidence[0]


@pytest.mark.wire
def test_a_supported_os_and_runtime_stay_quiet(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin2022", CHECK)

    assert finding.severity == "ok"
    assert "20348 (Windows Server 2022)" in finding.summary


def test_before_the_end_it_is_only_information() -> None:
    before = assess(25398, "containerd://1.7.20", (1, 30, 4), date(2026, 5, 1))
    after = assess(25398, "containerd://1.7.20", (1, 30, 4), date(2026, 5, 16))
    on_1_32 = assess(17763, "containerd://1.7.20", (1, 32, 5), date(2026, 1, 1))
    on_1_31 = assess(17763, "containerd://1.7.20", (1, 31, 0), date(2026, 1, 1))

    assert [c.severity for c in before] == ["info"]
    assert "goes out of support on 2026-05-15" in before[0].text
    assert [c.severity for c in after] == ["warning"]
    assert [c.severity for c in on_1_32] == ["info"]  # the next minor ends support
    assert "will not be supported from Kubernetes 1.33" in on_1_32[0].text
    assert on_1_31 == []


def test_docker_on_1_24_and_later_is_past_support() -> None:
    assert [c.severity for c in assess(17763, "docker://20.10.9", (1, 24, 0), date.today())] == [
        "warning"
    ]
    assert assess(17763, "docker://20.10.9", (1, 23, 9), date.today()) == []
