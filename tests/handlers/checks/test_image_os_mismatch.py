"""`image-os-mismatch` on the simulator: image tags against node builds, runtime and pull texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_image_os_mismatch.yaml"
CHECK = "image-os-mismatch"
VERSION_DOCS = (
    "https://learn.microsoft.com/en-us/virtualization/windowscontainers/deploy-containers/"
    "version-compatibility"
)


def test_1709_image_on_a_2019_node_is_an_error_with_the_docker_message(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/iis-1709", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Container image built for another Windows version"
    assert finding.evidence[0] == (
        "container iis: image microsoft/iis:windowsservercore-1709 is built for 16299 "
        "(Windows Server 1709); node akswin1809 is 17763 (Windows Server 2019 / 1809)"
    )
    assert finding.evidence[1].startswith("event Failed: ")
    assert finding.evidence[1].endswith(
        "The operating system of the container does not match the operating system of the "
        "host. (0xc0370101)"
    )
    assert "the image build to equal the host build" in finding.summary
    assert "Use the ltsc2019 tag" in finding.summary
    assert cluster.offered(finding) == [("pin-windows-build", "web/iis-1709", "low")]
    assert VERSION_DOCS in finding.docs


def test_ltsc2019_image_on_a_2022_node_is_an_error_with_the_containerd_message(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/app-2019", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[0] == (
        "container app: image mcr.microsoft.com/windows/servercore:ltsc2019 is built for 17763 "
        "(Windows Server 2019 / 1809); node akswin2022 is 20348 (Windows Server 2022)"
    )
    assert finding.evidence[1].endswith(
        "hcs::CreateComputeSystem 8c1e: The container operating system does not match the host "
        "operating system.: unknown"
    )
    # from 20348 on, older images never run: the rule is named, not only the numbers
    assert "never older ones" in finding.summary
    assert "Use the ltsc2022 tag" in finding.summary
    assert cluster.offered(finding) == [("pin-windows-build", "web/app-2019", "low")]


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        ("web/billing-0", "no match for platform in manifest: not found"),
        ("web/billing-1", "no matching manifest for windows/amd64 10.0.17763 in the manifest list"),
    ],
)
def test_pull_time_platform_errors_are_recognised_when_the_tag_names_no_build(
    cluster: CheckCluster, pod: str, message: str
) -> None:
    diagnosis = cluster.pod(pod)
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.target.reason == "ErrImagePull"
    assert finding.severity == "error"
    assert len(finding.evidence) == 1
    assert finding.evidence[0].startswith('event Failed: Failed to pull image "contoso.azurecr.io')
    assert message in finding.evidence[0]
    # the tag says nothing, so the summary sends the reader to the image's os.version
    assert "os.version" in finding.summary
    assert "ltsc2019 tag" in finding.summary
    assert cluster.offered(finding) == [("pin-windows-build", pod, "low")]
    # a Windows image with a platform error is not mistaken for a Linux one
    assert cluster.only(diagnosis, "linux-pod-on-windows").severity == "ok"


def test_ltsc2022_image_runs_on_a_2025_node(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/app-2022")
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.node is not None and diagnosis.node.build == 26100
    assert finding.severity == "ok"
    assert finding.title == "Images fit the node's Windows build"
    assert "26100 (Windows Server 2025)" in finding.summary
    assert finding.evidence == ("images: mcr.microsoft.com/windows/servercore:ltsc2022",)
    assert finding.remediations == ()


def test_a_version_number_that_looks_like_a_build_is_not_one(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/metrics-0", CHECK)

    # "2.1.1803" is the app's version; the tag's build is ltsc2019, which the node runs
    assert finding.severity == "ok"
    assert finding.evidence == (
        "images: contoso.azurecr.io/metrics:2.1.1803-windowsservercore-ltsc2019",
    )


def test_an_unscheduled_pod_has_no_build_to_compare_with(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/queued-0")
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.target.node is None
    assert diagnosis.node is None
    assert finding.severity == "info"
    assert finding.summary == "the pod is not on a Windows node"
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]


def test_the_mismatch_is_the_only_error_of_its_pod(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/app-2019")

    assert [f.check for f in diagnosis.findings if f.severity == "error"] == [CHECK]
    assert diagnosis.findings[0].check == CHECK  # most severe first
    assert cluster.only(diagnosis, "pause-image").severity == "ok"


def test_containerd_before_1_7_6_needs_the_exact_host_build(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/app-2022-old-containerd", CHECK)

    assert finding.severity == "error"
    assert "containerd before 1.7.6 needs the image build to equal the host build" in (
        finding.summary
    )
    assert finding.evidence[-1] == (
        "node runtime containerd://1.7.5: containerd before 1.7.6 runs only images of the "
        "host's exact build"
    )
    assert cluster.offered(finding) == [("pin-windows-build", "web/app-2022-old-containerd", "low")]


def test_containerd_2_runs_ltsc2022_on_a_2025_node(cluster: CheckCluster) -> None:
    assert cluster.pod_finding("web/app-2022-containerd2", CHECK).severity == "ok"


def test_hyper_v_isolation_runs_an_older_image(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/legacy-hyperv", CHECK)

    assert finding.severity == "ok"
    assert "with Hyper-V isolation" in finding.summary
    assert finding.evidence[-1].startswith(
        "runtimeClassName runhcs-wcow-hypervisor: handler runhcs-wcow-hypervisor"
    )


def test_hyper_v_isolation_never_runs_a_newer_image(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/newer-hyperv", CHECK)

    assert finding.severity == "error"
    assert "Hyper-V isolation runs images of the host's build and older ones, never newer" in (
        finding.summary
    )


def test_a_runtime_class_with_a_process_handler_keeps_the_process_rule(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/legacy-process", CHECK)

    assert finding.severity == "error"
    assert "never older ones" in finding.summary
