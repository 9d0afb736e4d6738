"""pywinrm against the simulator's WinRM endpoints: TLS, NTLM and Basic, winpod's node scripts."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import winrm
import yaml
from kubernetes import client, config
from sim_process import RunningSim
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError

from config.settings import WinRMSettings
from handlers import hns
from handlers.detached import run_detached
from handlers.node_scripts import for_the_wire
from handlers.remediations._node_script import DETACHED_SCRIPTS
from handlers.transports import NodeTarget
from handlers.transports.winrm import WinRMShell

pytestmark = pytest.mark.wire

SCRIPTS = Path(__file__).resolve().parents[2] / "handlers" / "scripts"


def render(name: str, **params: str) -> str:
    """The script as the bot sends it: each `'{{Name}}'` default replaced by a quoted value,
    comment lines and indentation dropped (handlers.node_scripts.for_the_wire)."""
    text = (SCRIPTS / f"{name}.ps1").read_text(encoding="utf-8")
    for key, value in params.items():
        text = text.replace(f"'{{{{{key}}}}}'", "'" + value.replace("'", "''") + "'")
    return for_the_wire(text)


@dataclass
class Endpoints:
    """Where and how to reach the simulated hosts, read as a bot would: kubeconfig + winpod.yaml."""

    sim: RunningSim
    port: int
    username: str
    password: str
    addresses: dict[str, str] = field(default_factory=dict)

    def address(self, host: str) -> str:
        if host not in self.addresses:
            self.addresses[host] = self._read_address(host)
        return self.addresses[host]

    def _read_address(self, host: str) -> str:
        hyperv = yaml.safe_load(self.sim.config.read_text())["hyperv"]["hosts"]
        if host in hyperv:
            return str(hyperv[host])
        with config.new_client_from_config(str(self.sim.kubeconfig)) as api_client:
            # Raw JSON: only the addresses matter here, not the client's model of a Node.
            response = client.CoreV1Api(api_client).read_node(host, _preload_content=False)
            node = json.loads(response.data)
        return str(
            next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        )

    def session(
        self, host: str, transport: str = "ntlm", password: str | None = None, **options: Any
    ) -> winrm.Session:
        options.setdefault("ca_trust_path", str(self.sim.ca))
        return winrm.Session(
            f"https://{self.address(host)}:{self.port}/wsman",
            auth=(self.username, self.password if password is None else password),
            transport=transport,
            server_cert_validation="validate",
            **options,
        )

    def run(self, host: str, name: str, transport: str = "ntlm", **params: str) -> Result:
        """Run a winpod script as the bot does: its WinRM transport (flags, code page, CLIXML
        stripped), detached for the scripts the bot runs detached."""
        settings = WinRMSettings(
            port=self.port,
            transport=transport,
            username=self.username,
            password=self.password,
            ca_bundle=str(self.sim.ca),
        )
        shell = WinRMShell(settings)
        script = render(name, **params)  # any value, quoted: the simulator's parsing is tested
        if name in DETACHED_SCRIPTS:
            target = NodeTarget(host, self.address(host))
            result = run_detached(shell, target, name, script, poll_s=0.2)
        else:
            result = shell.run_script(NodeTarget(host, self.address(host)), script, 20)
        stdout = result.stdout
        output = json.loads(stdout) if stdout.strip() else None
        assert_printed_by_the_real_script(output, name)
        return Result(output, result.stderr, result.exit_code)


@dataclass
class Result:
    output: dict[str, Any] | None
    stderr: str
    exit_code: int


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(keys_of(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(v) for v in value))
    return set()


def assert_printed_by_the_real_script(output: dict[str, Any] | None, name: str) -> None:
    """Every key the simulated host prints is one the real .ps1 puts in its JSON (keys of the
    HNS cmdlets' own objects, capitalised like `ID` and `VIPs`, come from Windows)."""
    text = (SCRIPTS / f"{name}.ps1").read_text(encoding="utf-8")
    # A key is set as `key = …` in an [ordered]@{} or indexed / listed as 'key', or it is the
    # name of a service the script asks Get-Service for.
    unknown = {
        key
        for key in keys_of(output)
        if key[:1].islower()
        and not re.search(rf"\b{key}\s*=|'{key}'|Get-Service [^\n]*\b{key}\b", text)
    }
    assert not unknown, f"{name}.ps1 never prints {sorted(unknown)}"


def endpoints_of(sim: RunningSim) -> Endpoints:
    settings = yaml.safe_load(sim.config.read_text())["winrm"]
    return Endpoints(sim, settings["port"], settings["username"], settings["password"])


@pytest.fixture(scope="module")
def seed(seed_sim: RunningSim) -> Endpoints:
    return endpoints_of(seed_sim)


def test_node_status_over_ntlm_reports_a_healthy_node(seed: Endpoints) -> None:
    result = seed.run("akswin000000", "node-status", DnsServiceIP="10.0.0.10")

    assert result.exit_code == 0, result.stderr
    status = result.output
    assert status is not None
    assert status["script"] == "node-status"
    assert status["host"] == "akswin000000"
    assert (status["build"], status["revision"]) == (17763, 2061)
    assert status["services"] == {
        "kubelet": "Running",
        "kubeproxy": "Running",
        "containerd": "Running",
    }
    assert [(n["Name"], n["Type"]) for n in status["hnsNetworks"]] == [
        ("ext", "L2Bridge"),
        ("azure", "L2Bridge"),
    ]
    assert status["policyListCount"] > 0
    assert status["dnsVip"] == "10.0.0.10"
    assert hns.dns_vip_of_status(status).state == "programmed"
    assert status["model"] != "Virtual Machine"
    assert status["sandboxImage"] == "mcr.microsoft.com/oss/kubernetes/pause:3.6"
    # .NET's round-trip format 'o', the same in every culture
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", status["lastBootUpTime"])
    assert status["errors"] == []


def test_node_status_over_basic_auth(seed: Endpoints) -> None:
    result = seed.run("akswin000005", "node-status", transport="basic", DnsServiceIP="10.0.0.10")

    assert result.exit_code == 0, result.stderr
    assert result.output is not None
    assert result.output["build"] == 20348
    assert result.output["sandboxImage"] == "mcr.microsoft.com/k8s/core/pause:1.2.0"


def test_node_status_of_a_hyperv_guest_says_virtual_machine(seed: Endpoints) -> None:
    result = seed.run("hvwin000004", "node-status", DnsServiceIP="10.0.0.10")

    assert result.output is not None
    assert result.output["model"] == "Virtual Machine"


@pytest.mark.parametrize("transport", ["ntlm", "basic"])
def test_a_wrong_password_is_refused(seed: Endpoints, transport: str) -> None:
    session = seed.session("akswin000000", transport, password="not-the-password")

    with pytest.raises(InvalidCredentialsError):
        session.run_ps(render("node-status", DnsServiceIP="10.0.0.10"))


def test_tls_is_real_the_system_cas_do_not_trust_the_simulator(seed: Endpoints) -> None:
    session = seed.session("akswin000000", ca_trust_path=None)

    with pytest.raises(requests.exceptions.SSLError):
        session.run_cmd("hostname")


def test_encrypted_messages_are_refused_with_a_reason(seed: Endpoints) -> None:
    session = seed.session("akswin000000", message_encryption="always")

    with pytest.raises(WinRMTransportError) as caught:
        session.run_cmd("hostname")
    assert caught.value.code == 400
    assert "encrypted WinRM messages are not simulated" in caught.value.response_text


def test_scripts_that_are_not_winpods_are_not_simulated(seed: Endpoints) -> None:
    session = seed.session("akswin000000")

    response = session.run_ps("Get-Process | Select-Object -First 1")
    assert response.status_code == 1
    assert b"not simulated" in response.std_err

    response = session.run_cmd("whoami")
    assert response.status_code == 1
    assert b"not simulated" in response.std_err


def test_a_script_too_long_for_cmd_exe_fails_like_windows(seed: Endpoints) -> None:
    script = render("node-status", DnsServiceIP="10.0.0.10") + "#" * 3000

    response = seed.session("akswin000000").run_ps(script)

    assert response.status_code == 1
    assert b"The command line is too long." in response.std_err


def test_the_winrm_fault_knob_fails_the_next_request(seed: Endpoints) -> None:
    seed.sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 1, "mode": "500"})

    with pytest.raises(WinRMTransportError) as caught:
        seed.session("akswin000000").run_cmd("hostname")
    assert caught.value.code == 500
    assert seed.session("akswin000000").run_cmd("hostname").std_out.strip() == b"akswin000000"


