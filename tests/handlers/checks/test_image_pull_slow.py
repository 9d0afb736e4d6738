"""`image-pull-slow` on the simulator: cancelled and stuck pulls, image GC, and the advice for the
node's containerd major version with a pre-pull DaemonSet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from bot.render_text import diagnosis_text
from handlers.checks.image_pull_slow import containerd_setting

if TYPE_CHECKING:
    from conftest import CheckCluster

SCENARIO = "check_image_pull_slow.yaml"
CHECK = "image-pull-slow"
IMAGE = "contoso.azurecr.io/erp/legacy:4.2-ltsc2022"


@pytest.mark.wire
def test_a_cancelled_pull_gets_the_containerd_1_setting_and_a_daemonset(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("erp/legacy-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Image pull cut off before it finished"
    assert finding.evidence[0].startswith("event Failed: Failed to pull image")
    assert "context canceled" in finding.evidence[0]
    assert "node akswin-c17 runtime containerd://1.7.20+azure" in finding.evidence
    assert "default 1m in 1.x" in finding.summary
    assert '[plugins."io.containerd.grpc.v1.cri"] image_pull_progress_timeout' in finding.summary
    manifest = yaml.safe_load(finding.summary.split("(kubectl apply -f -): ", 1)[1])
    assert manifest["kind"] == "DaemonSet"
    assert manifest["metadata"] == {"name": "prepull-legacy", "namespace": "erp"}
    template = manifest["spec"]["template"]["spec"]
    assert template["initContainers"][0]["image"] == IMAGE
    assert template["nodeSelector"] == {
        "kubernetes.io/os": "windows",
        "node.kubernetes.io/windows-build": "10.0.20348",
    }
    assert finding.remediations == ()


@pytest.mark.wire
def test_the_daemonset_survives_the_terminal_text(cluster: CheckCluster) -> None:
    text = diagnosis_text(cluster.pod("erp/legacy-0"))
    wrapped = text.split("(kubectl apply -f -): ", 1)[1].split("\n    evidence:", 1)[0]

    assert "\n" in wrapped  # the renderer did wrap it
    manifest = yaml.safe_load(wrapped)
    assert manifest["metadata"]["name"] == "prepull-legacy"
    assert manifest["spec"]["template"]["spec"]["initContainers"][0]["image"] == IMAGE


@pytest.mark.wire
def test_a_pull_running_for_hours_on_containerd_2(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("erp/reports-0", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[0].startswith('event Pulling: Pulling image "contoso.azurecr.io/erp/')
    assert "no Pulled event since" in finding.evidence[0]
    assert "default 5m in 2.x" in finding.summary
    assert "[plugins.'io.containerd.cri.v1.images'] image_pull_progress_timeout" in (
        finding.summary
    )


@pytest.mark.wire
def test_a_node_diagnosis_names_the_cut_off_pulls_of_its_pods_and_the_gc(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-c17", CHECK)

    assert finding.severity == "warning"  # the node works; its pods carry the errors
    assert finding.title == "Image pull cut off before it finished"
    assert finding.evidence[0].startswith("pod erp/legacy-0: event Failed: Failed to pull image")
    assert finding.evidence[1].startswith("event ImageGCFailed: Failed to garbage collect")
    assert "namespace: erp" in finding.summary


@pytest.mark.wire
def test_image_gc_failing_alone(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-gc", CHECK)

    assert finding.severity == "warning"
    assert finding.title == "Image garbage collection fails on the node"
    assert finding.evidence[0].startswith("event ImageGCFailed: failed to garbage collect")


@pytest.mark.wire
def test_a_big_image_that_finished_pulling_stays_quiet(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("erp/legacy-1", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "Images pulled"
    assert "in 14m3.207s" in finding.evidence[0]
    assert cluster.node_finding("akswin-c2", CHECK).severity == "ok"


def test_the_setting_follows_the_runtime() -> None:
    assert "default 1m in 1.x" in containerd_setting("containerd://1.6.28")
    assert "default 5m in 2.x" in containerd_setting("containerd://2.1.0")
    assert "--image-pull-progress-deadline" in containerd_setting("docker://20.10.9")
