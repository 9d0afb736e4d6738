"""Addresses read from the cluster reach probe commands and scripts only as plain IPs."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from handlers import sweep
from handlers.context import Context, Transports
from handlers.errors import WinpodError
from handlers.registry import default_registry

HOSTILE_IPS = ["fe80::1%x');Stop-Computer;('", "10.244.0.2 ; calc", "10.244.0.2\n", "kube-dns-0"]


class Cluster:
    """Just what these reads need: kube-dns pods and Services."""

    context = "fake"

    def __init__(self, pod_ips: list[str], cluster_ip: str = "10.0.0.10") -> None:
        self.pod_ips = pod_ips
        self.cluster_ip = cluster_ip

    def list(self, kind: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        if namespace != "kube-system":
            return []  # the sweep's nodes, pods and events: none needed here
        return [
            {"metadata": {"name": f"coredns-{i}"}, "status": {"phase": "Running", "podIP": ip}}
            for i, ip in enumerate(self.pod_ips)
        ]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"clusterIP": self.cluster_ip}}


def context(cluster: Cluster) -> Context:
    pod = {
        "metadata": {"name": "iis-0", "namespace": "web"},
        "spec": {"nodeName": "akswin000001", "containers": [{"name": "iis", "image": "x"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.5"},
    }
    transports = Transports(cluster, None, None)  # type: ignore[arg-type]
    return Context(transports, Settings(), "Pod", pod, None)


@pytest.mark.parametrize("hostile", HOSTILE_IPS)
def test_a_kube_dns_pod_ip_that_is_no_plain_ip_is_left_out(hostile: str) -> None:
    assert context(Cluster([hostile, "10.244.0.3"])).kube_dns_pod_ips() == ["10.244.0.3"]


def test_plain_ipv4_and_ipv6_pod_ips_are_kept() -> None:
    ips = ["10.244.0.2", "fd00:10:244::2"]
    assert context(Cluster(ips)).kube_dns_pod_ips() == ips


@pytest.mark.parametrize("hostile", HOSTILE_IPS)
def test_a_cluster_ip_that_is_no_plain_ip_is_read_as_none(hostile: str) -> None:
    assert context(Cluster([], cluster_ip=hostile)).service_ip("kube-system", "kube-dns") == ""


def test_pod_dns_override_never_puts_a_hostile_pod_ip_on_the_command_line() -> None:
    only_hostile = context(Cluster(HOSTILE_IPS))
    with pytest.raises(WinpodError, match="no running kube-dns pods with an IP address"):
        default_registry().remediation_spec("pod-dns-override").plan(only_hostile, "web/iis-0", {})


def test_the_sweep_probes_only_plain_kube_dns_addresses() -> None:
    transports = Transports(
        Cluster([*HOSTILE_IPS, "10.244.0.3"], cluster_ip=HOSTILE_IPS[0]), None, None
    )  # type: ignore[arg-type]
    assert sweep.kube_dns(transports) == ("", ["10.244.0.3"])