def test_hostname_and_ipconfig_answer_like_the_host(seed: Endpoints) -> None:
    session = seed.session("akswin000001")

    assert session.run_cmd("hostname").std_out.strip() == b"akswin000001"
    ipconfig = session.run_cmd("ipconfig").std_out.decode()
    assert f"IPv4 Address. . . . . . . . . . . : {seed.address('akswin000001')}" in ipconfig


def test_hns_reset_cures_stale_dns_policies(seed: Endpoints) -> None:
    before = seed.run("akswin000002", "node-status", DnsServiceIP="10.0.0.10").output
    assert before is not None and hns.dns_vip_of_status(before).state == "stale"

    reset = seed.run("akswin000002", "hns-reset")

    assert reset.exit_code == 0, reset.stderr
    assert reset.output is not None and reset.output["ok"] is True
    assert [(s["step"], s["ok"]) for s in reset.output["steps"]] == [
        ("stop kubeproxy", True),
        ("stop kubelet", True),
        ("stop containers", True),
        ("remove endpoints", True),
        ("remove policy lists", True),
        ("remove pod network", True),
        ("wait for HNS to settle", True),
        ("start kubelet", True),
        ("start kubeproxy", True),
    ]
    assert reset.output["podNetwork"] == "azure"
    after = seed.run("akswin000002", "node-status", DnsServiceIP="10.0.0.10").output
    assert after is not None
    assert hns.dns_vip_of_status(after).state == "programmed"
    assert set(after["services"].values()) == {"Running"}
    networks = {n["Name"]: n["ID"] for n in after["hnsNetworks"]}
    old = {n["Name"]: n["ID"] for n in before["hnsNetworks"]}
    assert networks["ext"] == old["ext"]  # the management network is never touched
    assert networks["azure"] != old["azure"]  # the pod network was re-created


