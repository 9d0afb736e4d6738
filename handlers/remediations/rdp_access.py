"""`rdp-open` (high risk, approved like any remediation) and `rdp-close` (low risk)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from config.settings import format_duration
from handlers import rdp
from handlers.context import Context
from handlers.errors import NotFound
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, Verification, pretty, remediation


def _run_open(context: Context, plan: Plan) -> Outcome:
    settings, cluster = context.settings, context.transports.cluster
    namespace = settings.kubernetes.namespace
    expires_at = datetime.now(UTC) + rdp.parse_ttl(plan.data["ttl"], settings)
    name, extended = rdp.open_access(
        cluster,
        namespace,
        plan.target,
        plan.data["address"],
        plan.data["ranges"],
        expires_at,
        plan.data.get("requester", "winpod"),
    )
    until = expires_at.strftime("%H:%M UTC")
    if extended:
        return Outcome(
            True, _("RDP to {node} extended until {time}").format(node=plan.target, time=until)
        )
    address = rdp.wait_for_address(cluster, namespace, name, settings.rdp.lb_timeout)
    if address is None:
        rdp.close_access(cluster, namespace, plan.target)
        return Outcome(
            False,
            _("the load balancer gave {name} no address within {timeout}; closed it again").format(
                name=name, timeout=format_duration(settings.rdp.lb_timeout)
            ),
        )
    return Outcome(
        True,
        _("RDP to {node} open at {address} until {time}: {command}").format(
            node=plan.target, address=address, time=until, command=f"mstsc.exe /v:{address}"
        ),
    )


def _verify_open(context: Context, plan: Plan) -> Verification:
    namespace = context.settings.kubernetes.namespace
    try:
        context.transports.cluster.get("Service", rdp.service_name(plan.target), namespace)
    except NotFound:
        return Verification(False, _("the RDP Service is gone"))
    return Verification(
        True,
        _("Service {name} is open").format(name=f"{namespace}/{rdp.service_name(plan.target)}"),
    )


@remediation(
    "rdp-open",
    risk="high",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "expose RDP (3389) of {target} through a LoadBalancer Service limited to the "
        "given source ranges, closed automatically at expiry"
    ).format(target=t),
    impact=lambda t: _(
        "RDP to {target} becomes reachable from the source ranges until it expires"
    ).format(target=t),
    verified_by=(),
    run=_run_open,
    verify=_verify_open,
    lock_scope="rdp-open",
)
def plan_open(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    settings = context.settings
    ttl = rdp.parse_ttl(params.get("ttl"), settings)
    ranges = rdp.source_ranges(params.get("from"), settings)
    _checked, address = rdp.check_node(context.transports.cluster, target, settings)
    service, slice_, _expiry = rdp.manifests(
        target,
        address,
        settings.kubernetes.namespace,
        ranges,
        datetime.now(UTC) + ttl,
        params.get("requester", "?"),
    )
    return Plan(
        "rdp-open",
        target,
        "api",
        _("open RDP to {node} for {ttl} from {ranges}").format(
            node=target, ttl=format_duration(ttl), ranges=", ".join(ranges)
        ),
        pretty([service, slice_]),
        {
            "ttl": str(int(ttl.total_seconds())) + "s",
            "ranges": ranges,
            "address": address,
            "requester": params.get("requester", "winpod"),
        },
    )


def _run_close(context: Context, plan: Plan) -> Outcome:
    namespace = context.settings.kubernetes.namespace
    if rdp.close_access(context.transports.cluster, namespace, plan.target):
        return Outcome(True, _("RDP to {node} closed").format(node=plan.target))
    return Outcome(
        True, _("no RDP session of winpod's was open for {node}").format(node=plan.target)
    )


@remediation(
    "rdp-close",
    risk="low",
    target_kind=TargetKind.NODE,
    does=lambda t: _("delete winpod's RDP Service and endpoints for {target}").format(target=t),
    impact=lambda t: _("RDP sessions to {target} through winpod are cut").format(target=t),
    verified_by=(),
    run=_run_close,
    target_must_exist=False,  # a node scaled away must not keep its RDP door open
    needs_approval=False,  # it only removes access
    lock_scope="rdp-close",
)
def plan_close(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # closing takes no parameters
    name = rdp.service_name(target)
    return Plan(
        "rdp-close",
        target,
        "api",
        _("delete Service {name} and its endpoints").format(name=name),
        _("delete Service, EndpointSlice/Endpoints {name} (only if labelled as winpod's)").format(
            name=f"{context.settings.kubernetes.namespace}/{name}"
        ),
    )
