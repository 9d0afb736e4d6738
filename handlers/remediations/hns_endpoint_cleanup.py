"""`hns-endpoint-cleanup`: remove exactly the stale remote HNS endpoints the approvers saw.

The plan is made from one reading of the node's HNS (`hns-endpoints.ps1`) against the
EndpointSlices and names every endpoint with its IP; the script gets those `ID=IP` pairs as its
only parameter and removes an endpoint only while it still has that IP. A plan made anew before
the run that names other endpoints is refused as changed (`Plan.differences`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from handlers.checks.hns_stale_endpoints import hns_picture
from handlers.context import Context
from handlers.errors import BadInput
from handlers.i18n import _
from handlers.node_scripts import MAX_ENDPOINTS
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation
from handlers.remediations._node_script import plan_script, run_script

Pair = tuple[str, str]  # (endpoint ID, IP)


def _pairs(data: object) -> list[Pair]:
    if not isinstance(data, list):
        return []
    return [(str(r.get("ID")), str(r.get("IPAddress"))) for r in data if isinstance(r, dict)]


def _shown(pairs: list[Pair]) -> str:
    return ", ".join(f"{endpoint} ({ip})" for endpoint, ip in pairs) or _("none")


def _snapshot(title: str, pairs: list[Pair]) -> list[str]:
    return [f"{title} ({len(pairs)}):", *(f"  {endpoint} {ip}" for endpoint, ip in pairs)]


def report(data: Mapping[str, Any], planned: list[str]) -> tuple[list[str], list[str]]:
    """(summary lines, HNS snapshot lines) from the script's result and the `ID=IP` pairs the
    plan named. The snapshot goes to the thread and the audit, which both cut long outputs:
    the named endpoints before and after first, the after list as its difference from before,
    then the before list whole."""
    removed, before, after = (_pairs(data.get(key)) for key in ("removed", "before", "after"))
    skipped = [
        f"{row.get('ID')} ({row.get('IPAddress')}): {row.get('why')}"
        for row in data.get("skipped") or []
        if isinstance(row, dict)
    ]
    lines = [
        _("removed {count}: {endpoints}").format(count=len(removed), endpoints=_shown(removed)),
        *(
            [_("skipped {count}: {why}").format(count=len(skipped), why="; ".join(skipped))]
            if skipped
            else []
        ),
        _("remote endpoints before: {before}, after: {after}").format(
            before=len(before), after=len(after)
        ),
    ]
    named = [p for p in before if f"{p[0]}={p[1]}" in planned]
    also_gone = [p for p in before if p not in removed and p not in after]
    appeared = [p for p in after if p not in before]
    after_line = (
        _("remote endpoints after ({count}): those before, without the removed ones").format(
            count=len(after)
        )
        if not also_gone and not appeared
        else _("remote endpoints after ({count}): also gone {gone}; new {new}").format(
            count=len(after), gone=_shown(also_gone), new=_shown(appeared)
        )
    )
    snapshot = [
        *([_("error: {error}").format(error=data["error"])] if data.get("error") else []),
        *lines,
        _("named in the plan: {named}; still present after: {present}").format(
            named=_shown(named), present=_shown([p for p in named if p in after])
        ),
        after_line,
        *_snapshot(_("remote endpoints before"), before),
    ]
    return lines, snapshot


def _run(context: Context, plan: Plan) -> Outcome:
    outcome, data = run_script(context, plan)
    lines, snapshot = report(data, str(plan.data["params"]["Endpoints"]).split(","))
    return Outcome(outcome.ok, outcome.summary + "\n" + "\n".join(lines), "\n".join(snapshot))


@remediation(
    "hns-endpoint-cleanup",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "on {target}: remove the stale remote HNS endpoints the plan names (each with its IP, "
        "from the HNS reading the approvers saw) and nothing else, with a snapshot of the "
        "remote endpoints before and after"
    ).format(target=t),
    impact=lambda t: _(
        "traffic from pods on {target} to the removed endpoints' IPs stops (no EndpointSlice "
        "holds them); other endpoints are untouched"
    ).format(target=t),
    verified_by=("hns-stale-endpoints",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters: the endpoints come from the node
    picture = hns_picture(context)
    if not picture.stale:
        raise BadInput(
            _("no stale remote HNS endpoint on {target}: nothing to remove").format(target=target)
        )
    chosen = picture.stale[:MAX_ENDPOINTS]
    left = len(picture.stale) - len(chosen)
    named = "; ".join(e.describe() for e in chosen)
    what = (
        _(
            "remove {count} stale remote HNS endpoint(s) on {target}, and only these: {named} "
            "({left} more remain for a second run)"
        )
        if left
        else _("remove {count} stale remote HNS endpoint(s) on {target}, and only these: {named}")
    ).format(count=len(chosen), target=target, named=named, left=left)
    planned = plan_script(
        context,
        "hns-endpoint-cleanup",
        target,
        "hns-endpoint-cleanup",
        what,
        Endpoints=",".join(f"{e.id}={e.ip}" for e in chosen),
    )
    # Approvers read these first: every endpoint by name and IP, then the script's own line.
    named_lines = tuple(f"Remove-HnsEndpoint {e.id}  # IP {e.ip}" for e in chosen)
    return replace(planned, commands=(*named_lines, *planned.commands))
