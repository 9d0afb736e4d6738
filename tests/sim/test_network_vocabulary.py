"""SPEC §10's `network` and `ports` host facts: how the scenario sets them, what the node
scripts print about them, and what they break in the node's pods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sim_process import SCENARIOS

from sim import host_scripts
from sim.hns import stale_endpoint_id
from sim.pod_shell import run_in_pod
from sim.scenario import ScenarioError, load_scenario
from sim.world import World

NODE = "apiVersion: v1\nkind: Node\nmetadata: {name: w1, labels: {kubernetes.io/os: windows}}\n"
API = "kubernetes.default.svc.cluster.local"


def script(world: World, host: str, name: str, **params: str) -> dict[str, Any]:
    output = host_scripts.run_script(world, world.hosts[host], name, params)
    data: dict[str, Any] = json.loads(output.stdout)
    return data


def nslookup(world: World, pod: str) -> int:
    namespace, name = pod.split("/")
    found = world.peek("pods", namespace, name)
    return run_in_pod(world, found, "app", ["nslookup", API]).exit_code


def test_defaults_are_healthy(tmp_path: Path) -> None:
    scenario = tmp_path / "healthy.yaml"
    scenario.write_text(NODE)
    host = load_scenario(scenario).hosts["w1"]

    snapshot = host.snapshot()
    assert snapshot["network"]["staleRemoteEndpoints"] == 0
    assert snapshot["network"]["unappliedLoadBalancers"] == 0
    assert snapshot["ports"] == {
        "dynamicStart": 49152,
        "dynamicCount": 16384,
        "excludedTcpBlocks": 12,
        "freeBlocks": 244,
    }


def test_stale_endpoints_are_listed_and_break_the_pod_that_reuses_one() -> None:
    world = load_scenario(SCENARIOS / "check_hns_stale_endpoints.yaml")

    listing = script(world, "akswin-stale", "hns-endpoints")
    ips = [e["IPAddress"] for e in listing["remoteEndpoints"]]
    assert ips[-3:] == ["10.244.250.1", "10.244.250.2", "10.244.250.3"]
    assert nslookup(world, "web/reused-0") == 1  # holds 10.244.250.2
    assert nslookup(world, "web/fine-0") == 0

    host = world.hosts["akswin-stale"]
    wanted = stale_endpoint_id(host, "10.244.250.2")
    done = script(
        world,
        "akswin-stale",
        "hns-endpoint-cleanup",
        Endpoints=f"{wanted}=10.244.250.2,{stale_endpoint_id(host, '10.244.250.1')}=10.9.9.9",
    )
    assert [r["IPAddress"] for r in done["removed"]] == ["10.244.250.2"]
    assert done["skipped"][0]["why"] == "its IP changed"
    assert len(done["after"]) == len(done["before"]) - 1
    assert host.stale_endpoint_ips == ["10.244.250.1", "10.244.250.3"]
    assert nslookup(world, "web/reused-0") == 0


def test_unapplied_load_balancers_are_applied_by_a_kube_proxy_restart() -> None:
    world = load_scenario(SCENARIOS / "check_hns_stale_endpoints.yaml")

    states = [b["State"] for b in script(world, "akswin-lb", "hns-endpoints")["loadBalancers"]]
    assert states.count(1) == 2
    script(world, "akswin-lb", "kube-proxy-restart")
    states = [b["State"] for b in script(world, "akswin-lb", "hns-endpoints")["loadBalancers"]]
    assert set(states) == {2}


def test_exhausted_ports_fail_dns_until_the_range_is_widened() -> None:
    world = load_scenario(SCENARIOS / "check_port_exhaustion.yaml")

    ports = script(world, "akswin-ports", "dynamic-ports")
    assert ports["tcp"] == {"start": 49152, "count": 16384}
    assert len(ports["excluded"]) == 250
    assert ports["excluded"][-1] == {"start": 65472, "end": 65535}
    assert nslookup(world, "web/dns-0") == 1

    widened = script(world, "akswin-ports", "widen-dynamic-ports", Start="32768", Count="32768")
    assert (widened["before"], widened["after"]) == (
        {"start": 49152, "count": 16384},
        {"start": 32768, "count": 32768},
    )
    assert nslookup(world, "web/dns-0") == 0


@pytest.mark.parametrize(("start", "count"), [("30000", "35536"), ("49152", "20000")])
def test_a_range_among_the_node_ports_or_past_65535_is_refused(start: str, count: str) -> None:
    world = load_scenario(SCENARIOS / "check_port_exhaustion.yaml")

    output = host_scripts.run_script(
        world, world.hosts["akswin-ports"], "widen-dynamic-ports", {"Start": start, "Count": count}
    )
    assert output.exit_code == 1
    assert json.loads(output.stdout)["after"] == {"start": 49152, "count": 16384}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("network: {staleRemoteEndpoints: -1}", "spec.network.staleRemoteEndpoints"),
        ("network: {staleRemoteEndpoints: [nope]}", "spec.network.staleRemoteEndpoints"),
        ("network: {unappliedLoadBalancers: two}", "spec.network.unappliedLoadBalancers"),
        ("ports: {dynamicStart: 60000, dynamicCount: 16384}", "spec.ports"),
        ("ports: {dynamicCount: 640, excludedTcpBlocks: 11}", "spec.ports.excludedTcpBlocks"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, spec: str, field: str) -> None:
    scenario = tmp_path / "bad.yaml"
    host = "apiVersion: sim.winpod.io/v1\nkind: WindowsHost\nmetadata: {name: w1}\n"
    host += f"spec: {{{spec}}}\n"
    scenario.write_text(NODE + "---\n" + host)

    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_scenario(scenario)
