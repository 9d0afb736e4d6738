"""Shared planning and running for remediations that are one of winpod's node scripts."""

from __future__ import annotations

import time
from typing import Any

from handlers import detached, hns, node_scripts, script_commands
from handlers.context import Context, script_timeout_s
from handlers.errors import ChannelLost, OutcomeUnknown
from handlers.i18n import _
from handlers.remediations import Outcome, Plan, pretty
from handlers.transports import KubeObject, NodeTarget

# Scripts that change the node's network or its services (containerd: the runtime itself) run
# detached (handlers/detached.py) over WinRM: their result is read back even when the change
# cuts the WinRM connection. A HostProcess pod is detached by itself.
DETACHED_SCRIPTS = frozenset({"hns-reset", "kube-proxy-restart", "containerd-restart"})
# How long a restarted kube-proxy pod may take to be replaced and Ready.
POD_READY_TIMEOUT_S = 120.0


def plan_script(
    context: Context,
    remediation_id: str,
    target: str,
    script: str,
    what: str,
    address: str | None = None,
    runs_on: str = "",
    **params: str,
) -> Plan:
    """`address` and `runs_on` (its name) when the script runs elsewhere than on `target`
    (a Hyper-V host: WinRM only)."""
    text = node_scripts.render(script, **params)
    # Refused here, before anyone is asked to approve, when nothing can carry the script
    # (a Hyper-V host without WinRM credentials).
    shell, node = context.script_receiver(address)
    # the approvers see where the script (and, over WinRM, the credentials) will go
    how = _(" as a scheduled task") if script in DETACHED_SCRIPTS and not shell.detached else ""
    receiver = (
        _("{what}; sent {where}{how}").format(what=what, where=shell.describe(node), how=how)
        if what
        else what
    )
    data: dict[str, Any] = {
        "script": script,
        "address": node.address,
        "node": node.name,
        "hyperv": address is not None,
        "transport": "hostprocess" if shell.detached else "winrm",
        "params": params,
    }
    return Plan(
        remediation_id,
        target,
        "node-script",
        receiver,
        text,
        data,
        script_commands.state_changing_commands(text),
        runs_on,
    )


def run_script(context: Context, plan: Plan) -> tuple[Outcome, dict[str, Any]]:
    name, address = str(plan.data["script"]), str(plan.data["address"])
    hyperv = bool(plan.data.get("hyperv") or plan.runs_on)
    shell = context.script_receiver(address if hyperv else None)[0]  # as configured now
    node = NodeTarget(str(plan.data.get("node") or address), address)
    where = node.name if shell.detached else address
    if name in DETACHED_SCRIPTS and not shell.detached:
        result = detached.run_detached(shell, node, name, plan.preview)
    else:
        try:
            result = shell.run_script(node, plan.preview, script_timeout_s(context.settings, shell))
        except ChannelLost as exc:
            raise OutcomeUnknown(_("outcome unknown: {error}").format(error=exc)) from None
    data = node_scripts.parse_output(name, result)
    output = node_scripts.mask_secrets(pretty(data))
    ok = result.ok and bool(data.get("ok", True)) and not data.get("error")
    summary = (
        _("{script} on {address} succeeded").format(script=name, address=where)
        if ok
        else _("{script} on {address} failed (exit {code})").format(
            script=name, address=where, code=result.exit_code
        )
    )
    if data.get("refused"):
        summary = _("{script} on {address} refused, nothing changed: {why}").format(
            script=name, address=where, why=data["refused"]
        )
    return Outcome(ok, summary, output), data


def kube_proxy_pod(context: Context) -> KubeObject | None:
    node = context.node_name
    return None if node is None else hns.kube_proxy_pod(context.transports.cluster, node)


def restart_kube_proxy_pod(
    context: Context,
    pod_name: str,
    timeout_s: float = POD_READY_TIMEOUT_S,
    poll_s: float = 1.0,
) -> Outcome:
    """Delete kube-proxy's pod and wait until its DaemonSet's replacement is Ready: a started
    kube-proxy re-programs every Service's load balancer."""
    cluster = context.transports.cluster
    cluster.delete("Pod", pod_name, "kube-system")
    deadline = time.monotonic() + timeout_s
    while True:
        replacement = kube_proxy_pod(context)
        name = (replacement or {}).get("metadata", {}).get("name")
        if replacement is not None and name != pod_name and hns.pod_ready(replacement):
            return Outcome(
                True,
                _("kube-proxy pod {old} replaced by {new}, Ready").format(old=pod_name, new=name),
            )
        if time.monotonic() >= deadline:
            said = (
                _("kube-proxy pod {old} deleted; {new} not Ready within {seconds} s")
                if name and name != pod_name
                else _("kube-proxy pod {old} deleted; no replacement within {seconds} s")
            )
            return Outcome(False, said.format(old=pod_name, new=name, seconds=f"{timeout_s:.0f}"))
        time.sleep(poll_s)
