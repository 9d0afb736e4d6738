"""`apiserver-unreachable` on the simulator: Hyper-V VM nodes with MAC address spoofing off."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers import remediations
from handlers.errors import BadInput

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_apiserver_unreachable.yaml"
CHECK = "apiserver-unreachable"
PROBE = "probe `Test-NetConnection 10.0.0.1 -Port 443 -InformationLevel Quiet` "
DOCS = (
    "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",
    "https://learn.microsoft.com/en-us/virtualization/windowscontainers/container-networking/"
    "architecture",
)


def test_vm_with_spoofing_off_names_host_vm_and_adapter_state(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("jobs/worker-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "Pod cannot reach the Kubernetes API"
    assert "Node hvwin-a is a Hyper-V virtual machine with MAC address spoofing off" in (
        finding.summary
    )
    probe, model, spoofing = finding.evidence
    assert probe.startswith(PROBE + "failed: WARNING: TCP connect to (10.0.0.1 : 443) failed")
    assert probe.endswith("False")
    assert model == "node hvwin-a model: Virtual Machine"
    assert spoofing == "Hyper-V host hv01, VM hvwin-a: MacAddressSpoofing Network Adapter: Off"
    assert cluster.offered(finding) == [("mac-spoofing-on", "hvwin-a", "high")]
    assert finding.docs == DOCS


def test_no_network_at_all_is_an_api_problem_first_and_dns_only_a_warning(
    cluster: CheckCluster,
) -> None:
    diagnosis = cluster.pod("jobs/worker-0")
    dns = cluster.only(diagnosis, "dns-after-reboot")

    assert diagnosis.findings[0].check == CHECK
    assert [f.check for f in diagnosis.findings if f.severity == "error"] == [CHECK]
    assert dns.severity == "warning"
    assert dns.title == "DNS fails, but so does a direct query to kube-dns"
    assert "see apiserver-unreachable" in dns.summary
    assert dns.remediations == ()  # no DNS fix offered for a network that is not there
    assert dns.evidence[1].startswith(
        "probe `nslookup kubernetes.default.svc.cluster.local 10.244.0.2` failed"
    )


def test_vm_without_the_host_annotation_says_which_annotation_is_missing(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("jobs/worker-1", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[1] == "node hvwin-b model: Virtual Machine"
    assert finding.evidence[2] == (
        "could not read MAC spoofing on the Hyper-V host: node hvwin-b has no "
        "winpod.io/hyperv-host annotation naming its Hyper-V host"
    )
    assert "Node hvwin-b is a Hyper-V virtual machine:" in finding.summary
    assert cluster.offered(finding) == [("mac-spoofing-on", "hvwin-b", "high")]


def test_hyperv_host_without_winrm_says_spoofing_could_not_be_read(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("jobs/worker-2", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[2].startswith(
        "could not read MAC spoofing on the Hyper-V host: cannot connect to WinRM on 127.0."
    )
    assert cluster.offered(finding) == [("mac-spoofing-on", "hvwin-c", "high")]


def test_vm_with_spoofing_on_reaches_the_api(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("jobs/worker-3")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "ok"
    assert finding.title == "Pod reaches the Kubernetes API"
    assert finding.evidence == (PROBE + "succeeded: True",)
    assert not [f for f in diagnosis.findings if f.severity in ("error", "warning")]


def test_nano_server_without_test_netconnection_is_probed_through_kube_dns(
    cluster: CheckCluster,
) -> None:
    # Nano Server has no PowerShell: a lookup sent straight to a kube-dns pod shows that the
    # pod on the spoofing-off VM reaches nothing, so the check still names the cause.
    finding = cluster.pod_finding("jobs/nano-0", CHECK)

    assert finding.severity == "error"
    assert finding.evidence[0].startswith(
        "probe `nslookup kubernetes.default.svc.cluster.local 10.244.0.2` failed"
    )
    assert cluster.offered(finding) == [("mac-spoofing-on", "hvwin-a", "high")]


def test_an_annotation_that_is_no_plain_host_is_never_connected_to(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("jobs/worker-4", CHECK)

    assert finding.severity == "error"
    assert (
        "'127.0.0.1:18080/evil?x=' is not a plain host name or IP address" in (finding.evidence[2])
    )
    # refused before any connection: the old code said "cannot connect to WinRM on 127.0.0.1:…"
    assert "cannot connect" not in finding.evidence[2]
    with pytest.raises(BadInput, match="is not a plain host name or IP address"):
        remediations.plan(cluster.transports, cluster.settings, "mac-spoofing-on", "hvwin-e", {})


def test_a_host_not_listed_in_hyperv_hosts_is_refused(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("jobs/worker-5", CHECK)

    assert "Hyper-V host 127.0.0.1 is not listed in hyperv.hosts" in finding.evidence[2]
    with pytest.raises(BadInput, match=r"not listed in hyperv\.hosts"):
        remediations.plan(cluster.transports, cluster.settings, "mac-spoofing-on", "hvwin-f", {})


def test_the_plan_names_the_hyperv_host_and_the_address_that_receives_the_script(
    cluster: CheckCluster,
) -> None:
    address = cluster.settings.hyperv.hosts["hv01"]
    plan = remediations.plan(cluster.transports, cluster.settings, "mac-spoofing-on", "hvwin-a", {})
    assert "Hyper-V host hv01" in plan.what
    assert f"sent over WinRM to {address}:{cluster.settings.winrm.port}" in plan.what
    assert plan.data["address"] == address


def test_without_hyperv_hosts_a_plain_annotated_host_is_its_own_address(
    cluster: CheckCluster,
) -> None:
    hyperv = cluster.settings.hyperv.model_copy(update={"hosts": {}})
    open_settings = cluster.settings.model_copy(update={"hyperv": hyperv})
    plan = remediations.plan(cluster.transports, open_settings, "mac-spoofing-on", "hvwin-f", {})
    assert plan.data["address"] == "127.0.0.1"
    assert "sent over WinRM to 127.0.0.1:" in plan.what
