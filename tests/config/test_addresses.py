"""Where winpod may connect: plain IPs and host names only, from the cluster and from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.addresses import plain_host, plain_ip
from config.settings import ConfigError, Settings, load_settings
from handlers.context import node_address
from handlers.errors import BadInput

HOSTILE = [
    "127.0.0.1:18080/evil?x=",
    "10.0.0.5:5986",
    "hv01/wsman",
    "user@hv01",
    "hv01 ",
    "hv01\n",
    "http://hv01",
    "[::1]",
    "fe80::1%eth0",
    "fe80::1%x');calc",
    "hv01.",
    "-hv01",
    "hv_01",
    "hv01?x",
    "",
    "a" * 254,
    "ｈｖ01",
    "2130706433",
    "127.1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_anything_but_a_plain_host_is_refused(value: str) -> None:
    assert plain_host(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hv01", "hv01"),
        ("HV01.corp.example.com", "hv01.corp.example.com"),
        ("10.240.0.4", "10.240.0.4"),
        ("2001:DB8::7", "2001:db8::7"),
    ],
)
def test_plain_hosts_pass(value: str, expected: str) -> None:
    assert plain_host(value) == expected


@pytest.mark.parametrize("value", ["hv01", "fe80::1%eth0", "10.0.0.5:5986", " 10.0.0.5"])
def test_an_ip_is_an_ip_and_nothing_else(value: str) -> None:
    assert plain_ip(value) is None


def node(address_type: str, address: str) -> dict[str, object]:
    return {
        "metadata": {"name": "akswin000001"},
        "status": {"addresses": [{"type": address_type, "address": address}]},
    }


@pytest.mark.parametrize("value", ["127.0.0.1:18080/evil?x=", "akswin000001", "fe80::1%eth0"])
def test_a_node_internal_ip_that_is_no_ip_is_refused(value: str) -> None:
    with pytest.raises(BadInput, match="is not an IP address; winpod connects to nothing else"):
        node_address(node("InternalIP", value), "InternalIP", "to reach WinRM on")


def test_a_node_hostname_address_may_be_a_plain_name_but_no_more() -> None:
    assert node_address(node("Hostname", "AKSWIN000001"), "Hostname", "") == "akswin000001"
    with pytest.raises(BadInput, match="is not a plain host name"):
        node_address(node("Hostname", "akswin000001:1234"), "Hostname", "")


def test_a_healthy_node_address_passes() -> None:
    assert node_address(node("InternalIP", "10.240.0.4"), "InternalIP", "") == "10.240.0.4"


@pytest.mark.parametrize(
    "hosts",
    [{"hv01": "10.0.0.5:5986"}, {"hv01": "http://10.0.0.5"}, {"hv 01": "10.0.0.5"}],
)
def test_hyperv_hosts_must_be_plain(hosts: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not a host name and a plain host name or IP address"):
        Settings(hyperv={"hosts": hosts})  # type: ignore[arg-type]


def test_hyperv_hosts_are_read_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "winpod.yaml"
    path.write_text("hyperv: {hosts: {HV01: 10.0.0.5}}\n")
    assert load_settings(path).hyperv.hosts == {"hv01": "10.0.0.5"}
    path.write_text("hyperv: {hosts: {hv01: '10.0.0.5/evil'}}\n")
    with pytest.raises(ConfigError, match=r"hyperv\.hosts"):
        load_settings(path)
