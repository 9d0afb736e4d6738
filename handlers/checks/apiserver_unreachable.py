"""`apiserver-unreachable`: the pod cannot reach the API; a Hyper-V VM node without MAC spoofing."""

from __future__ import annotations

from handlers import probes
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding, RemediationRef
from handlers.registry import Explanation, check, could_not_check, not_applicable, offer

CHECK_ID = "apiserver-unreachable"
DOCS = (
    "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/",
    "https://learn.microsoft.com/en-us/virtualization/windowscontainers/container-networking/architecture",
)


@check(
    CHECK_ID,
    title=N_("Reaching the Kubernetes API"),
    scopes=("pod",),
    explanation=Explanation(
        cause=(
            N_(
                "When the Windows node is a Hyper-V virtual machine, the host drops frames sent "
                "from "
                "the containers' MAC addresses unless MAC address spoofing is enabled on the VM's "
                "adapters, so pods reach nothing off the pod: not the API, not DNS, not other "
                "nodes."
            )
        ),
        signals=(
            "Test-NetConnection <kubernetes Service IP> -Port 443 fails from the pod",
            'the node reports Model "Virtual Machine"',
            "Get-VMNetworkAdapter -VMName <vm> on the Hyper-V host shows MacAddressSpoofing Off",
        ),
        fixes=(
            N_(
                "on the Hyper-V host: Get-VMNetworkAdapter -VMName <vm> | Set-VMNetworkAdapter "
                "-MacAddressSpoofing On (remediation mac-spoofing-on; needs hypervisor rights)"
            ),
            N_("VMware: allow promiscuous mode / forged transmits on the port group"),
        ),
        links=DOCS,
    ),
)
def apiserver_unreachable(context: Context) -> list[Finding]:
    assert context.pod is not None
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    status = context.pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return not_applicable(CHECK_ID, N_("the pod is not running, so it cannot be probed"))
    try:
        api_ip = context.service_ip("default", "kubernetes")
        if probes.has_powershell(context):
            probe = probes.tcp_connect(context, api_ip, 443)
            reached = f"TCP to the kubernetes Service {api_ip}:443 succeeds"
        else:
            # Nano Server has no Test-NetConnection: a lookup sent straight to a kube-dns pod
            # still tells whether anything off the pod answers.
            dns_pods = context.kube_dns_pod_ips()
            if not dns_pods:
                return not_applicable(CHECK_ID, N_("Nano Server pod and no kube-dns pod to probe"))
            probe = probes.nslookup(context, server=dns_pods[0])
            reached = "the pod reaches a kube-dns pod (Nano Server cannot test the API port)"
    except WinpodError as exc:
        return could_not_check(CHECK_ID, N_("the path to the Kubernetes API"), exc)
    if probe.ok:
        return [
            Finding(
                CHECK_ID, "ok", _("Pod reaches the Kubernetes API"), reached, (probe.evidence(),)
            )
        ]
    evidence = [probe.evidence()]
    node = context.node_name or ""
    remediations: tuple[RemediationRef, ...] = ()
    try:
        model = str(context.node_status().get("model") or "")
        evidence.append(f"node {node} model: {model}")
        is_vm = model == "Virtual Machine"
    except WinpodError as exc:
        evidence.append(f"could not read the node's model: {exc}")
        is_vm = None
    spoofing = _spoofing_evidence(context, evidence) if is_vm else None
    if is_vm:
        remediations = (offer("mac-spoofing-on", node),)
    if spoofing is False or is_vm:
        summary = (
            f"Node {node} is a Hyper-V virtual machine"
            + (" with MAC address spoofing off" if spoofing is False else "")
            + ": the Hyper-V host drops frames from the containers' MAC addresses, so the pod "
            "reaches nothing off the pod. Enable MAC address spoofing on the VM's adapters."
        )
    else:
        summary = (
            f"The pod cannot open TCP to the kubernetes Service {api_ip}:443. The node does not "
            "look like a Hyper-V VM, so check the CNI, network policies and kube-proxy."
        )
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Pod cannot reach the Kubernetes API"),
            summary,
            tuple(evidence),
            remediations,
            DOCS,
        )
    ]


def _spoofing_evidence(context: Context, evidence: list[str]) -> bool | None:
    """Read MacAddressSpoofing on the node VM's Hyper-V host; None when it cannot be read."""
    node = context.node_name or ""
    try:
        host, address = context.hyperv_host_address()
        result = context.node_script("mac-spoofing", address, VMName=node, Enable="false")
    except WinpodError as exc:
        evidence.append(f"could not read MAC spoofing on the Hyper-V host: {exc}")
        return None
    adapters = result.get("adapters") or []
    states = ", ".join(f"{a.get('name')}: {a.get('macAddressSpoofing')}" for a in adapters)
    evidence.append(f"Hyper-V host {host}, VM {node}: MacAddressSpoofing {states}")
    return all(str(a.get("macAddressSpoofing")) == "On" for a in adapters) if adapters else None
