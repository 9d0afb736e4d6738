"""`port-exhaustion` on the simulator, and `widen-dynamic-ports` end to end through the CLI over
WinRM, with the widening rule itself on data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers import remediations
from handlers.checks.port_exhaustion import PortRange, widened

if TYPE_CHECKING:
    from conftest import CheckCluster

SCENARIO = "check_port_exhaustion.yaml"
CHECK = "port-exhaustion"


@pytest.mark.wire
def test_six_free_blocks_is_exhaustion_with_its_numbers_and_events(
    cluster: CheckCluster,
) -> None:
    finding = cluster.node_finding("akswin-ports", CHECK)

    assert finding.severity == "error"
    assert "TCP dynamic port range 49152-65535 (16384 ports, 256 blocks of 64)" in finding.evidence
    assert "6 free blocks of 64 (networkhealth.ps1 fails at 10 or fewer)" in finding.evidence
    assert any("SandboxChanged: Pod sandbox changed" in line for line in finding.evidence)
    assert "DSR" in finding.summary
    assert cluster.offered(finding) == [("widen-dynamic-ports", "akswin-ports", "high")]


@pytest.mark.wire
def test_the_pod_whose_sandbox_is_re_created_sees_it(cluster: CheckCluster) -> None:
    assert cluster.pod_finding("web/app-0", CHECK).severity == "error"
    # the simulator's kubelet re-creates sandboxes on an exhausted node and says so
    recreated = cluster.pod_finding("web/app-1", CHECK)
    assert recreated.severity == "error"
    assert any("SandboxChanged: Pod sandbox changed" in line for line in recreated.evidence)
    # exhausted ports leave no port for the DNS VIP's SNAT: DNS fails in the running pod
    assert cluster.pod_finding("web/dns-0", "dns-after-reboot").severity in ("error", "warning")


@pytest.mark.wire
def test_a_nearly_full_range_with_twelve_free_blocks_stays_quiet(cluster: CheckCluster) -> None:
    finding = cluster.node_finding("akswin-nearly", CHECK)

    assert finding.severity == "ok"
    assert finding.title == "12 free port blocks on akswin-nearly"
    assert cluster.pod_finding("web/busy-0", CHECK).severity == "ok"
    assert cluster.pod_finding("web/busy-0", "dns-after-reboot").severity == "ok"


@pytest.mark.wire
def test_widen_dynamic_ports_shows_both_ranges_and_verifies(cluster: CheckCluster) -> None:
    dry = cluster.winpod("remediate", "widen-dynamic-ports", "akswin-ports", "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    assert "from 49152-65535 (16384 ports, 256 blocks of 64)" in dry.stdout
    assert "to 32768-65535 (32768 ports, 512 blocks of 64)" in dry.stdout
    assert "start=$s num=$c" in dry.stdout  # the script's state-changing line
    plan = remediations.plan(
        cluster.transports, cluster.settings, "widen-dynamic-ports", "akswin-ports"
    )
    assert plan.commands[0] == (
        "netsh int ipv4 set dynamicport tcp start=32768 num=32768  # was start=49152 num=16384"
    )

    run = cluster.winpod("remediate", "widen-dynamic-ports", "akswin-ports", "--yes")

    assert run.returncode == 0, run.stderr + run.stdout
    assert "TCP dynamic ports 49152-65535 (16384 ports) → 32768-65535 (32768 ports)" in run.stdout
    assert "Verification — fixed" in run.stdout
    ports = cluster.sim.control("GET", "/sim/v1/hosts/akswin-ports")["ports"]
    assert (ports["dynamicStart"], ports["dynamicCount"], ports["freeBlocks"]) == (
        32768,
        32768,
        262,
    )
    assert cluster.only(cluster.node("akswin-ports", fresh=True), CHECK).severity == "ok"


def test_the_range_grows_down_to_just_above_the_node_ports() -> None:
    wider = widened(PortRange(49152, 16384, ((65000, 65535),)))

    assert wider is not None
    assert (wider.start, wider.end) == (32768, 65535)


def test_the_range_stays_clear_of_an_exclusion_below_it() -> None:
    # e.g. Hyper-V or an administrator reserved 40000-40099: the new range starts above it
    wider = widened(PortRange(49152, 16384, ((33000, 33063), (40000, 40099))))

    assert wider is not None
    assert (wider.start, wider.end) == (40100, 65535)


def test_a_range_that_cannot_grow_clear_of_everything_is_not_offered() -> None:
    assert widened(PortRange(32768, 32768, ())) is None
    assert widened(PortRange(49152, 16384, ((32768, 49151),))) is None


def test_free_blocks_count_only_exclusions_inside_the_range() -> None:
    ports = PortRange(49152, 16384, ((1000, 1063), (49152, 49215), (65472, 65535)))

    assert ports.free_blocks == 254
