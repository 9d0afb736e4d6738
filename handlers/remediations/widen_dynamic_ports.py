"""`widen-dynamic-ports`: widen the node's TCP dynamic port range downwards, clear of the
NodePorts (30000-32767) and of the excluded ranges; the plan shows the old and the new range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from handlers.checks.port_exhaustion import NODE_PORTS, read_ports, widened
from handlers.context import Context
from handlers.errors import BadInput
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script


def _range(data: object) -> str:
    if not isinstance(data, dict):
        return "?"
    start, count = int(data.get("start", 0)), int(data.get("count", 0))
    return f"{start}-{start + count - 1} ({count} ports)"


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    change = f"TCP dynamic ports {_range(data.get('before'))} → {_range(data.get('after'))}"
    why = f": {data['error']}" if data.get("error") else ""
    return Outcome(outcome.ok, f"{outcome.summary}\n{change}{why}", outcome.output)


@remediation(
    "widen-dynamic-ports",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: (
        f"on {t}: widen the TCP dynamic port range (netsh int ipv4 set dynamicport tcp) "
        "downwards, clear of the NodePorts 30000-32767 and of the excluded ranges"
    ),
    impact=lambda t: (
        f"programs on {t} that listen on ports in the added range may clash with outgoing "
        "connections; existing connections are kept"
    ),
    verified_by=("port-exhaustion",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters: the range comes from the node
    ports = read_ports(context)
    wider = widened(ports)
    if wider is None:
        raise BadInput(
            f"the dynamic port range of {target} ({ports.describe()}) cannot grow clear of the "
            f"NodePorts {NODE_PORTS[0]}-{NODE_PORTS[1]} and the excluded ranges; enable DSR"
        )
    planned = plan_script(
        context,
        "widen-dynamic-ports",
        target,
        "widen-dynamic-ports",
        f"change the TCP dynamic port range on {target} from {ports.describe()} to "
        f"{wider.describe()}: free 64-port blocks {ports.free_blocks} → {wider.free_blocks}",
        Start=str(wider.start),
        Count=str(wider.count),
    )
    # Approvers read the command with its values first, and the range it replaces.
    concrete = (
        f"netsh int ipv4 set dynamicport tcp start={wider.start} num={wider.count}"
        f"  # was start={ports.start} num={ports.count}"
    )
    return replace(planned, commands=(concrete, *planned.commands))
