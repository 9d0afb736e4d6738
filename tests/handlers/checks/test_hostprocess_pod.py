"""`hostprocess-pod` on the simulator: logon and executable failures of HostProcess containers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_hostprocess_pod.yaml"
CHECK = "hostprocess-pod"


def test_access_denied_at_logon_points_at_containerd_as_localsystem(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("ops/node-exporter-win-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "HostProcess container cannot log on"
    assert "containerd must run as LocalSystem" in finding.summary
    assert finding.evidence[0].startswith("event Failed: ")
    assert "failed to logon user: Access is denied" in finding.evidence[0]
    assert "runAsUserName: NT AUTHORITY\\SYSTEM" in finding.evidence
    assert finding.remediations == ()


def test_executable_not_found_explains_mount_path_and_the_sandbox_mount_point(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("ops/log-agent-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "HostProcess executable not found"
    assert "volumes appear at their mountPath" in finding.summary
    assert "$env:CONTAINER_SANDBOX_MOUNT_POINT" in finding.summary
    assert "node akswin000001 runtime containerd://1.7.20+azure" in finding.evidence
    assert "volume mounts: agent: C:\\config" in finding.evidence


def test_a_hostprocess_pod_that_runs_stays_quiet(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("ops/kube-proxy-win-x7k2p", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "HostProcess container starts"


def test_an_ordinary_pod_is_not_its_business(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/iis-0", CHECK)

    assert finding.severity == "ok"
    assert finding.summary == "the pod has no HostProcess container"
