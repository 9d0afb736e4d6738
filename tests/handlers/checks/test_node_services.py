"""`node-services` on the simulator: kubelet, kubeproxy and containerd as WinRM reports them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_node_services.yaml"
CHECK = "node-services"
DOCS = ("https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",)


def test_stopped_kube_proxy_is_an_error_with_a_restart_offered(cluster: CheckCluster) -> None:
    diagnosis = cluster.node("akswin-noproxy")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "error"
    assert finding.title == "Not running on akswin-noproxy: kubeproxy"
    assert finding.evidence == ("kubelet: Running", "kubeproxy: Stopped", "containerd: Running")
    assert "lose Services without kube-proxy" in finding.summary
    assert cluster.offered(finding) == [("kube-proxy-restart", "akswin-noproxy", "medium")]
    assert finding.docs == DOCS
    assert diagnosis.has_errors


def test_stopped_kubelet_is_an_error_with_nothing_automatic(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-nokubelet", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Not running on akswin-nokubelet: kubelet"
    assert finding.evidence == ("kubelet: Stopped", "kubeproxy: Running", "containerd: Running")
    assert finding.remediations == ()  # kube-proxy-restart would not start a kubelet
    assert finding.docs == DOCS


def test_running_services_are_ok_with_their_states_as_evidence(cluster: CheckCluster) -> None:
    diagnosis = cluster.node("akswin-ok")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "ok"
    assert finding.title == "kubelet, kubeproxy and containerd are running"
    assert finding.evidence == ("kubelet: Running", "kubeproxy: Running", "containerd: Running")
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]


def test_the_check_also_runs_for_a_pod_on_the_node(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/web-0", CHECK)

    assert finding.severity == "ok"
    assert "kubeproxy: Running" in finding.evidence


def test_without_winrm_the_services_cannot_be_checked_and_it_says_why(
    cluster: CheckCluster,
) -> None:
    # kubeproxy is stopped there too, but nobody can see it: a warning, never an ok
    diagnosis = cluster.node("akswin-nowinrm")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "warning"
    assert finding.title == "Could not check the services on akswin-nowinrm"
    assert finding.summary.startswith("cannot connect to WinRM on 127.0.")
    assert finding.remediations == ()
    assert not diagnosis.has_errors


def test_not_applicable_on_a_linux_node(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("aks-linux-0", CHECK)

    assert (finding.severity, finding.summary) == ("info", "not a Windows node")


def test_winrm_switched_off_at_run_time_gives_the_same_warning(cluster: CheckCluster) -> None:
    hosts = "/sim/v1/hosts/akswin-ok"
    cluster.sim.control("PATCH", hosts, {"winrm": False})
    try:
        off = cluster.only(cluster.node("akswin-ok", fresh=True), CHECK)
    finally:
        cluster.sim.control("PATCH", hosts, {"winrm": True})
    on = cluster.only(cluster.node("akswin-ok", fresh=True), CHECK)

    assert off.severity == "warning"
    assert off.summary.startswith("cannot connect to WinRM on 127.0.")
    assert on.severity == "ok"
