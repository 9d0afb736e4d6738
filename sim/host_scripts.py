"""What winpod's node scripts do to a simulated Windows host, and the output the real ones print.

A WinRS command line arrives from the WinRM endpoint; `run_command_line` decodes
`powershell -encodedcommand …`, recognises the script by its first line `# winpod-script: NAME`,
reads its parameters from the defaults of its `param()` block (the only way the bot passes
values) and applies the script's effect to the `WindowsHost`. Each script prints exactly one
compact JSON object, the same one `handlers/scripts/NAME.ps1` prints on a real node; a failure
also writes one line per problem to stderr and exits 1. Shapes (keys camelCase):

- node-status {script, host, build, revision, lastBootUpTime, model, services{kubelet,
  kubeproxy, containerd}, hnsNetworks[{name, type, id}], policyListCount, dnsVip, dnsVipPolicy,
  sandboxImage, errors[]}
- hns-reset {script, host, steps[{step, ok, error?}], ok}
- kube-proxy-restart {script, host, before, after, ok, error?}
- mac-spoofing {script, host, vm, adapters[{name, macAddressSpoofing}], changed, error?}
- node-memory {script, host, totalMB, availableMB}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from typing import NamedTuple

from sim.scenario import DEFAULT_WINDOWS_KERNEL, DNS_CLUSTER_IP
from sim.world import Obj, WindowsHost, World

NOT_SIMULATED = (
    "not simulated: only winpod's own scripts (handlers/scripts/*.ps1) run on simulated hosts"
)
# A Hyper-V host has no Node object to read its kernel from: it runs Server 2022.
HYPERV_HOST_KERNEL = "10.0.20348.2227"
# What `Get-CimInstance Win32_ComputerSystem` reports on hardware that is not a Hyper-V guest.
PHYSICAL_MODEL = "PowerEdge R650"
# Policy lists kube-proxy programs on a healthy node (the scenario loader seeds the same number).
PROGRAMMED_POLICY_LISTS = 2
NODE_SERVICES = ("kubelet", "kubeproxy", "containerd")
# Services in these states accept no control request: Stop-Service and Start-Service both fail.
_STUCK_STATES = {"StartPending", "StopPending"}

_SCRIPT_MARKER = re.compile(r"\A\ufeff?#\s*winpod-script:\s*([A-Za-z0-9_-]+)[ \t]*\r?$", re.M)
_PARAM_START = re.compile(r"^\s*param\s*\(", re.I | re.M)
_PARAM_DEFAULT = re.compile(r"\$(\w+)\s*=\s*'((?:[^']|'')*)'")
_KERNEL = re.compile(r"^10\.0[. ](\d+)(?:\.(\d+))?(?:[^(]*\((?:\d+)\.(\d+))?")
_ENCODED_FLAGS = {"-e", "-ec", "-enc", "-encodedcommand"}
# WinRS runs a command line through cmd.exe, which refuses longer ones.
COMMAND_LINE_LIMIT = 8191


class CommandOutput(NamedTuple):
    """What a WinRS command leaves behind: its two streams and its exit code."""

    stdout: str
    stderr: str
    exit_code: int


ScriptHandler = Callable[[World, WindowsHost, dict[str, str]], CommandOutput]


def _not_simulated(detail: str = "") -> CommandOutput:
    return CommandOutput("", NOT_SIMULATED + (f" ({detail})" if detail else "") + "\r\n", 1)


def _json_output(result: Obj, errors: list[str]) -> CommandOutput:
    """`ConvertTo-Json -Compress` on stdout, the failures on stderr, exit 1 if there were any."""
    stdout = json.dumps(result, separators=(",", ":")) + "\r\n"
    if errors:
        return CommandOutput(stdout, "\r\n".join(errors) + "\r\n", 1)
    return CommandOutput(stdout, "", 0)


# --- reading a script ------------------------------------------------------------------------


def script_name(script: str) -> str | None:
    """NAME from the first line `# winpod-script: NAME`, or None for any other script."""
    match = _SCRIPT_MARKER.match(script)
    return match.group(1) if match else None


def param_defaults(script: str) -> dict[str, str]:
    """`$Name = 'value'` defaults of the script's `param()` block; `''` is a quote, as in
    PowerShell. Keys are lower-case because PowerShell variable names ignore case."""
    start = _PARAM_START.search(script)
    if start is None:
        return {}
    depth, index, quoted = 1, start.end(), False
    while index < len(script) and depth:
        char = script[index]
        if char == "'":
            quoted = not quoted  # a doubled quote toggles twice: still inside the string
        elif not quoted and char == "#":
            # Skip the comment: an apostrophe in it opens no string.
            end = script.find("\n", index)
            index = len(script) if end < 0 else end
            continue
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        index += 1
    block = script[start.end() : index - 1]
    return {name.lower(): value.replace("''", "'") for name, value in _PARAM_DEFAULT.findall(block)}


# --- the command line --------------------------------------------------------------------------


def run_command_line(
    world: World, host: WindowsHost, command: str, arguments: str = ""
) -> CommandOutput:
    """Run a WinRS command line on `host`: winpod's encoded PowerShell scripts, `hostname`
    and `ipconfig`; anything else is not simulated."""
    line = f"{command} {arguments}".strip()
    if len(line) > COMMAND_LINE_LIMIT:
        return CommandOutput("", "The command line is too long.\r\n", 1)
    tokens = line.split()
    if not tokens:
        return _not_simulated()
    program = tokens[0].lower().removesuffix(".exe")
    if program == "powershell":
        return _run_powershell(world, host, tokens[1:])
    if program == "hostname" and len(tokens) == 1:
        return CommandOutput(host.name + "\r\n", "", 0)
    if program == "ipconfig" and [t.lower() for t in tokens[1:]] in ([], ["/all"]):
        return CommandOutput(_ipconfig(host), "", 0)
    return _not_simulated()


def _run_powershell(world: World, host: WindowsHost, flags: list[str]) -> CommandOutput:
    encoded = next(
        (flags[i + 1] for i, flag in enumerate(flags[:-1]) if flag.lower() in _ENCODED_FLAGS),
        None,
    )
    if encoded is None:
        return _not_simulated()
    try:
        script = base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError):
        return CommandOutput(
            "",
            "Cannot process the command because the value specified with -EncodedCommand is "
            "not properly encoded. The value must be Base64 encoded.\r\n",
            1,
        )
    name = script_name(script)
    if name is None:
        return _not_simulated()
    return run_script(world, host, name, param_defaults(script))


def run_script(world: World, host: WindowsHost, name: str, params: dict[str, str]) -> CommandOutput:
    """Apply winpod script `name` to `host` and return what the real script prints."""
    handler = SCRIPTS.get(name)
    if handler is None:
        return _not_simulated(f"no winpod script named {name!r}")
    return handler(world, host, {key.lower(): value for key, value in params.items()})


def _ipconfig(host: WindowsHost) -> str:
    lines = [
        "",
        "Windows IP Configuration",
        "",
        "",
        "Ethernet adapter vEthernet (Ethernet):",
        "",
        "   Connection-specific DNS Suffix  . : ",
        f"   IPv4 Address. . . . . . . . . . . : {host.address}",
        "   Subnet Mask . . . . . . . . . . . : 255.0.0.0",
        "   Default Gateway . . . . . . . . . : ",
        "",
    ]
    return "\r\n".join(lines)


# --- Windows services ------------------------------------------------------------------------


def _stop_service(host: WindowsHost, service: str) -> str | None:
    """Stop-Service: the error message it would throw, or None when the service stopped."""
    state = host.services.get(service)
    if state is None:
        return f"Cannot find any service with service name '{service}'."
    if state in _STUCK_STATES:
        return (
            f"Service '{service} ({service})' cannot be stopped due to the following error: "
            f"Cannot stop {service} service on computer '.'."
        )
    host.services[service] = "Stopped"
    return None


def _start_service(host: WindowsHost, service: str) -> str | None:
    """Start-Service: the error message it would throw, or None when the service runs."""
    state = host.services.get(service)
    if state is None:
        return f"Cannot find any service with service name '{service}'."
    if state in _STUCK_STATES or state == "Paused":
        return (
            f"Service '{service} ({service})' cannot be started due to the following error: "
            f"Cannot start service {service} on computer '.'."
        )
    host.services[service] = "Running"
    return None


def _program_policies(host: WindowsHost) -> None:
    """A starting kube-proxy re-creates every Service's load-balancer policy, DNS VIP included,
    as long as there is an HNS network to attach them to."""
    if host.hns_networks:
        host.policy_lists = PROGRAMMED_POLICY_LISTS
        host.dns = "ok"


def _is_l2bridge(network: Obj) -> bool:
    return str(network.get("Type", "")).lower() == "l2bridge"


# --- the scripts -----------------------------------------------------------------------------


def _kernel_of(world: World, host: WindowsHost) -> str:
    if host.role == "hyperv":
        return HYPERV_HOST_KERNEL
    node = world.find("nodes", None, host.name)
    info = ((node or {}).get("status") or {}).get("nodeInfo") or {}
    return str(info.get("kernelVersion") or DEFAULT_WINDOWS_KERNEL)


def _build_and_revision(kernel: str) -> tuple[int | None, int | None]:
    """`10.0.17763.2061` → (17763, 2061); docker-era `10.0 14393 (14393.1715.amd64fre…)` →
    (14393, 1715)."""
    match = _KERNEL.match(kernel)
    if match is None:
        return None, None
    build, revision, old_revision = match.groups()
    return int(build), int(revision or old_revision or 0)


def _cluster_dns_ips(world: World) -> set[str]:
    service = world.find("services", "kube-system", "kube-dns")
    if service is None:
        return {DNS_CLUSTER_IP}
    spec = service.get("spec") or {}
    return {str(ip) for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])] if ip}


def node_status(world: World, host: WindowsHost, params: dict[str, str]) -> CommandOutput:
    """Read-only: build, boot time, model, services, HNS networks and policy lists, whether a
    policy list carries the DNS VIP (param DnsServiceIP), the containerd sandbox image."""
    vip = params.get("dnsserviceip", DNS_CLUSTER_IP)
    build, revision = _build_and_revision(_kernel_of(world, host))
    is_node = host.role == "node"
    result: Obj = {
        "script": "node-status",
        "host": host.name,
        "build": build,
        "revision": revision,
        "lastBootUpTime": host.last_boot,
        "model": "Virtual Machine" if host.vm is not None else PHYSICAL_MODEL,
        "services": {name: host.services.get(name, "NotFound") for name in NODE_SERVICES},
        "hnsNetworks": [
            {"name": n.get("Name"), "type": n.get("Type"), "id": n.get("Id")}
            for n in host.hns_networks
        ],
        "policyListCount": host.policy_lists,
        "dnsVip": vip,
        # Stale policies after a reboot: no policy list holds the DNS Service VIP (acs-engine#2027).
        "dnsVipPolicy": is_node
        and host.dns != "stale-policies"
        and host.policy_lists > 0
        and vip in _cluster_dns_ips(world),
        "sandboxImage": (host.sandbox_image or None) if is_node else None,
        "errors": [],
    }
    return _json_output(result, [])


def hns_reset(world: World, host: WindowsHost, params: dict[str, str]) -> CommandOutput:
    """Stop kubeproxy and kubelet, remove all policy lists, then the L2Bridge network, start
    kubelet (which brings the network back) and kubeproxy (which re-creates the policies)."""
    removed: list[Obj] = []

    def remove_policy_lists() -> str | None:
        host.policy_lists = 0
        host.dns = "stale-policies"  # no policy list, no DNS VIP, until kube-proxy is back
        return None

    def remove_network() -> str | None:
        removed.extend(n for n in host.hns_networks if _is_l2bridge(n))
        host.hns_networks = [n for n in host.hns_networks if not _is_l2bridge(n)]
        return None

    def start_kubelet() -> str | None:
        error = _start_service(host, "kubelet")
        if error is None:
            host.hns_networks.extend(
                {**network, "Id": str(uuid.uuid4()).upper()} for network in removed
            )
            removed.clear()
        return error

    def start_kubeproxy() -> str | None:
        error = _start_service(host, "kubeproxy")
        if error is None:
            _program_policies(host)
        return error

    removals: list[tuple[str, Callable[[], str | None]]] = [
        ("stop kubeproxy", lambda: _stop_service(host, "kubeproxy")),
        ("stop kubelet", lambda: _stop_service(host, "kubelet")),
        ("remove policy lists", remove_policy_lists),
        ("remove network", remove_network),
    ]
    starts: list[tuple[str, Callable[[], str | None]]] = [
        ("start kubelet", start_kubelet),
        ("start kubeproxy", start_kubeproxy),
    ]
    steps: list[Obj] = []
    errors: list[str] = []

    def attempt(step: str, action: Callable[[], str | None]) -> bool:
        error = action()
        steps.append({"step": step, "ok": error is None, **({"error": error} if error else {})})
        if error:
            errors.append(f"{step}: {error}")
        return error is None

    for step, action in removals:
        if not attempt(step, action):
            break  # never remove HNS state with services half-stopped
    for step, action in starts:
        attempt(step, action)  # always: a failed reset must not leave the node without kubelet
    ok = not errors
    host.history.append("hns-reset" if ok else f"hns-reset failed: {errors[0]}")
    return _json_output(
        {"script": "hns-reset", "host": host.name, "steps": steps, "ok": ok}, errors
    )


def kube_proxy_restart(world: World, host: WindowsHost, params: dict[str, str]) -> CommandOutput:
    """Restart-Service kubeproxy; a started kube-proxy re-creates the Service policies."""
    before = host.services.get("kubeproxy", "NotFound")
    error = _stop_service(host, "kubeproxy") or _start_service(host, "kubeproxy")
    if error is None:
        _program_policies(host)
    after = host.services.get("kubeproxy", "NotFound")
    result: Obj = {
        "script": "kube-proxy-restart",
        "host": host.name,
        "before": before,
        "after": after,
        "ok": after == "Running",
    }
    if error:
        result["error"] = error
    host.history.append("kube-proxy-restart" if result["ok"] else "kube-proxy-restart failed")
    errors = [] if result["ok"] else [f"kube-proxy-restart: {error or ''}"]
    return _json_output(result, errors)


def mac_spoofing(world: World, host: WindowsHost, params: dict[str, str]) -> CommandOutput:
    """On a Hyper-V host: MacAddressSpoofing of VM VMName's adapter; Enable 'true' turns it On,
    'false' only reads. The VM is named after its node."""
    vm_name = params.get("vmname", "")
    enable = params.get("enable", "").lower()
    result: Obj = {
        "script": "mac-spoofing",
        "host": host.name,
        "vm": vm_name,
        "adapters": [],
        "changed": False,
    }
    error: str | None = None
    guest = next(
        (
            h
            for h in world.hosts.values()
            if h.vm is not None
            and h.vm.hyperv_host == host.name
            and h.name.lower() == vm_name.lower()
        ),
        None,
    )
    if enable not in ("true", "false"):
        error = f"Enable must be 'true' or 'false', not '{params.get('enable', '')}'"
    elif host.role != "hyperv":
        error = "no Hyper-V module here (Get-VMNetworkAdapter): run it on the VM's Hyper-V host"
    elif guest is None or guest.vm is None:
        error = (
            "Get-VMNetworkAdapter : Hyper-V was unable to find a virtual machine with name "
            f'"{vm_name}".'
        )
    else:
        if enable == "true" and not guest.vm.mac_address_spoofing:
            guest.vm.mac_address_spoofing = True
            result["changed"] = True
            host.history.append(f"mac-spoofing {guest.name} On")
        state = "On" if guest.vm.mac_address_spoofing else "Off"
        result["adapters"] = [{"name": "Network Adapter", "macAddressSpoofing": state}]
    if error:
        result["error"] = error
    return _json_output(result, [error] if error else [])


def node_memory(world: World, host: WindowsHost, params: dict[str, str]) -> CommandOutput:
    """Win32_OperatingSystem's TotalVisibleMemorySize and FreePhysicalMemory, in MB."""
    result = {
        "script": "node-memory",
        "host": host.name,
        "totalMB": host.memory_total_mb,
        "availableMB": host.memory_available_mb,
    }
    return _json_output(result, [])


SCRIPTS: dict[str, ScriptHandler] = {
    "node-status": node_status,
    "hns-reset": hns_reset,
    "kube-proxy-restart": kube_proxy_restart,
    "mac-spoofing": mac_spoofing,
    "node-memory": node_memory,
}
