"""`hns-stale-endpoints` on the simulator, and its two remediations end to end through the CLI
over WinRM: `kube-proxy-restart` (applies the load balancers) and `hns-endpoint-cleanup`
(removes exactly the stale endpoints its plan names)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from handlers import remediations
from handlers.errors import BadInput
from handlers.node_scripts import MAX_ENDPOINTS, for_the_wire, render
from handlers.remediations.hns_endpoint_cleanup import report

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_hns_stale_endpoints.yaml"
CHECK = "hns-stale-endpoints"
STALE = ("10.244.250.1", "10.244.250.2", "10.244.250.3")


def test_stale_endpoints_are_named_with_their_ips_and_the_pod_that_reuses_one(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-stale", CHECK)

    assert finding.severity == "error"
    text = "\n".join(finding.evidence)
    for ip in STALE:
        assert f"no EndpointSlice holds {ip}" in text
    assert "pod web/reused-0 has IP 10.244.250.2, held by stale remote endpoint" in text
    assert "10.244.0.2" not in text  # kube-dns's endpoints are backed
    assert cluster.offered(finding) == [
        ("kube-proxy-restart", "akswin-stale", "medium"),
        ("hns-endpoint-cleanup", "akswin-stale", "high"),
    ]


def test_the_pod_that_lost_its_network_sees_it_and_its_dns_fails(cluster: CheckCluster) -> None:
    assert cluster.pod_finding("web/reused-0", CHECK).severity == "error"
    # the stale endpoint breaks that pod only: its DNS fails even straight to kube-dns
    assert cluster.pod_finding("web/reused-0", "dns-after-reboot").severity == "warning"
    assert cluster.pod_finding("web/fine-0", CHECK).severity == "ok"


def test_a_busy_node_whose_many_endpoints_are_all_backed_stays_quiet(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-busy", CHECK)

    assert finding.severity == "ok"
    assert finding.evidence[0] == "74 remote endpoints, each held by an EndpointSlice"
    assert finding.remediations == ()


def test_unapplied_load_balancers_and_kube_proxy_texts(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-lb", CHECK)

    assert finding.severity == "error"
    text = "\n".join(finding.evidence)
    assert text.count("State 1 (not applied)") == 2
    assert "(0x803b0013)" in text
    assert cluster.offered(finding) == [("kube-proxy-restart", "akswin-lb", "medium")]


def test_kube_proxy_restart_applies_the_load_balancers(cluster: CheckCluster) -> None:
    run = cluster.winpod("remediate", "kube-proxy-restart", "akswin-lb", "--yes")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "Verification — fixed" in run.stdout
    after = cluster.only(cluster.node("akswin-lb", fresh=True), CHECK)
    assert after.severity == "ok"
    assert "kube-proxy reported HNS leftovers earlier; HNS is clean now" in after.evidence


def test_a_plan_made_again_after_the_node_changed_differs(cluster: CheckCluster) -> None:
    """The service refuses an approved plan when `differences` finds a change: here an
    EndpointSlice now holds one of the IPs, so that endpoint is no longer to be removed."""
    approved = remediations.plan(
        cluster.transports, cluster.settings, "hns-endpoint-cleanup", "akswin-stale"
    )
    for ip in STALE:
        assert ip in approved.what
        # what approvers read first in Slack: each endpoint with its IP
        assert any(
            c.startswith("Remove-HnsEndpoint ") and c.endswith(ip) for c in approved.commands
        )
    api = cluster.transports.cluster
    api.create(
        "EndpointSlice",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "late-abc", "labels": {"kubernetes.io/service-name": "late"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.250.3"]}],
        },
        "web",
    )
    try:
        fresh = remediations.plan(
            cluster.transports, cluster.settings, "hns-endpoint-cleanup", "akswin-stale"
        )
    finally:
        api.delete("EndpointSlice", "late-abc", "web")

    assert "10.244.250.3" not in fresh.what
    assert "params" in approved.differences(fresh)
    again = remediations.plan(
        cluster.transports, cluster.settings, "hns-endpoint-cleanup", "akswin-stale"
    )
    assert approved.differences(again) == []


def test_cleanup_removes_exactly_the_named_endpoints_and_verifies(cluster: CheckCluster) -> None:
    dry = cluster.winpod("remediate", "hns-endpoint-cleanup", "akswin-stale", "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    for ip in STALE:
        assert ip in dry.stdout
    assert (
        cluster.sim.control("GET", "/sim/v1/hosts/akswin-stale")["network"]["staleRemoteEndpoints"]
        == 3
    )

    run = cluster.winpod("remediate", "hns-endpoint-cleanup", "akswin-stale", "--yes")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "removed 3:" in run.stdout
    assert "remote endpoints before: 77, after: 74" in run.stdout
    assert "Verification — fixed" in run.stdout
    host = cluster.sim.control("GET", "/sim/v1/hosts/akswin-stale")
    removals = [h for h in host["history"] if h.startswith("hns endpoint ")]
    assert [r.split("(")[1].split(")")[0] for r in removals] == list(STALE)
    assert host["network"]["staleRemoteEndpoints"] == 0
    assert cluster.only(cluster.pod("web/reused-0", fresh=True), "dns-after-reboot").severity == (
        "ok"
    )
    audit = cluster.winpod("audit", "--last", "20")
    assert "hns-endpoint-cleanup" in audit.stdout


def test_with_nothing_stale_there_is_nothing_to_plan(cluster: CheckCluster) -> None:
    with pytest.raises(BadInput, match="no stale remote HNS endpoint on akswin-busy"):
        remediations.plan(
            cluster.transports, cluster.settings, "hns-endpoint-cleanup", "akswin-busy"
        )


@pytest.mark.parametrize(
    "value",
    [
        "10.244.250.1",
        "0A1B2C3D-0000-1111-2222-333344445555=10.244.250.1;Remove-HnsNetwork",
        "0A1B2C3D-0000-1111-2222-333344445555=10.244.250.1' ; Get-HnsNetwork | Remove-HnsNetwork #",
        ",".join(["0A1B2C3D-0000-1111-2222-333344445555=10.244.250.1"] * (MAX_ENDPOINTS + 1)),
    ],
)
def test_the_cleanup_script_takes_only_id_ip_pairs(value: str) -> None:
    with pytest.raises(BadInput, match="unsafe value"):
        render("hns-endpoint-cleanup", Endpoints=value)


def test_the_most_endpoints_a_plan_names_still_fit_one_command_line() -> None:
    pairs = ",".join(
        f"0A1B2C3D-0000-1111-2222-3333444455{i:02d}=10.244.255.{i}" for i in range(MAX_ENDPOINTS)
    )
    wire = for_the_wire(render("hns-endpoint-cleanup", Endpoints=pairs))
    encoded = base64.b64encode(wire.encode("utf-16-le")).decode()
    command = "powershell.exe -NoLogo -NoProfile -NonInteractive -EncodedCommand " + encoded

    assert len(command) < 8191 - 512  # cmd.exe's limit, with the margin test_scripts keeps


def test_without_the_node_kube_proxy_texts_still_warn(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-nowinrm", CHECK)

    assert finding.severity == "warning"
    assert finding.title == "kube-proxy reports HNS leftovers (HNS could not be read)"
    assert "(0xb7)" in finding.evidence[0]
    assert cluster.offered(finding) == [("kube-proxy-restart", "akswin-nowinrm", "medium")]


def test_a_hostprocess_kube_proxy_is_restarted_as_a_pod_and_its_texts_are_read(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-kpod", CHECK)
    assert finding.severity == "error"
    assert any("(0x803b0013)" in line for line in finding.evidence)
    assert cluster.offered(finding) == [("kube-proxy-restart", "akswin-kpod", "medium")]

    run = cluster.winpod("remediate", "kube-proxy-restart", "akswin-kpod", "--yes")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "replaced by kube-proxy-windows-" in run.stdout
    assert "Verification — fixed" in run.stdout


def test_a_leak_no_pod_has_reused_yet_is_a_warning(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-leak", CHECK)

    assert finding.severity == "warning"
    assert finding.evidence[0].endswith("no EndpointSlice holds 10.244.251.7")
    assert [r[0] for r in cluster.offered(finding)] == [
        "kube-proxy-restart",
        "hns-endpoint-cleanup",
    ]


def test_the_snapshot_says_when_more_went_or_came_than_the_plan_named() -> None:
    a, b, c = ("A-1", "10.0.0.1"), ("B-2", "10.0.0.2"), ("C-3", "10.0.0.3")
    rows = [{"ID": i, "IPAddress": ip} for i, ip in (a, b, c)]
    data = {"before": rows, "removed": rows[:1], "after": [rows[2]], "skipped": []}

    lines, snapshot = report(data, ["A-1=10.0.0.1"])

    assert lines[0] == "removed 1: A-1 (10.0.0.1)"
    assert "named in the plan: A-1 (10.0.0.1); still present after: none" in snapshot
    assert "remote endpoints after (1): also gone B-2 (10.0.0.2); new none" in snapshot
    assert snapshot[-4:] == [
        "remote endpoints before (3):",
        "  A-1 10.0.0.1",
        "  B-2 10.0.0.2",
        "  C-3 10.0.0.3",
    ]
