"""`pod-dns-override`: point one pod's DNS at the kube-dns pod IPs (the seed's workaround)."""

from __future__ import annotations

from collections.abc import Mapping

from handlers import probes
from handlers.context import Context
from handlers.errors import BadInput, WinpodError
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation


def _run(context: Context, plan: Plan) -> Outcome:
    pod_exec = context.transports.pod_exec
    if pod_exec is None:
        raise WinpodError(_("pod exec is not available in this configuration"))
    namespace, pod = plan.target.split("/", 1)
    argv = ["powershell", "-NoProfile", "-NonInteractive", "-Command", plan.preview]
    timeout = context.settings.sweep.probe_timeout.total_seconds()
    result = pod_exec.run(namespace, pod, None, argv, timeout)
    output = (result.stdout + result.stderr).strip()
    if not result.ok:
        return Outcome(
            False,
            _("the override failed in {pod} (exit {code})").format(
                pod=plan.target, code=result.exit_code
            ),
            output,
        )
    servers = ", ".join(plan.data["servers"])
    return Outcome(
        True,
        _("{pod} now resolves through {servers}").format(pod=plan.target, servers=servers),
        output,
    )


@remediation(
    "pod-dns-override",
    risk="low",
    target_kind=TargetKind.POD,
    does=lambda t: _(
        "exec in {target}: point its DNS servers at the kube-dns pod IPs and set the cluster suffix"
    ).format(target=t),
    impact=lambda t: _("only {target} changes; the override is lost when the pod restarts").format(
        target=t
    ),
    verified_by=("dns-after-reboot",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    assert context.pod is not None
    if (context.pod.get("status") or {}).get("phase") != "Running":
        raise BadInput(
            _("{pod} is not running: there is no container to change").format(pod=target)
        )
    if not probes.has_powershell(context):
        raise BadInput(
            _(
                "{pod} runs Nano Server, which has no PowerShell to set DNS with; use hns-reset "
                "or dns-keeper instead"
            ).format(pod=target)
        )
    servers = context.kube_dns_pod_ips()  # plain IP addresses only: they reach a command line
    if not servers:
        raise WinpodError(_("no running kube-dns pods with an IP address found in kube-system"))
    namespace = str(context.pod["metadata"]["namespace"])
    suffix = f"{namespace}.svc.cluster.local"
    quoted = ",".join(f"'{s}'" for s in servers)
    command = (
        "$adapter = Get-NetAdapter; "
        f"Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -ServerAddresses ({quoted}); "
        f"Set-DnsClient -InterfaceIndex $adapter.ifIndex -ConnectionSpecificSuffix '{suffix}'"
    )
    return Plan(
        "pod-dns-override",
        target,
        "pod-exec",
        f"exec in {target}: DNS servers {', '.join(servers)}, suffix {suffix}",
        command,
        {"servers": servers, "suffix": suffix},
    )
