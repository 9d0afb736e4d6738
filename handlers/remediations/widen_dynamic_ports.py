"""`widen-dynamic-ports`: widen the node's TCP dynamic port range downwards, clear of the
NodePorts (30000-32767) and of the excluded ranges; the plan shows the old and the new range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from handlers.checks.port_exhaustion import NODE_PORTS, read_ports, widened
from handlers.context import Context
from handlers.errors import BadInput
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script


def _range(data: object) -> str:
    if not isinstance(data, dict):
        return "?"
    start, count = int(data.get("start", 0)), int(data.get("count", 0))
    return _("{start}-{end} ({count} ports)").format(
        start=start, end=start + count - 1, count=count
    )


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    change = _("TCP dynamic ports {before} → {after}").format(
        before=_range(data.get("before")), after=_range(data.get("after"))
    )
    why = f": {data['error']}" if data.get("error") else ""
    return Outcome(outcome.ok, f"{outcome.summary}\n{change}{why}", outcome.output)


@remediation(
    "widen-dynamic-ports",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: widen the TCP dynamic port range (netsh int ipv4 set dynamicport tcp) "
        "downwards, clear of the NodePorts 30000-32767 and of the excluded ranges"
    ).format(target=t),
    impact=lambda t: _(
        "programs on {target} that listen on ports in the added range may clash with outgoing "
        "connections; existing connections are kept"
    ).format(target=t),
    verified_by=("port-exhaustion",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters: the range comes from the node
    ports = read_ports(context)
    wider = widened(ports)
    if wider is None:
        raise BadInput(
            _(
                "the dynamic port range of {target} ({range}) cannot grow clear of the "
                "NodePorts {first}-{last} and the excluded ranges; enable DSR"
            ).format(target=target, range=ports.describe(), first=NODE_PORTS[0], last=NODE_PORTS[1])
        )
    planned = plan_script(
        context,
        "widen-dynamic-ports",
        target,
        "widen-dynamic-ports",
        _(
            "change the TCP dynamic port range on {target} from {old} to {new}: free 64-port "
            "blocks {old_free} → {new_free}"
        ).format(
            target=target,
            old=ports.describe(),
            new=wider.describe(),
            old_free=ports.free_blocks,
            new_free=wider.free_blocks,
        ),
        Start=str(wider.start),
        Count=str(wider.count),
    )
    # Approvers read the command with its values first, and the range it replaces.
    concrete = (
        f"netsh int ipv4 set dynamicport tcp start={wider.start} num={wider.count}"  # i18n: command
        f"  # was start={ports.start} num={ports.count}"
    )
    return replace(planned, commands=(concrete, *planned.commands))
