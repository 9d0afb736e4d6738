"""What winpod's node scripts do to a simulated Windows host, and the output the real ones print.

A WinRS command line arrives from the WinRM endpoint; `run_command_line` decodes
`powershell -encodedcommand …`, recognises the script by its first line `# winpod-script: NAME`,
reads its parameters from the defaults of its `param()` block (the only way the bot passes
values) and applies the script's effect to the `WindowsHost`. Each script prints exactly one
compact JSON object, the same one `handlers/scripts/NAME.ps1` prints on a real node; a failure
also writes one line per problem to stderr and exits 1. Shapes (keys camelCase):

- node-status {script, host, build, revision, lastBootUpTime, model, services{installed ones},
  hnsModule, hnsNetworks[{ID, Name, Type, ManagementIP}], policyListCount, dnsVip,
  dnsPolicyLists[{ID, Policies[{Type, VIPs}], References}], dnsLoadBalancers[{ID, FrontendVIPs,
  State, HostComputeEndpoints}], dnsEndpoints[{ID, IPAddress, IsRemoteEndpoint}], sandboxImage,
  errors[]} (HNS keys as the HNS cmdlets spell them)
- hns-reset {script, host, podNetwork, kubeProxy, steps[{step, ok, error?}], ok, refused?}
- kube-proxy-restart {script, host, service, before, after, ok, error?}
- mac-spoofing {script, host, vm, adapters[{name, macAddressSpoofing}], changed, error?}
- node-memory {script, host, totalMB, availableMB}
- containerd-restart {script, host, before{service: state}, after{…}, killed, ok, refused?, error?}
- csi-proxy-start {script, host, before, after, startType, ok, refused?, error?}
- hns-endpoints {script, host, remoteEndpoints[{ID, IPAddress, VirtualNetworkName}],
  loadBalancers[{ID, State, FrontendVIPs}], errors[]}
- hns-endpoint-cleanup {script, host, before[{ID, IPAddress}], removed[…], skipped[{ID,
  IPAddress, why}], after[…], ok}
- dynamic-ports {script, host, tcp{start, count}, excluded[{start, end}], errors[]}
- widen-dynamic-ports {script, host, before{start, count}, after{…}, excluded[…], ok, error?}
- detached-upload {script, id, size}; detached-start {script, id, task, started, error?};
  detached-result {script, id, state, exitCode, stdout, stderr}

Scripts are judged by what they would do on a real host: hns-reset removes the networks its
text selects (`$PodNetworks` / `$ManagementNetworks`, or a `Type -eq '…'` filter, or all of
them), and removing a management network takes the host off the network (SPEC §16). Output is
code page 437 unless the script sets `[Console]::OutputEncoding` to UTF-8; PowerShell writes its
module-load progress to stderr as CLIXML.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import NamedTuple

from sim import hns, runtime
from sim.scenario import DEFAULT_WINDOWS_KERNEL, DNS_CLUSTER_IP
from sim.world import HnsNetwork, Obj, WindowsHost, World

NOT_SIMULATED = (
    "not simulated: only winpod's own scripts (handlers/scripts/*.ps1) run on simulated hosts"
)
# A Hyper-V host has no Node object to read its kernel from: it runs Server 2022.
HYPERV_HOST_KERNEL = "10.0.20348.2227"
# What `Get-CimInstance Win32_ComputerSystem` reports on hardware that is not a Hyper-V guest.
PHYSICAL_MODEL = "PowerEdge R650"
NODE_SERVICES = ("kubelet", "kubeproxy", "kube-proxy", "containerd", "csi-proxy")
# Services in these states accept no control request: Stop-Service and Start-Service both fail.
_STUCK_STATES = {"StartPending", "StopPending"}
NODE_PORT_END = 32767  # Kubernetes NodePorts are 30000-32767

_SCRIPT_MARKER = re.compile(r"\A\ufeff?#\s*winpod-script:\s*([A-Za-z0-9_-]+)[ \t]*\r?$", re.M)
_PARAM_START = re.compile(r"^\s*param\s*\(", re.I | re.M)
_PARAM_DEFAULT = re.compile(r"\$(\w+)\s*=\s*'((?:[^']|'')*)'")
_KERNEL = re.compile(r"^10\.0[. ](\d+)(?:\.(\d+))?(?:[^(]*\((?:\d+)\.(\d+))?")
_ENCODED_FLAGS = {"-e", "-ec", "-enc", "-encodedcommand"}
# WinRS runs a command line through cmd.exe, which refuses longer ones.
COMMAND_LINE_LIMIT = 8191
# The console code page of an en-US Windows Server unless a script switches to 65001.
OEM_CODE_PAGE = "cp437"
_SETS_UTF8 = re.compile(
    r"\[Console\]::OutputEncoding\s*=\s*\[(?:System\.)?Text\.Encoding\]::UTF8|chcp(?:\.com)?\s+65001",
    re.I,
)
# What powershell.exe writes to stderr when it loads modules with no console attached.
CLIXML_PROGRESS = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record">'
    "<AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC>"
    "<T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>"
)


class CommandOutput(NamedTuple):
    """What a WinRS command leaves behind: its two streams, its exit code, and the code page
    the console wrote them in."""

    stdout: str
    stderr: str
    exit_code: int
    encoding: str = OEM_CODE_PAGE


ScriptHandler = Callable[[World, WindowsHost, dict[str, str], str], CommandOutput]


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
    world: World,
    host: WindowsHost,
    command: str,
    arguments: str = "",
    limit: int = COMMAND_LINE_LIMIT,
) -> CommandOutput:
    """Run a WinRS command line on `host`: winpod's encoded PowerShell scripts, `hostname`
    and `ipconfig`; anything else is not simulated. `limit`: cmd.exe's for WinRS, a
    container's command goes to CreateProcess (32,767)."""
    line = f"{command} {arguments}".strip()
    if len(line) > limit:
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
    if script_name(script) is None:
        return _not_simulated()
    output = run_script_text(world, host, script)
    encoding = "utf-8" if _SETS_UTF8.search(script) else OEM_CODE_PAGE
    return output._replace(stderr=CLIXML_PROGRESS + output.stderr, encoding=encoding)


