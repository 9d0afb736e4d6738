"""Shared planning and running for remediations that are one of winpod's node scripts."""

from __future__ import annotations

import time
from typing import Any

from handlers import detached, hns, node_scripts, script_commands
from handlers.context import Context
from handlers.errors import ChannelLost, OutcomeUnknown, WinpodError
from handlers.i18n import _
from handlers.remediations import Outcome, Plan, pretty
from handlers.transports import KubeObject

# Scripts that change the node's network or its services run detached (handlers/detached.py):
# their result is read back even when the change cuts the WinRM connection.
DETACHED_SCRIPTS = frozenset({"hns-reset", "kube-proxy-restart"})
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
    """`address` and `runs_on` (its name) when the script runs elsewhere than on `target`."""
    text = node_scripts.render(script, **params)
    host = address or context.node_address()
    winrm = context.settings.winrm
    # the approvers see where the script and the WinRM credentials will go
    receiver = (
        _("{what}; sent over WinRM to {address}").format(what=what, address=f"{host}:{winrm.port}")
        if what
        else what
    )
    return Plan(
        remediation_id,
        target,
        "node-script",
        receiver,
        text,
        {"script": script, "address": host, "params": params},
        script_commands.state_changing_commands(text),
        runs_on,
    )


def run_script(context: Context, plan: Plan) -> tuple[Outcome, dict[str, Any]]:
    shell = context.transports.node_shell
    if shell is None:
        raise WinpodError("WinRM is not configured (winrm.username / winrm.password)")
    name, address = str(plan.data["script"]), str(plan.data["address"])
    if name in DETACHED_SCRIPTS:
        result = detached.run_detached(shell, address, name, plan.preview)
    else:
        timeout = float(context.settings.winrm.read_timeout_s)
        try:
            result = shell.run_script(address, plan.preview, timeout)
        except ChannelLost as exc:
            raise OutcomeUnknown(f"outcome unknown: {exc}") from None
    data = node_scripts.parse_output(name, result)
    output = node_scripts.mask_secrets(pretty(data))
    ok = result.ok and bool(data.get("ok", True)) and not data.get("error")
    summary = (
        _("{script} on {address} succeeded").format(script=name, address=address)
        if ok
        else _("{script} on {address} failed (exit {code})").format(
            script=name, address=address, code=result.exit_code
        )
    )
    if data.get("refused"):
        summary = _("{script} on {address} refused, nothing changed: {why}").format(
            script=name, address=address, why=data["refused"]
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
            return Outcome(True, f"kube-proxy pod {pod_name} replaced by {name}, Ready")
        if time.monotonic() >= deadline:
            state = f"{name} not Ready" if name and name != pod_name else "no replacement"
            return Outcome(
                False, f"kube-proxy pod {pod_name} deleted; {state} within {timeout_s:.0f} s"
            )
        time.sleep(poll_s)
