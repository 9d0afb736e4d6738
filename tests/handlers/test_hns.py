"""handlers/hns.py on saved `ConvertTo-Json` output of the HNS cmdlets (shapes of microsoft/SDN
hns.psm1 and hns.v2.psm1), read by the same code that reads node-status.ps1's live output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from handlers import hns

FIXTURES = Path(__file__).parent / "fixtures" / "hns"


def load(name: str) -> list[Any]:
    return hns.as_list(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def test_v1_policy_lists_whose_endpoints_exist_are_programmed() -> None:
    vip = hns.dns_vip("10.0.0.10", load("Get-HnsPolicyList"), [], load("Get-HnsEndpoint"))

    assert (vip.state, vip.holders, vip.references, vip.missing) == ("programmed", 1, 2, 0)


def test_after_a_reboot_the_lists_hold_the_vip_but_their_endpoints_are_gone() -> None:
    endpoints = load("Get-HnsEndpoint-after-reboot")

    vip = hns.dns_vip("10.0.0.10", load("Get-HnsPolicyList"), [], endpoints)

    assert vip.holders == 1  # the VIP is still there: presence is not health
    assert (vip.state, vip.missing) == ("stale", 2)


def test_v2_load_balancers_are_read_from_frontend_vips_and_bare_endpoint_ids() -> None:
    # A single object prints bare, and HCN writes ids in lower case.
    vip = hns.dns_vip("10.0.0.10", [], load("Get-HnsLoadBalancer"), load("Get-HnsEndpoint"))

    assert (vip.state, vip.holders, vip.references) == ("programmed", 1, 1)


def test_no_holder_of_the_vip_is_missing() -> None:
    vip = hns.dns_vip("10.0.0.99", load("Get-HnsPolicyList"), [], load("Get-HnsEndpoint"))

    assert vip.state == "missing"


def test_node_status_output_is_read_the_same_way() -> None:
    status = {
        "dnsVip": "10.0.0.10",
        "dnsPolicyLists": load("Get-HnsPolicyList")[0],  # one list prints bare
        "dnsLoadBalancers": None,
        "dnsEndpoints": load("Get-HnsEndpoint-after-reboot"),
    }

    assert hns.dns_vip_of_status(status).state == "stale"


def test_kube_proxy_service_is_found_under_either_name() -> None:
    assert hns.kube_proxy_service({"kubelet": "Running", "kube-proxy": "Stopped"}) == "kube-proxy"
    assert hns.kube_proxy_service({"kubeproxy": "Running"}) == "kubeproxy"
    assert hns.kube_proxy_service({"kubelet": "Running"}) is None


def test_networks_are_described_by_name_and_type() -> None:
    assert hns.describe_networks(load("Get-HnsNetwork")) == "ext (L2Bridge), azure (L2Bridge)"