def run_script_text(world: World, host: WindowsHost, script: str) -> CommandOutput:
    """Run a winpod script given as its text (its name from its first line)."""
    name = script_name(script)
    if name is None:
        return _not_simulated()
    return run_script(world, host, name, param_defaults(script), script)


def run_script(
    world: World, host: WindowsHost, name: str, params: dict[str, str], text: str = ""
) -> CommandOutput:
    """Apply winpod script `name` to `host` and return what the real script prints."""
    handler = SCRIPTS.get(name)
    if handler is None:
        return _not_simulated(f"no winpod script named {name!r}")
    return handler(world, host, {key.lower(): value for key, value in params.items()}, text)


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
    if service == "kubelet" and state != "Running":
        host.kubelet_restarts += 1
    host.services[service] = "Running"
    return None


def program_policies(world: World, host: WindowsHost) -> None:
    """A starting kube-proxy re-creates every Service's load balancer, DNS VIP included, on the
    current endpoints, as long as the pod network exists."""
    if host.pod_network is not None:
        host.policy_lists = hns.PROGRAMMED
        host.dns = "ok"
        host.unapplied_load_balancers = 0


def _recreate_pod_network(world: World, host: WindowsHost, removed: list[HnsNetwork]) -> None:
    """kubelet's next pod set-up makes the CNI create its network again (new id, new endpoints);
    a management network is never re-created (the node needs re-provisioning)."""
    if not removed or not _pods_on(world, host):
        return
    for network in removed:
        if not network.management:
            host.networks.append(HnsNetwork(network.name, network.type))
    host.hns_generation += 1


def _pods_on(world: World, host: WindowsHost) -> bool:
    return any((p.get("spec") or {}).get("nodeName") == host.name for p in world.iter("pods"))


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


