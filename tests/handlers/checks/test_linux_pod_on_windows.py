"""`linux-pod-on-windows` on the simulator: Linux images on Windows nodes, and look-alikes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_linux_pod_on_windows.yaml"
CHECK = "linux-pod-on-windows"
PLACEMENT_DOCS = (
    "https://kubernetes.io/docs/concepts/windows/user-guide/"
    "#ensuring-os-specific-workloads-land-on-the-appropriate-container-host"
)


def test_custom_image_recognised_from_the_runtime_message(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("shop/payments-7f9c")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "error"
    assert finding.title == "Linux pod scheduled onto a Windows node"
    # the name says nothing; the event does, and is shown word for word
    assert finding.evidence == (
        'event Failed: Failed to pull image "contoso.azurecr.io/payments-api:5.2": rpc error: '
        'code = Unknown desc = failed to pull and unpack image "contoso.azurecr.io/payments-api:'
        '5.2": image operating system "linux" cannot be used on this platform',
        "the pod has no kubernetes.io/os nodeSelector",
    )
    assert "Node akswin000000 runs Windows" in finding.summary
    assert "kubernetes.io/os: linux" in finding.summary
    assert cluster.offered(finding) == [("pin-windows-build", "shop/payments-7f9c", "low")]
    assert finding.docs == (PLACEMENT_DOCS,)
    # one cause, one error: the Windows-version check does not claim the Linux platform text
    assert [f.check for f in diagnosis.findings if f.severity == "error"] == [CHECK]


def test_well_known_linux_image_with_the_pull_time_platform_error(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/nginx-7c5d")
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.target.reason == "ErrImagePull"
    assert finding.severity == "error"
    assert finding.evidence[0] == "container nginx: image nginx:1.27 is a Linux image"
    assert finding.evidence[1].startswith('event Failed: Failed to pull image "nginx:1.27"')
    assert finding.evidence[1].endswith("no match for platform in manifest: not found")
    assert finding.evidence[2] == "the pod has no kubernetes.io/os nodeSelector"
    assert cluster.offered(finding) == [("pin-windows-build", "web/nginx-7c5d", "low")]
    assert [f.check for f in diagnosis.findings if f.severity == "error"] == [CHECK]


def test_official_image_with_a_windows_tag_is_not_linux(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/python-0", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "No Linux image on this Windows node"


def test_linux_pod_on_a_linux_node_is_not_applicable(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/nginx-linux")
    finding = cluster.only(diagnosis, CHECK)

    assert (finding.severity, finding.summary) == ("info", "the pod is not on a Windows node")
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]


def test_unscheduled_pod_cannot_be_checked(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/redis-0")
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.target.node is None
    assert (finding.severity, finding.summary) == ("info", "the pod is not on a Windows node")