def test_after_a_reboot_a_kube_proxy_restart_brings_the_dns_policy_back(seed: Endpoints) -> None:
    seed.sim.control("POST", "/sim/v1/hosts/akswin000001/reboot")
    rebooted = seed.run("akswin000001", "node-status", DnsServiceIP="10.0.0.10").output
    assert rebooted is not None
    # The persisted lists still hold the VIP, but their endpoints are gone.
    assert rebooted["dnsPolicyLists"]
    assert hns.dns_vip_of_status(rebooted).state == "stale"

    restart = seed.run("akswin000001", "kube-proxy-restart")

    assert restart.exit_code == 0, restart.stderr
    assert restart.output is not None
    assert (restart.output["before"], restart.output["after"]) == ("Running", "Running")
    cured = seed.run("akswin000001", "node-status", DnsServiceIP="10.0.0.10").output
    assert cured is not None and hns.dns_vip_of_status(cured).state == "programmed"


def test_mac_spoofing_reads_then_enables_on_the_hyperv_host(seed: Endpoints) -> None:
    read = seed.run("hv01", "mac-spoofing", VMName="hvwin000004", Enable="false")
    assert read.exit_code == 0, read.stderr
    assert read.output == {
        "script": "mac-spoofing",
        "host": "hv01",
        "vm": "hvwin000004",
        "adapters": [{"name": "Network Adapter", "macAddressSpoofing": "Off"}],
        "changed": False,
    }

    enable = seed.run("hv01", "mac-spoofing", VMName="hvwin000004", Enable="true")
    assert enable.exit_code == 0, enable.stderr
    assert enable.output is not None and enable.output["changed"] is True
    assert enable.output["adapters"][0]["macAddressSpoofing"] == "On"

    again = seed.run("hv01", "mac-spoofing", VMName="hvwin000004", Enable="true")
    assert again.output is not None and again.output["changed"] is False


