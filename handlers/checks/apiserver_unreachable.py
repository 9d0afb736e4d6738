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
            N_("Test-NetConnection <kubernetes Service IP> -Port 443 fails from the pod"),
            N_('the node reports Model "Virtual Machine"'),
            N_(
                "Get-VMNetworkAdapter -VMName <vm> on the Hyper-V host shows MacAddressSpoofing Off"
            ),
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
            reached = _("TCP to the kubernetes Service {ip}:443 succeeds").format(ip=api_ip)
        else:
            # Nano Server has no Test-NetConnection: a lookup sent straight to a kube-dns pod
            # still tells whether anything off the pod answers.
            dns_pods = context.kube_dns_pod_ips()
            if not dns_pods:
                return not_applicable(CHECK_ID, N_("Nano Server pod and no kube-dns pod to probe"))
            probe = probes.nslookup(context, server=dns_pods[0])
            reached = _("the pod reaches a kube-dns pod (Nano Server cannot test the API port)")
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
        evidence.append(_("node {node} model: {model}").format(node=node, model=model))
        is_vm = model == "Virtual Machine"
    except WinpodError as exc:
        evidence.append(_("could not read the node's model: {error}").format(error=exc))
        is_vm = None
    spoofing = _spoofing_evidence(context, evidence) if is_vm else None
    if is_vm:
        remediations = (offer("mac-spoofing-on", node),)
    if spoofing is False or is_vm:
        summary = (
            _(
                "Node {node} is a Hyper-V virtual machine with MAC address spoofing off: the "
                "Hyper-V host drops frames from the containers' MAC addresses, so the pod "
                "reaches nothing off the pod. Enable MAC address spoofing on the VM's adapters."
            )
            if spoofing is False
            else _(
                "Node {node} is a Hyper-V virtual machine: the Hyper-V host drops frames from the "
                "containers' MAC addresses, so the pod reaches nothing off the pod. Enable MAC "
                "address spoofing on the VM's adapters."
            )
        ).format(node=node)
    else:
        summary = _(
            "The pod cannot open TCP to the kubernetes Service {ip}:443. The node does not "
            "look like a Hyper-V VM, so check the CNI, network policies and kube-proxy."
        ).format(ip=api_ip)
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
        evidence.append(
            _("could not read MAC spoofing on the Hyper-V host: {error}").format(error=exc)
        )
        return None
    adapters = result.get("adapters") or []
    states = ", ".join(f"{a.get('name')}: {a.get('macAddressSpoofing')}" for a in adapters)
    evidence.append(
        _("Hyper-V host {host}, VM {vm}: MacAddressSpoofing {states}").format(
            host=host, vm=node, states=states
        )
    )
    return all(str(a.get("macAddressSpoofing")) == "On" for a in adapters) if adapters else None
