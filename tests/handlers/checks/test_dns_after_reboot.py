"""`dns-after-reboot` on the simulator: stale HNS policies after a reboot, masked and unreadable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_dns_after_reboot.yaml"
CHECK = "dns-after-reboot"
THROUGH_SERVICE = "probe `nslookup kubernetes.default.svc.cluster.local` "
DIRECT = "probe `nslookup kubernetes.default.svc.cluster.local 10.244.0.2` "
DOCS = (
    "https://github.com/Azure/acs-engine/issues/2027",
    "https://github.com/Azure/aks-engine/pull/3956",
)
EXEC_CHECKS = {"dns-after-reboot", "serviceaccount-token", "apiserver-unreachable"}


def test_stale_policies_after_a_reboot_fail_dns_through_the_service(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("shop/api-0")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "error"
    assert finding.title == "DNS through the cluster DNS Service fails (stale HNS policies)"
    assert "lookups through 10.0.0.10 fail while a kube-dns pod answers directly" in (
        finding.summary
    )
    through_service, direct, boot, reboot, hns, pods = finding.evidence
    assert through_service.startswith(THROUGH_SERVICE + "failed: DNS request timed out.")
    assert "Address:  10.0.0.10" in through_service
    assert direct.startswith(DIRECT + "succeeded: ")
    assert "Address:  10.0.0.1" in direct  # the answer, straight from a CoreDNS pod
    assert boot == "node akswin-stale boot ID 7"
    assert reboot.startswith("event Rebooted ")
    assert reboot.endswith(": Node akswin-stale has been rebooted, boot id: 7")
    # after a reboot the lists are still there, holding the VIP, referencing endpoints gone
    assert hns.startswith("HNS on akswin-stale")
    assert "hold DNS VIP 10.0.0.10" in hns and "2 of them gone" in hns
    assert pods == "1 running pod(s) on akswin-stale"
    assert cluster.offered(finding) == [
        ("kube-proxy-restart", "akswin-stale", "medium"),
        ("hns-reset", "akswin-stale", "high"),
        ("pod-dns-override", "shop/api-0", "low"),
        ("dns-keeper", "cluster", "low"),
    ]
    assert finding.docs == DOCS
    assert [f.check for f in diagnosis.findings if f.severity in ("error", "warning")] == [CHECK]


def test_the_node_diagnosis_probes_dns_in_the_nodes_pods(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-stale", CHECK)

    assert finding.severity == "error"
    assert finding.title == "DNS fails in pods on akswin-stale (stale HNS policies)"
    through_service, direct, boot, reboot, pods = finding.evidence
    assert through_service.startswith("shop/api-0: " + THROUGH_SERVICE + "failed")
    assert direct.startswith("shop/api-0: " + DIRECT + "succeeded")
    assert boot == "node akswin-stale boot ID 7"
    assert reboot.endswith(": Node akswin-stale has been rebooted, boot id: 7")
    assert pods.startswith("1 running pod(s) on akswin-stale — fewer than two")
    assert cluster.offered(finding) == [
        ("kube-proxy-restart", "akswin-stale", "medium"),
        ("hns-reset", "akswin-stale", "high"),
        ("pod-dns-override", "shop/api-0", "low"),
        ("dns-keeper", "cluster", "low"),
    ]


def test_a_node_without_pods_to_probe_is_judged_by_its_hns_policies(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-empty", CHECK)

    assert finding.severity == "error"
    # after a reboot the persisted lists still hold the VIP, on endpoints that are gone
    assert finding.title == (
        "HNS policies for the DNS Service IP reference endpoints that are gone (stale)"
    )
    assert finding.evidence[0] == "node akswin-empty boot ID 5"
    assert "hold DNS VIP 10.0.0.10" in finding.evidence[-2]
    assert finding.evidence[-2].endswith("of them gone")
    assert finding.evidence[-1] == "0 running pod(s) on akswin-empty"
    # no pod to override on a node diagnosis
    assert [r[0] for r in cluster.offered(finding)] == [
        "kube-proxy-restart",
        "hns-reset",
        "dns-keeper",
    ]


def test_two_running_pods_mask_the_stale_policies(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("shop/cart-0", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "DNS works in the pod"
    assert finding.evidence[0].startswith(THROUGH_SERVICE + "succeeded: ")


def test_a_pod_that_is_not_running_cannot_be_probed(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("shop/api-1", CHECK)

    assert finding.severity == "info"
    assert finding.summary == "the pod is not running, so DNS cannot be probed in it"


def test_without_winrm_the_probes_still_make_the_error(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("shop/orders-0", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[0].startswith(THROUGH_SERVICE + "failed")
    assert finding.evidence[1].startswith(DIRECT + "succeeded")
    unread = [e for e in finding.evidence if e.startswith("could not read HNS state on the node: ")]
    assert len(unread) == 1
    assert "cannot connect to WinRM on 127.0." in unread[0]
    assert not any(e.startswith("HNS on ") for e in finding.evidence)
    assert "kube-proxy-restart" in [r.id for r in finding.remediations]


def test_the_node_diagnosis_needs_no_winrm_when_its_pods_answer(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-nowinrm", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[0].startswith("shop/orders-0: " + THROUGH_SERVICE + "failed")
    assert not any("WinRM" in line for line in finding.evidence)


def test_a_healthy_node_answers_dns_in_its_pods(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-ok", CHECK)

    assert (finding.severity, finding.title) == ("ok", "DNS works in pods on akswin-ok")
    assert finding.evidence[0].startswith("web/web-1: " + THROUGH_SERVICE + "succeeded")


def test_an_exec_failure_is_a_warning_and_the_other_checks_still_report(
    cluster: CheckCluster,
) -> None:
    with cluster.fault("exec", fail_next=2, mode="500"):
        diagnosis = cluster.pod("web/web-1", fresh=True)

    by_check = {f.check: f for f in diagnosis.findings}
    assert set(by_check) >= {
        "image-os-mismatch",
        "pause-image",
        "linux-pod-on-windows",
        *EXEC_CHECKS,
        "node-services",
    }
    could_not = [f for f in diagnosis.findings if f.title.startswith("Could not check")]
    # two exec requests failed: two of the three probing checks say so, each with the reason
    assert len(could_not) == 2
    for finding in could_not:
        assert finding.check in EXEC_CHECKS
        assert finding.severity == "warning"
        assert finding.summary.startswith(
            "exec in pod web/web-1: the Kubernetes API answered 500 Internal Server Error"
        )
        assert "content-type" not in finding.summary  # no raw response headers
    assert all(f.severity == "ok" for f in diagnosis.findings if f not in could_not)
    assert not diagnosis.has_errors


def test_a_reboot_through_the_control_api_breaks_dns_on_a_single_pod_node(
    cluster: CheckCluster,
) -> None:
    assert cluster.pod_finding("web/web-0", CHECK).severity == "ok"

    boot_id = cluster.sim.control("POST", "/sim/v1/hosts/akswin-fresh/reboot")["bootID"]
    finding = cluster.only(cluster.pod("web/web-0", fresh=True), CHECK)

    assert finding.severity == "error"
    assert f"node akswin-fresh boot ID {boot_id}" in finding.evidence
    assert any(
        e.startswith("event Rebooted ")
        and e.endswith(f"Node akswin-fresh has been rebooted, boot id: {boot_id}")
        for e in finding.evidence
    )
    assert any(e.startswith("HNS on akswin-fresh") and "gone" in e for e in finding.evidence)


def test_a_node_whose_second_pod_masks_the_stale_policy_answers_dns(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-kept", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "DNS works in pods on akswin-kept"


def test_a_partial_name_failing_on_a_healthy_node_is_not_blamed_on_hns(
    cluster: CheckCluster,
) -> None:
    # Windows pods get one DNS suffix: `kubernetes.default` fails while the full name resolves.
    pod_exec = cluster.transports.pod_exec
    assert pod_exec is not None
    partial = pod_exec.run("web", "web-1", None, ["nslookup", "kubernetes.default"], 10)
    assert partial.exit_code == 1
    assert "Non-existent domain" in partial.stderr

    finding = cluster.only(cluster.pod("web/web-1", fresh=True), CHECK)

    assert finding.severity == "ok"
    assert finding.evidence[0].startswith(THROUGH_SERVICE + "succeeded")
    assert "probes the full name kubernetes.default.svc.cluster.local only" in finding.summary
    assert "which is not stale HNS" in finding.summary