def test_mac_spoofing_of_an_unknown_vm_fails_like_hyperv(seed: Endpoints) -> None:
    result = seed.run("hv01", "mac-spoofing", VMName="o'brien", Enable="true")

    assert result.exit_code == 1
    assert 'Hyper-V was unable to find a virtual machine with name "o\'brien"' in result.stderr
    assert result.output is not None and result.output["vm"] == "o'brien"


def test_mac_spoofing_on_a_node_says_where_to_run_it(seed: Endpoints) -> None:
    result = seed.run("hvwin000004", "mac-spoofing", VMName="hvwin000004", Enable="true")

    assert result.exit_code == 1
    assert "Hyper-V host" in result.stderr


def test_kube_proxy_restart_starts_it_and_restores_dns(
    sim_factory: Callable[..., RunningSim],
) -> None:
    hosts = endpoints_of(sim_factory("winrm_services.yaml"))

    restart = hosts.run("akswin000010", "kube-proxy-restart")

    assert restart.exit_code == 0, restart.stderr
    assert restart.output == {
        "script": "kube-proxy-restart",
        "host": "akswin000010",
        "service": "kubeproxy",
        "before": "Stopped",
        "after": "Running",
        "ok": True,
    }
    status = hosts.run("akswin000010", "node-status", DnsServiceIP="10.0.0.10").output
    assert status is not None and hns.dns_vip_of_status(status).state == "programmed"


def test_hns_reset_stops_at_a_stuck_service_and_exits_1(
    sim_factory: Callable[..., RunningSim],
) -> None:
    hosts = endpoints_of(sim_factory("winrm_services.yaml"))

    reset = hosts.run("akswin000011", "hns-reset")

    assert reset.exit_code == 1
    assert reset.output is not None and reset.output["ok"] is False
    assert [(s["step"], s["ok"]) for s in reset.output["steps"]] == [
        ("stop kubeproxy", True),
        ("stop kubelet", False),
        ("start kubelet", False),
        ("start kubeproxy", True),
    ]
    assert "stop kubelet: Service 'kubelet (kubelet)' cannot be stopped" in reset.stderr
    status = hosts.run("akswin000011", "node-status", DnsServiceIP="10.0.0.10").output
    assert status is not None
    assert [n["Name"] for n in status["hnsNetworks"]] == ["ext", "azure"]  # never removed
    assert status["services"]["kubelet"] == "StopPending"


def test_output_is_code_page_437_unless_the_script_sets_utf8(seed: Endpoints) -> None:
    utf8 = render("mac-spoofing", VMName="Prüfstand", Enable="false")
    oem = utf8.replace("[Console]::OutputEncoding = [System.Text.Encoding]::UTF8\n", "")
    assert oem != utf8
    session = seed.session("hv01")

    for script, encoding in ((utf8, "utf-8"), (oem, "cp437")):
        encoded = base64.b64encode(script.encode("utf-16-le")).decode()
        flags = ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]
        response = session.run_cmd("powershell.exe", flags)

        assert response.status_code == 1
        assert json.loads(response.std_out.decode(encoding))["vm"] == "Prüfstand"
        # module-load progress arrives as CLIXML on stderr, before the script's own error
        assert response.std_err.startswith(b"#< CLIXML\r\n")
        assert 'name "Prüfstand"'.encode(encoding) in response.std_err


def test_the_bot_transport_decodes_and_strips_what_powershell_left(seed: Endpoints) -> None:
    result = seed.run("hv01", "mac-spoofing", VMName="Prüfstand", Enable="false")

    assert result.output is not None and result.output["vm"] == "Prüfstand"
    assert result.stderr.startswith("Get-VMNetworkAdapter : Hyper-V was unable")  # no CLIXML
    healthy = seed.run("akswin000000", "node-status", DnsServiceIP="10.0.0.10")
    assert healthy.stderr == ""