def node_status(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Read-only: build, boot time, model, installed services, HNS networks, the policy lists or
    load balancers holding the DNS VIP (param DnsServiceIP) and the endpoints of theirs that
    exist, the containerd sandbox image."""
    vip = params.get("dnsserviceip", DNS_CLUSTER_IP)
    build, revision = _build_and_revision(_kernel_of(world, host))
    is_node = host.role == "node"
    services = {n: host.services[n] for n in NODE_SERVICES if n in host.services}
    result: Obj = {
        "script": "node-status",
        "host": host.name,
        "build": build,
        "revision": revision,
        # ToString('o') of a UTC DateTime: seven digits of fractions and Z in every culture.
        "lastBootUpTime": host.last_boot.removesuffix("Z") + ".0000000Z",
        "model": "Virtual Machine" if host.vm is not None else PHYSICAL_MODEL,
        "services": services,
        "hnsModule": None,
        "hnsNetworks": [],
        "policyListCount": None,
        "dnsVip": vip,
        "dnsPolicyLists": [],
        "dnsLoadBalancers": [],
        "dnsEndpoints": [],
        "sandboxImage": (host.sandbox_image or None) if is_node else None,
        "errors": [],
    }
    if is_node and host.hns_api == "v2" and _imports_only_hns_psm1(text):
        # No in-box Get-HnsPolicyList on a v2 host, and AKS ships hns.v2.psm1, not hns.psm1.
        error = (
            "hns: The specified module 'C:\\k\\hns.psm1' was not loaded because no valid module "
            "file was found in any module directory."
        )
        return _json_output({**result, "errors": [error]}, [error])
    if is_node:
        # Kube-proxy programs the Service VIPs; a -DnsServiceIP that is not one holds nothing.
        served = vip in _cluster_dns_ips(world)
        lists = hns.policy_lists(world, host, vip)
        balancers = hns.load_balancers(world, host, vip)
        dns_lists = [
            {k: p[k] for k in ("ID", "Policies", "References")}
            for p in lists
            if served and any(vip in x["VIPs"] for x in p["Policies"])
        ]
        dns_balancers = [
            {
                "ID": b["ID"],
                "FrontendVIPs": b["FrontendVIPs"],
                "State": b["State"],
                "HostComputeEndpoints": b["HostComputeEndpoints"],
            }
            for b in balancers
            if served and vip in b["FrontendVIPs"]
        ]
        referenced = {r.rsplit("/", 1)[-1] for p in dns_lists for r in p["References"]}
        referenced |= {e for b in dns_balancers for e in b["HostComputeEndpoints"]}
        result.update(
            hnsModule="HostNetworkingService",
            hnsNetworks=[
                {k: n[k] for k in ("ID", "Name", "Type", "ManagementIP")}
                for n in hns.networks(host)
            ],
            policyListCount=len(lists) + len(balancers),
            dnsPolicyLists=dns_lists,
            dnsLoadBalancers=dns_balancers,
            dnsEndpoints=[
                {k: e[k] for k in ("ID", "IPAddress", "IsRemoteEndpoint")}
                for e in hns.endpoints(world, host)
                if e["ID"] in referenced
            ],
        )
    return _json_output(result, [])


def _imports_only_hns_psm1(text: str) -> bool:
    """A script that loads hns.psm1 when Get-HnsPolicyList is missing, and knows no hns.v2.psm1
    (the first node-status.ps1)."""
    return bool(_GATES_ON_POLICY_LIST.search(text)) and "hns.v2.psm1" not in text.lower()


_GATES_ON_POLICY_LIST = re.compile(r"Get-Command\s+Get-HnsPolicyList", re.I)

# hns-reset's network selection, read from the script the way PowerShell would run it.
_NAME_LIST = r"^\s*\${0}\s*=\s*@\(([^)]*)\)"
_TYPE_FILTER = re.compile(r"Type\)?\W{0,3}\s*-eq\s*'(\w+)'[^\n]*\|\s*Remove-HnsNetwork", re.I)
_QUOTED = re.compile(r"'([^']*)'")


def _script_list(text: str, variable: str) -> set[str] | None:
    match = re.search(_NAME_LIST.format(variable), text, re.M | re.I)
    if match is None:
        return None
    return {name.lower() for name in _QUOTED.findall(match.group(1))}


def networks_removed_by(text: str, host: WindowsHost) -> tuple[list[HnsNetwork], str | None]:
    """The networks an hns-reset script removes on `host`, or why it refuses.

    winpod's script names the pod networks and the management networks and refuses when
    it cannot tell them apart; an older script filtered Get-HnsNetwork by Type (removing
    every L2Bridge network, `ext` included) or removed them all."""
    pods = _script_list(text, "PodNetworks")
    keepers = _script_list(text, "ManagementNetworks")
    if pods is not None and keepers is not None:
        candidates = [
            n for n in host.networks if n.name.lower() in pods and n.name.lower() not in keepers
        ]
        seen = ", ".join(f"{n.name} ({n.type})" for n in host.networks)
        if len(candidates) != 1:
            return [], f"cannot tell the pod network from the management network among: {seen}"
        pod = candidates[0]
        if pod.type != "Overlay" and not any(n.name.lower() in keepers for n in host.networks):
            return [], (
                f"pod network {pod.name} is the only network on the vSwitch: it carries the "
                "management address"
            )
        return [pod], None
    by_type = _TYPE_FILTER.search(text)
    if by_type is not None:
        wanted = by_type.group(1).lower()
        return [n for n in host.networks if n.type.lower() == wanted], None
    return list(host.networks), None


def _network_before_lists(text: str) -> bool:
    """Whether the script removes the network without removing the policy lists first."""
    lists, network = text.find("Remove-HnsPolicyList"), text.find("Remove-HnsNetwork")
    return network >= 0 and not 0 <= lists < network


def _lists_pin_the_network(world: World, host: WindowsHost) -> bool:
    """Since Server 2019's October 2020 update (17763.1554) HNS refuses to remove a network
    that policy lists still reference (aks-engine#3956)."""
    build, revision = _build_and_revision(_kernel_of(world, host))
    return host.policy_lists > 0 and build == 17763 and (revision or 0) >= 1554


def _remove_networks(host: WindowsHost, doomed: list[HnsNetwork]) -> None:
    host.networks = [n for n in host.networks if n not in doomed]
    for network in doomed:
        if network.management:
            # The management vNIC goes with its vSwitch: the address answers nothing for a
            # while, and nothing brings that network back (SPEC §16).
            host.lose_address(host.management_outage_s)
            host.history.append(f"management network {network.name} removed: node off the network")
        elif host.network_blip_s:
            host.lose_address(host.network_blip_s)
            host.history.append(f"pod network {network.name} removed: address blipped")


def hns_reset(world: World, host: WindowsHost, params: dict[str, str], text: str) -> CommandOutput:
    """Stop kube-proxy (service) and kubelet, remove the pod network's endpoints, the policy
    lists, then the networks the script selects; start kubelet (the pod network comes back
    once a pod is set up) and kube-proxy (which re-creates the policies)."""
    doomed, refused = networks_removed_by(text, host)
    kube_proxy = host.kube_proxy_service()
    result: Obj = {
        "script": "hns-reset",
        "host": host.name,
        "podNetwork": doomed[0].name if len(doomed) == 1 and refused is None else None,
        "kubeProxy": f"service {kube_proxy}" if kube_proxy else "not a service (HostProcess pod)",
        "steps": [],
        "ok": False,
    }
    if refused is not None:
        result["refused"] = refused
        host.history.append(f"hns-reset refused: {refused}")
        return _json_output(result, [f"refused: {refused}"])
    steps: list[Obj] = result["steps"]
    errors: list[str] = []
    removed: list[HnsNetwork] = []

    def attempt(step: str, action: Callable[[], str | None]) -> bool:
        error = action()
        steps.append({"step": step, "ok": error is None, **({"error": error} if error else {})})
        if error:
            errors.append(f"{step}: {error}")
        return error is None

    def remove_policy_lists() -> str | None:
        if not _network_before_lists(text):
            host.policy_lists = 0
        return None

    def remove_networks() -> str | None:
        if _network_before_lists(text) and _lists_pin_the_network(world, host):
            return "The network was not found."  # aks-engine#3956
        _remove_networks(host, doomed)
        removed.extend(doomed)
        return None

    def start_kubelet() -> str | None:
        error = _start_service(host, "kubelet")
        if error is None:
            _recreate_pod_network(world, host, removed)
        return error

    def start_kube_proxy(service: str) -> str | None:
        error = _start_service(host, service)
        if error is None:
            program_policies(world, host)
        return error

    removals: list[tuple[str, Callable[[], str | None]]] = []
    if kube_proxy:
        removals.append((f"stop {kube_proxy}", lambda: _stop_service(host, kube_proxy)))
    removals += [
        ("stop kubelet", lambda: _stop_service(host, "kubelet")),
        ("stop containers", lambda: None),  # containerd hosts have ctr.exe
        ("remove endpoints", host.stale_endpoint_ips.clear),
        ("remove policy lists", remove_policy_lists),
        ("remove pod network", remove_networks),
        ("wait for HNS to settle", lambda: None),
    ]
    for step, action in removals:
        if not attempt(step, action):
            break  # never remove HNS state with services half-stopped
    attempt("start kubelet", start_kubelet)  # always: never leave the node without kubelet
    if kube_proxy:
        attempt(f"start {kube_proxy}", lambda: start_kube_proxy(kube_proxy))
    result["ok"] = not errors
    host.history.append("hns-reset" if not errors else f"hns-reset failed: {errors[0]}")
    return _json_output(result, errors)


def kube_proxy_restart(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Restart-Service of kube-proxy's service (either name); a started kube-proxy re-creates
    the Service policies. No service (a HostProcess pod): it says so and exits 1."""
    service = host.kube_proxy_service()
    result: Obj = {
        "script": "kube-proxy-restart",
        "host": host.name,
        "service": service,
        "before": "NotFound",
        "after": "NotFound",
        "ok": False,
    }
    if service is None:
        error: str | None = (
            "no kubeproxy or kube-proxy service: kube-proxy runs as a HostProcess pod here"
        )
    else:
        result["before"] = host.services[service]
        error = _stop_service(host, service) or _start_service(host, service)
        if error is None:
            program_policies(world, host)
        result["after"] = host.services[service]
    result["ok"] = result["after"] == "Running"
    if error:
        result["error"] = error
    host.history.append("kube-proxy-restart" if result["ok"] else "kube-proxy-restart failed")
    errors = [] if result["ok"] else [f"kube-proxy-restart: {error or ''}"]
    return _json_output(result, errors)


# --- detached runs (a scheduled task whose result outlives the WinRM connection) ---------------


def detached_upload(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    task_id = params.get("id", "")
    host.uploads[task_id] = host.uploads.get(task_id, "") + params.get("chunk", "")
    result = {"script": "detached-upload", "id": task_id, "size": len(host.uploads[task_id])}
    return _json_output(result, [])


def detached_start(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Register and start the uploaded script as a task; it runs just after this command has
    answered, as Task Scheduler would run it."""
    task_id = params.get("id", "")
    result: Obj = {"script": "detached-start", "id": task_id, "task": f"winpod-{task_id}"}
    try:
        script = base64.b64decode(host.uploads.pop(task_id), validate=True).decode("utf-8-sig")
    except (KeyError, binascii.Error, UnicodeDecodeError):
        error = f"Exception calling \"ReadAllText\": Could not find file '{task_id}.b64'."
        return _json_output({**result, "started": False, "error": error}, [error])
    host.tasks[task_id] = None

    def run() -> None:
        output = run_script_text(world, host, script)
        host.tasks[task_id] = {
            "exitCode": output.exit_code,
            "stdout": output.stdout,
            "stderr": output.stderr,
        }

    host.deferred.append(run)
    return _json_output({**result, "started": True}, [])


def detached_result(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    task_id = params.get("id", "")
    result: Obj = {
        "script": "detached-result",
        "id": task_id,
        "state": "unknown",
        "exitCode": None,
        "stdout": None,
        "stderr": None,
    }
    if task_id in host.tasks:
        done = host.tasks[task_id]
        if done is None:
            result["state"] = "Running"
        else:
            result.update(state="done", **done)
    return _json_output(result, [])


def mac_spoofing(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
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


def node_memory(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Win32_OperatingSystem's TotalVisibleMemorySize and FreePhysicalMemory, in MB."""
    result = {
        "script": "node-memory",
        "host": host.name,
        "totalMB": host.memory_total_mb,
        "availableMB": host.memory_available_mb,
    }
    return _json_output(result, [])


def containerd_restart(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Stop containerd (its process ended when it will not stop and the script says
    Stop-Process), start it, restart kubelet: the runtime answers again and the pods stuck
    terminating go away. No containerd service: refused, nothing changed."""
    result: Obj = {
        "script": "containerd-restart",
        "host": host.name,
        "before": {},
        "after": {},
        "killed": False,
        "ok": False,
    }
    if "containerd" not in host.services:
        result["refused"] = "no containerd service on this node: nothing was changed"
        host.history.append("containerd-restart refused")
        return _json_output(result, [f"containerd-restart: {result['refused']}"])
    watched = ["containerd", "kubelet"]
    result["before"] = {s: host.services.get(s, "NotFound") for s in watched}
    error: str | None = None
    if host.services["containerd"] in _STUCK_STATES and "Stop-Process" in text:
        host.services["containerd"] = "Stopped"  # its process was ended
        result["killed"] = True
    error = _stop_service(host, "containerd") or _start_service(host, "containerd")
    if error is None and "kubelet" in host.services:
        error = _stop_service(host, "kubelet") or _start_service(host, "kubelet")
    if error is None:
        gone = runtime.restart_containerd(world, host)
        host.history.append(
            "containerd-restart" + (f": {', '.join(gone)} finished terminating" if gone else "")
        )
    else:
        result["error"] = error
        host.history.append(f"containerd-restart failed: {error}")
    result["after"] = {s: host.services.get(s, "NotFound") for s in watched}
    after = result["after"]
    result["ok"] = after["containerd"] == "Running" and after["kubelet"] in ("Running", "NotFound")
    return _json_output(result, [] if result["ok"] else [f"containerd-restart: {error or ''}"])


def csi_proxy_start(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Start-Service csi-proxy: the node's CSI plugin pods that need it start cleanly. Not
    installed: refused, nothing changed."""
    state = host.services.get("csi-proxy")
    result: Obj = {
        "script": "csi-proxy-start",
        "host": host.name,
        "before": state or "NotFound",
        "after": state or "NotFound",
        "startType": None if state is None else "Automatic",
        "ok": False,
    }
    if state is None:
        result["refused"] = (
            "csi-proxy is not installed as a service on this node: nothing was changed"
        )
        host.history.append("csi-proxy-start refused")
        return _json_output(result, [f"csi-proxy-start: {result['refused']}"])
    error = None if state == "Running" else _start_service(host, "csi-proxy")
    result["after"] = host.services["csi-proxy"]
    result["ok"] = result["after"] == "Running"
    if error:
        result["error"] = error
        host.history.append(f"csi-proxy-start failed: {error}")
    else:
        plugins = runtime.csi_proxy_started(world, host)
        host.history.append(
            "csi-proxy-start" + (f": {', '.join(plugins)} started" if plugins else "")
        )
    return _json_output(result, [] if result["ok"] else [f"csi-proxy-start: {error}"])


def _remote_endpoint_rows(world: World, host: WindowsHost) -> list[Obj]:
    return [{k: e[k] for k in ("ID", "IPAddress")} for e in hns.remote_endpoints(world, host)]


def hns_endpoints(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Read-only: the remote HNS endpoints (`Get-HnsEndpoint`, IsRemoteEndpoint) and every HNS
    load balancer's State (`Get-HnsLoadBalancer`)."""
    result = {
        "script": "hns-endpoints",
        "host": host.name,
        "remoteEndpoints": [
            {k: e[k] for k in ("ID", "IPAddress", "VirtualNetworkName")}
            for e in hns.remote_endpoints(world, host)
        ],
        "loadBalancers": [
            {"ID": b["ID"], "State": b["State"], "FrontendVIPs": b["VIPs"]}
            for b in hns.load_balancer_states(world, host)
        ],
        "errors": [],
    }
    return _json_output(result, [])


def hns_endpoint_cleanup(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Remove the remote endpoints named in Endpoints (`ID=IP,…`), each only while it still
    exists as a remote endpoint with that IP; snapshots before and after."""
    before = _remote_endpoint_rows(world, host)
    by_id = {row["ID"].lower(): row for row in before}
    removed: list[Obj] = []
    skipped: list[Obj] = []
    for pair in filter(None, params.get("endpoints", "").split(",")):
        endpoint_id, _, ip = pair.partition("=")
        row = by_id.get(endpoint_id.lower())
        if row is None:
            skipped.append({"ID": endpoint_id, "IPAddress": ip, "why": "not found"})
        elif row["IPAddress"] != ip:
            skipped.append({"ID": endpoint_id, "IPAddress": ip, "why": "its IP changed"})
        else:
            if ip in host.stale_endpoint_ips:
                host.stale_endpoint_ips.remove(ip)
            removed.append(row)
            host.history.append(f"hns endpoint {endpoint_id} ({ip}) removed")
    result = {
        "script": "hns-endpoint-cleanup",
        "host": host.name,
        "before": before,
        "removed": removed,
        "skipped": skipped,
        "after": _remote_endpoint_rows(world, host),
        "ok": True,
    }
    return _json_output(result, [])


def _port_range(host: WindowsHost) -> Obj:
    return {"start": host.dynamic_start, "count": host.dynamic_count}


def _excluded(host: WindowsHost) -> list[Obj]:
    return [{"start": a, "end": b} for a, b in host.excluded_tcp_ranges()]


def dynamic_ports(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """Read-only: `netsh int ipv4 show dynamicport tcp` and `show excludedportrange tcp`."""
    result = {
        "script": "dynamic-ports",
        "host": host.name,
        "tcp": _port_range(host),
        "excluded": _excluded(host),
        "errors": [],
    }
    return _json_output(result, [])


def widen_dynamic_ports(
    world: World, host: WindowsHost, params: dict[str, str], text: str
) -> CommandOutput:
    """`netsh int ipv4 set dynamicport tcp start=Start num=Count`; the script refuses a range
    that starts among the NodePorts or runs past 65535, netsh one of fewer than 255 ports."""
    before = _port_range(host)
    result: Obj = {"script": "widen-dynamic-ports", "host": host.name, "before": before}
    try:
        start, count = int(params.get("start", "")), int(params.get("count", ""))
    except ValueError:
        start, count = 0, 0
    error = None
    if start <= NODE_PORT_END or start + count > 65536:
        # the script's own guard, before netsh is called
        error = f"refusing range {start} +{count}: it must start above 32767 and end by 65535"
    elif count < 255:
        error = "The parameter is incorrect."
    if error:
        result.update(after=before, excluded=_excluded(host), ok=False, error=error)
        return _json_output(result, [error])
    host.dynamic_start, host.dynamic_count = start, count
    host.history.append(f"dynamic ports tcp {start} +{count}")
    result.update(after=_port_range(host), excluded=_excluded(host), ok=True)
    return _json_output(result, [])


SCRIPTS: dict[str, ScriptHandler] = {
    "hns-endpoints": hns_endpoints,
    "hns-endpoint-cleanup": hns_endpoint_cleanup,
    "dynamic-ports": dynamic_ports,
    "widen-dynamic-ports": widen_dynamic_ports,
    "node-status": node_status,
    "hns-reset": hns_reset,
    "kube-proxy-restart": kube_proxy_restart,
    "mac-spoofing": mac_spoofing,
    "node-memory": node_memory,
    "containerd-restart": containerd_restart,
    "csi-proxy-start": csi_proxy_start,
    "detached-upload": detached_upload,
    "detached-start": detached_start,
    "detached-result": detached_result,
}
