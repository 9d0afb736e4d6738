"""`pause-image` on the simulator: the node's containerd sandbox image and sandbox pull errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers import remediations, windows
from handlers.checks import default_registry

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_pause_image.yaml"
CHECK = "pause-image"
RECOMMENDED = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
PAUSE_DOCS = "https://kubernetes.io/docs/concepts/windows/intro/#pause-container"


def test_node_with_a_linux_only_pause_image(cluster: CheckCluster) -> None:
    diagnosis = cluster.node("akswin-linuxpause")
    finding = cluster.only(diagnosis, CHECK)

    assert diagnosis.target.kind == "Node"
    assert finding.severity == "error"
    assert finding.title == "Wrong pause (sandbox) image"
    assert finding.evidence == (
        "containerd sandbox image on akswin-linuxpause: k8s.gcr.io/pause-amd64:3.1",
    )
    assert "k8s.gcr.io/pause-amd64:3.1 is Linux-only" in finding.summary
    assert f"Configure {RECOMMENDED} in containerd" in finding.summary
    assert cluster.offered(finding) == [("fix-sandbox-image", "akswin-linuxpause", "medium")]
    assert PAUSE_DOCS in finding.docs
    assert "https://github.com/kubernetes/kubernetes/issues/99157" in finding.docs


def test_pod_stuck_on_the_sandbox_pull_names_the_event_and_the_node(
    cluster: CheckCluster,
) -> None:
    diagnosis = cluster.pod("web/web-0")
    finding = cluster.only(diagnosis, CHECK)

    assert (diagnosis.target.phase, diagnosis.target.reason) == ("Pending", "ContainerCreating")
    assert finding.severity == "error"
    assert finding.evidence[0] == (
        "containerd sandbox image on akswin-linuxpause: k8s.gcr.io/pause-amd64:3.1"
    )
    assert finding.evidence[1].startswith("event FailedCreatePodSandBox: ")
    assert 'failed to get sandbox image "k8s.gcr.io/pause-amd64:3.1"' in finding.evidence[1]
    # the fix is on the node, not the pod
    assert cluster.offered(finding) == [("fix-sandbox-image", "akswin-linuxpause", "medium")]
    # the app image is fine: the sandbox error is not blamed on it
    assert cluster.only(diagnosis, "image-os-mismatch").severity == "ok"


def test_a_pause_without_a_2022_variant_on_a_2022_node(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-oldpause", CHECK)

    assert finding.severity == "error"
    assert finding.evidence == (
        "containerd sandbox image on akswin-oldpause: mcr.microsoft.com/oss/kubernetes/pause:3.4.1",
    )
    assert "no Windows Server 2022 variant (added in pause 3.6)" in finding.summary
    assert cluster.offered(finding) == [("fix-sandbox-image", "akswin-oldpause", "medium")]


def test_a_multi_arch_pause_image_fits(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-goodpause", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "Pause image fits the node"
    assert finding.summary == (
        "registry.k8s.io/pause:3.9 has a variant for 17763 (Windows Server 2019 / 1809)"
    )
    assert finding.remediations == ()


def test_a_sandbox_failure_caused_by_the_app_image_is_not_the_pause_image(
    cluster: CheckCluster,
) -> None:
    # FailedCreatePodSandBox does not say which image is at fault (kubernetes#99157)
    diagnosis = cluster.pod("web/iis-0")

    assert cluster.only(diagnosis, CHECK).severity == "ok"
    assert [f.check for f in diagnosis.findings if f.severity == "error"] == ["image-os-mismatch"]


def test_a_running_pod_proves_its_sandbox_started(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/running-0", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "Pod sandbox is running"


def test_node_without_winrm_gives_a_warning_saying_why(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-nowinrm", CHECK)

    assert finding.severity == "warning"
    assert finding.title == "Could not check the pause image"
    assert finding.summary.startswith("reading the node's containerd configuration failed: ")
    assert "cannot connect to WinRM on 127.0." in finding.summary


def test_without_winrm_the_sandbox_event_still_makes_the_error(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/report-0", CHECK)

    assert finding.severity == "error"
    assert (
        'failed to get sandbox image "mcr.microsoft.com/k8s/core/pause:1.2.0"'
        in (finding.evidence[0])
    )
    assert finding.evidence[1].startswith(
        "could not read the node's containerd configuration: cannot connect to WinRM"
    )
    assert "could not get the sandbox image mcr.microsoft.com/k8s/core/pause:1.2.0" in (
        finding.summary
    )
    assert cluster.offered(finding) == [("fix-sandbox-image", "akswin-nowinrm", "medium")]


def test_not_applicable_on_a_linux_node(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("aks-linux-0", CHECK)

    assert (finding.severity, finding.summary) == ("info", "not a Windows node")


def test_pause_3_7_and_later_have_no_1909_variant(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("win1909-newpause", CHECK)

    assert finding.severity == "error"
    assert "none that 18363 (Windows Server 1909) runs" in finding.summary
    assert "pause 3.7 dropped 1903, 1909 and 2004" in finding.summary
    assert f"Configure {RECOMMENDED} in containerd" in finding.summary


def test_a_2025_node_on_old_containerd_needs_pause_3_10_2(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("win2025-exact", CHECK)

    assert finding.severity == "error"
    assert "Configure registry.k8s.io/pause:3.10.2 in containerd" in finding.summary


def test_pause_3_10_2_has_the_ltsc2025_variant(cluster: CheckCluster) -> None:
    assert cluster.node_finding("win2025-exact-good", CHECK).severity == "ok"


def test_fix_sandbox_image_recommends_what_the_check_says(cluster: CheckCluster) -> None:
    plan = remediations.plan(
        cluster.transports, cluster.settings, "fix-sandbox-image", "win2025-exact"
    )

    assert "use instead:              registry.k8s.io/pause:3.10.2" in plan.preview


def test_the_explanation_recommends_the_image_winpod_recommends() -> None:
    """The explanation is a catalog message, so it names the image literally: it must stay the
    one `windows.RECOMMENDED_PAUSE_IMAGE` holds."""
    info = default_registry().get("pause-image")
    assert info is not None and info.explanation is not None
    assert windows.RECOMMENDED_PAUSE_IMAGE in info.explanation.cause
    assert any(windows.RECOMMENDED_PAUSE_IMAGE in fix for fix in info.explanation.fixes)
