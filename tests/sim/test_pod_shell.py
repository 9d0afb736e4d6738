"""What commands print inside simulated Windows pods, under each network fault the sim models."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.pod_shell import ExecResult, run_in_pod
from sim.scenario import load_scenario
from sim.world import World

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TOKEN = r"C:\var\run\secrets\kubernetes.io\serviceaccount\token"
API = "kubernetes.default.svc.cluster.local"


def world_of(name: str) -> World:
    return load_scenario(SCENARIOS / f"shell_{name}.yaml")


def run(world: World, pod: str, *argv: str) -> ExecResult:
    namespace, name = pod.split("/")
    found = world.peek("pods", namespace, name)
    return run_in_pod(world, found, found["spec"]["containers"][0]["name"], list(argv))


def ps(world: World, pod: str, script: str) -> ExecResult:
    return run(world, pod, "powershell", "-NoProfile", "-NonInteractive", "-Command", script)


def tcp(world: World, pod: str, address: str, port: int) -> str:
    result = ps(world, pod, f"Test-NetConnection {address} -Port {port} -InformationLevel Quiet")
    assert result.exit_code == 0
    return result.stdout.splitlines()[-1]


def resolves(world: World, pod: str, *argv: str) -> bool:
    result = run(world, pod, "nslookup", API, *argv)
    return result.exit_code == 0 and "Address:  10.0.0.1\r\n" in result.stdout


@pytest.fixture
def healthy() -> World:
    return world_of("healthy")


@pytest.fixture
def stale() -> World:
    return world_of("stale")


# --- a healthy node --------------------------------------------------------------------------


def test_nslookup_in_a_healthy_pod_prints_what_windows_prints(healthy: World) -> None:
    result = run(healthy, "web/iis-0", "nslookup", API)
    assert result == ExecResult(
        "Server:  kube-dns.kube-system.svc.cluster.local\r\n"
        "Address:  10.0.0.10\r\n"
        "\r\n"
        f"Name:    {API}\r\n"
        "Address:  10.0.0.1\r\n"
        "\r\n",
        "",
        0,
    )


def test_nslookup_names_the_kube_dns_pod_when_asked_directly(healthy: World) -> None:
    result = run(healthy, "web/iis-0", "nslookup", API, "10.244.0.2")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "Server:  10-244-0-2.kube-dns.kube-system.svc.cluster.local\r\nAddress:  10.244.0.2\r\n"
    )


def test_public_names_resolve_non_authoritatively_and_unknown_ones_do_not(healthy: World) -> None:
    public = run(healthy, "web/iis-0", "nslookup", "www.bing.com")
    assert public.exit_code == 0
    assert "Name:    www.bing.com\r\nAddress:  203.0.113.80\r\n" in public.stdout
    assert public.stderr == "Non-authoritative answer:\r\n"

    unknown = run(healthy, "web/iis-0", "cmd", "/c", "nslookup nosuch")
    assert unknown.exit_code == 1
    assert unknown.stdout.count("Address:") == 1
    assert unknown.stderr == (
        "*** kube-dns.kube-system.svc.cluster.local can't find nosuch: Non-existent domain\r\n"
    )


def test_a_bare_service_name_resolves_in_the_pods_namespace(healthy: World) -> None:
    assert "Address:  10.0.120.15\r\n" in run(healthy, "web/iis-0", "nslookup", "frontend").stdout
    assert run(healthy, "jobs/batch-0", "nslookup", "frontend").exit_code == 1
    assert run(healthy, "jobs/batch-0", "nslookup", "frontend.web.svc.cluster.local").exit_code == 0


def test_windows_pods_get_one_dns_suffix_so_partial_names_fail(healthy: World) -> None:
    # kubernetes.io dns-pod-service: only the namespace's suffix; `kubernetes.default` and
    # `frontend.web.svc` are not completed, full names and bare names of the namespace are.
    partial = run(healthy, "web/iis-0", "nslookup", "kubernetes.default")
    assert partial.exit_code == 1
    assert "can't find kubernetes.default: Non-existent domain" in partial.stderr
    assert run(healthy, "web/iis-0", "nslookup", "frontend.web.svc").exit_code == 1
    assert run(healthy, "jobs/batch-0", "nslookup", "frontend.web").exit_code == 1
    assert run(healthy, "web/iis-0", "nslookup", API).exit_code == 0


def test_resolve_dns_name_prints_a_table(healthy: World) -> None:
    result = ps(healthy, "web/iis-0", f"Resolve-DnsName {API} -Type A -DnsOnly")
    assert result.exit_code == 0
    assert result.stdout == (
        "\r\n"
        "Name                                           Type   TTL   Section    IPAddress\r\n"
        "----                                           ----   ---   -------    ---------\r\n"
        f"{API}           A      5     Answer     10.0.0.1\r\n"
        "\r\n\r\n"
    )


def test_test_net_connection_reaches_the_api_server(healthy: World) -> None:
    assert tcp(healthy, "web/iis-0", "10.0.0.1", 443) == "True"
    assert tcp(healthy, "web/iis-0", API, 443) == "True"  # a name goes through the resolver
    result = ps(healthy, "web/iis-0", "tnc 10.0.0.1 -Port 443")
    assert result.exit_code == 0
    fields = dict(re.findall(r"^(\w+) +: (.*)\r$", result.stdout, re.MULTILINE))
    assert fields["RemoteAddress"] == "10.0.0.1"
    assert fields["RemotePort"] == "443"
    assert fields["SourceAddress"] == "10.244.1.4"
    assert fields["InterfaceAlias"].startswith("vEthernet (")
    assert fields["TcpTestSucceeded"] == "True"
    assert "WARNING" not in result.stdout


def test_a_closed_port_fails_with_windows_warnings(healthy: World) -> None:
    result = ps(healthy, "web/iis-0", "Test-NetConnection 10.0.0.1 -Port 80")
    assert result.exit_code == 0  # PowerShell exits 0: the answer is in the output
    assert result.stdout.startswith(
        "WARNING: TCP connect to (10.0.0.1 : 80) failed\r\n"
        "WARNING: Ping to 10.0.0.1 failed with status: TimedOut\r\n"
    )
    assert "TcpTestSucceeded       : False\r\n" in result.stdout
    assert tcp(healthy, "web/iis-0", "10.0.120.15", 80) == "True"  # a Service with a backend


def test_the_token_is_readable_on_build_17763(healthy: World) -> None:
    typed = run(healthy, "web/iis-0", "cmd", "/c", "type", TOKEN)
    assert typed.exit_code == 0
    assert typed.stdout.startswith("eyJhbGciOiJSUzI1NiIsImtpZCI6InNpbSJ9.")
    length = ps(healthy, "web/iis-0", f"(Get-Content -Raw '{TOKEN}').Length")
    assert length == ExecResult(f"{len(typed.stdout)}\r\n", "", 0)
    read = ps(healthy, "web/iis-0", f"[IO.File]::ReadAllText('{TOKEN}').Length")
    assert read.stdout == length.stdout
    # Get-Item describes the symlink itself, never its target.
    assert ps(healthy, "web/iis-0", f"(Get-Item {TOKEN}).Length").stdout == "0\r\n"


def test_a_pod_without_a_mounted_token_has_no_token_file(healthy: World) -> None:
    result = ps(healthy, "jobs/batch-0", f"Get-Content {TOKEN}")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Get-Content : Cannot find path '{TOKEN}' because it does not exist.\r\n"
    )


def test_ipconfig_shows_the_pod_adapter_and_cluster_dns(healthy: World) -> None:
    result = run(healthy, "web/iis-0", "ipconfig", "/all")
    assert result.exit_code == 0
    assert "   Host Name . . . . . . . . . . . . : iis-0\r\n" in result.stdout
    assert "   IPv4 Address. . . . . . . . . . . : 10.244.1.4(Preferred) \r\n" in result.stdout
    assert "   DNS Servers . . . . . . . . . . . : 10.0.0.10\r\n" in result.stdout
    assert "   Connection-specific DNS Suffix  . : web.svc.cluster.local\r\n" in result.stdout
    brief = run(healthy, "web/iis-0", "ipconfig")
    assert "DNS Servers" not in brief.stdout
    assert "   IPv4 Address. . . . . . . . . . . : 10.244.1.4\r\n" in brief.stdout


def test_a_reboot_breaks_dns_on_a_node_with_one_pod(healthy: World) -> None:
    assert resolves(healthy, "jobs/batch-0")
    healthy.reboot("akswin000001")
    assert not resolves(healthy, "jobs/batch-0")
    assert resolves(healthy, "jobs/batch-0", "10.244.0.3")


# --- stale HNS policies (acs-engine#2027) -------------------------------------------------------


def test_stale_policies_time_out_lookups_through_the_dns_service_ip(stale: World) -> None:
    result = run(stale, "shop/api-0", "nslookup", API)
    timed_out = "DNS request timed out.\r\n    timeout was 2 seconds.\r\n"
    assert result == ExecResult(
        timed_out + "Server:  UnKnown\r\nAddress:  10.0.0.10\r\n\r\n" + timed_out * 4,
        "*** Request to UnKnown timed-out\r\n",
        1,
    )
    error = ps(stale, "shop/api-0", f"Resolve-DnsName {API}")
    assert error.exit_code == 1
    assert error.stderr.startswith(
        f"Resolve-DnsName : {API} : This operation returned because the timeout period expired\r\n"
    )
    concise = run(stale, "shop/api-0", "pwsh", "-c", f"Resolve-DnsName {API}")
    assert concise == ExecResult(
        "",
        f"Resolve-DnsName: {API} : This operation returned because the timeout period expired\r\n",
        1,
    )


def test_stale_policies_spare_the_kube_dns_pods_and_other_services(stale: World) -> None:
    assert resolves(stale, "shop/api-0", "10.244.0.2")
    assert tcp(stale, "shop/api-0", "10.0.0.10", 53) == "False"
    assert tcp(stale, "shop/api-0", "10.244.0.2", 53) == "True"
    assert tcp(stale, "shop/api-0", "10.0.0.1", 443) == "True"
    resolved = ps(stale, "shop/api-0", f"Resolve-DnsName {API} -Server 10.244.0.3")
    assert resolved.exit_code == 0
    assert "10.0.0.1\r\n" in resolved.stdout


def test_a_second_running_pod_on_the_node_makes_lookups_work(stale: World) -> None:
    stale.create(
        "pods",
        "shop",
        {
            "metadata": {"name": "keeper-0"},
            "spec": {"nodeName": "akswin000002", "containers": [{"name": "pause", "image": "p"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.9"},
        },
    )
    assert resolves(stale, "shop/api-0")
    assert tcp(stale, "shop/api-0", "10.0.0.10", 53) == "True"
    assert not resolves(stale, "shop/api-1")  # the other node still runs a single pod


def test_the_seed_dns_override_fixes_that_pod_only(stale: World) -> None:
    result = ps(
        stale,
        "shop/api-0",
        "\n".join(
            [
                "$adapter=Get-NetAdapter",
                "Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex "
                "-ServerAddresses 10.244.0.2,10.244.0.3",
                "Set-DnsClient -InterfaceIndex $adapter.ifIndex -ConnectionSpecificSuffix "
                '"default.svc.cluster.local"',
            ]
        ),
    )
    assert result == ExecResult("", "", 0)
    assert resolves(stale, "shop/api-0")
    assert "Address:  10.0.0.1\r\n" in run(stale, "shop/api-0", "nslookup", "kubernetes").stdout
    ipconfig = run(stale, "shop/api-0", "ipconfig", "/all").stdout
    assert (
        "   DNS Servers . . . . . . . . . . . : 10.244.0.2\r\n"
        "                                       10.244.0.3\r\n"
    ) in ipconfig
    assert not resolves(stale, "shop/api-1")


def test_the_override_by_alias_in_an_encoded_command(stale: World) -> None:
    script = (
        "$a = Get-NetAdapter; "
        "Set-DnsClientServerAddress -InterfaceAlias $a.Name "
        "-ServerAddresses ('10.244.0.2', '10.244.0.3'); "
        "Set-DnsClient -InterfaceAlias 'vEthernet*' "
        "-ConnectionSpecificSuffix 'shop.svc.cluster.local'; "
        "Get-DnsClientServerAddress -InterfaceAlias 'vEthernet*' -AddressFamily IPv4"
    )
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    result = run(stale, "shop/api-1", "powershell.exe", "-NoProfile", "-EncodedCommand", encoded)
    assert result.exit_code == 0
    assert "{10.244.0.2, 10.244.0.3}" in result.stdout
    assert resolves(stale, "shop/api-1")
    assert not resolves(stale, "shop/api-0")


def test_the_override_refuses_an_interface_the_pod_does_not_have(stale: World) -> None:
    result = ps(
        stale,
        "shop/api-0",
        "Set-DnsClientServerAddress -InterfaceIndex 999 -ServerAddresses 10.244.0.2",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Set-DnsClientServerAddress : No MSFT_DNSClientServerAddress objects found with "
        "property 'InterfaceIndex' equal to '999'."
    )
    assert not resolves(stale, "shop/api-0")


# --- other faults ------------------------------------------------------------------------------


def test_with_mac_spoofing_off_the_pod_reaches_nothing() -> None:
    world = world_of("spoofing_off")
    assert tcp(world, "jobs/worker-0", "10.0.0.1", 443) == "False"
    assert tcp(world, "jobs/worker-0", "10.244.0.2", 53) == "False"
    assert not resolves(world, "jobs/worker-0")
    assert not resolves(world, "jobs/worker-0", "10.244.0.2")
    world.hosts["hvwin000004"].vm.mac_address_spoofing = True  # type: ignore[union-attr]
    assert tcp(world, "jobs/worker-0", "10.0.0.1", 443) == "True"


def test_without_kube_proxy_service_ips_fail_but_pod_ips_work() -> None:
    world = world_of("kubeproxy_stopped")
    assert tcp(world, "web/web-0", "10.0.0.1", 443) == "False"
    assert tcp(world, "web/web-0", "10.244.0.2", 53) == "True"
    assert not resolves(world, "web/web-0")
    assert resolves(world, "web/web-0", "10.244.0.2")
    world.hosts["akswin000006"].services["kubeproxy"] = "Running"
    assert resolves(world, "web/web-0")


def test_build_16299_cannot_follow_the_token_symlink() -> None:
    world = world_of("old_build")
    result = ps(world, "web/legacy-0", f"(Get-Content -Raw '{TOKEN}').Length")
    assert result.exit_code == 1
    assert result.stdout == "0\r\n"
    assert result.stderr.startswith(
        f"Get-Content : Could not find a part of the path '{TOKEN}'.\r\nAt line:1 char:2\r\n"
    )
    assert "DirectoryNotFoundException" in result.stderr
    typed = run(world, "web/legacy-0", "cmd", "/c", f"type {TOKEN}")
    assert typed == ExecResult("", "The system cannot find the path specified.\r\n", 1)
    assert ps(world, "web/legacy-0", f"[IO.File]::ReadAllText('{TOKEN}')").exit_code == 1


# --- what exec does outside the model ----------------------------------------------------------


def test_a_linux_pod_answers_windows_commands_with_not_simulated(healthy: World) -> None:
    assert run(healthy, "web/nginx-0", "nslookup", API) == ExecResult(
        "", f"not simulated: nslookup {API}\r\n", 1
    )
    assert run(healthy, "web/nginx-0", "cmd", "/c", "echo", "hi").stderr.startswith(
        "not simulated: "
    )


def test_a_pod_that_is_not_running_has_no_container_to_exec_into(healthy: World) -> None:
    result = run(healthy, "web/iis-pending", "nslookup", API)
    assert result == ExecResult(
        "", 'unable to upgrade connection: container not found ("iis")\r\n', 1
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "10.0.0.1"],
        ["powershell", "-Command", "Get-Process | Select-Object -First 1"],
        ["powershell", "-Command", "Get-Content C:\\Windows\\win.ini"],
        ["powershell", "-Command", "Resolve-DnsName $name"],
        ["powershell", "-EncodedCommand", "not base64!"],
        ["powershell"],
        ["nslookup"],
        ["cmd", "/c", "dir"],
    ],
)
def test_anything_else_is_not_simulated(healthy: World, argv: list[str]) -> None:
    assert run(healthy, "web/iis-0", *argv) == ExecResult(
        "", f"not simulated: {' '.join(argv)}\r\n", 1
    )


def test_a_script_with_one_unknown_statement_changes_nothing(stale: World) -> None:
    result = ps(
        stale,
        "shop/api-0",
        "Set-DnsClientServerAddress -InterfaceIndex "
        "(Get-NetAdapter).ifIndex -ServerAddresses 10.244.0.2; Restart-Computer",
    )
    assert result.stderr.startswith("not simulated: ")
    assert not resolves(stale, "shop/api-0")


def test_cmd_echo_and_exit(healthy: World) -> None:
    assert run(healthy, "web/iis-0", "cmd", "/c", "echo", "hello", "world") == ExecResult(
        "hello world\r\n", "", 0
    )
    assert run(healthy, "web/iis-0", "cmd", "/c", "echo hello").stdout == "hello\r\n"
    assert run(healthy, "web/iis-0", "cmd", "/c", "exit 3").exit_code == 3
    assert run(healthy, "web/iis-0", "cmd", "/c", "exit", "4").exit_code == 4


def test_error_action_controls_what_a_failure_prints(healthy: World) -> None:
    quiet = ps(healthy, "web/iis-0", "Resolve-DnsName nosuch -ErrorAction SilentlyContinue")
    assert quiet == ExecResult("", "", 1)
    stopped = ps(
        healthy,
        "web/iis-0",
        "$ErrorActionPreference = 'Stop'; Resolve-DnsName nosuch; Get-NetAdapter",
    )
    assert stopped.exit_code == 1
    assert stopped.stdout == ""
    assert "At line:1 char:34\r\n" in stopped.stderr


_WORDS = st.sampled_from(
    [
        "cmd",
        "/c",
        "nslookup",
        "ipconfig",
        "/all",
        "powershell",
        "pwsh",
        "-Command",
        "-c",
        "-EncodedCommand",
        "echo",
        "exit",
        "type",
        TOKEN,
        API,
        "10.0.0.10",
        "10.244.0.2",
        "-Port",
        "53",
        "Resolve-DnsName",
        "Test-NetConnection",
        "tnc",
        "Get-Content",
        "-Raw",
        "Get-NetAdapter",
        "Set-DnsClientServerAddress",
        "-InterfaceIndex",
        "$a.ifIndex",
        "$a=Get-NetAdapter;",
        "(",
        ")",
        "'",
        '"',
        ",",
        ";",
        "|",
        "-ServerAddresses",
        "Set-DnsClient",
        "[IO.File]::ReadAllText(",
        "-timeout=1",
        "-",
        "",
    ]
)


_FUZZED = world_of("stale")  # overrides the fuzzer sets do not matter to what it checks


@settings(max_examples=200, deadline=None, database=None)
@given(
    argv=st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=8),
    script=st.lists(st.one_of(_WORDS, st.text(max_size=6)), max_size=10),
)
def test_odd_input_never_raises(argv: list[str], script: list[str]) -> None:
    for attempt in (argv, ["powershell", "-Command", " ".join(script)]):
        result = run(_FUZZED, "shop/api-0", *attempt)
        assert isinstance(result.exit_code, int)
        assert result.exit_code == 0 or result.stderr or result.stdout
