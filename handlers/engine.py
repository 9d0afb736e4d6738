"""Runs the registered checks of one diagnosis concurrently, each bounded, none fatal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from config.settings import Settings
from handlers import names
from handlers.checks import default_registry
from handlers.context import Context, Transports
from handlers.errors import NotFound, WinpodError
from handlers.i18n import _
from handlers.model import Diagnosis, Finding, Target, sort_findings
from handlers.registry import CheckSpec, Registry, Scope

log = logging.getLogger(__name__)


def diagnose_pod(
    transports: Transports,
    settings: Settings,
    reference: str,
    registry: Registry | None = None,
    timeout_s: float | None = None,
    on_target: Callable[[Target], None] | None = None,
    only: frozenset[str] | None = None,
) -> Diagnosis:
    """Diagnose `NAMESPACE/POD`; raises BadInput / NotFound / Unreachable for the CLI to map.

    `on_target` hears what is being diagnosed (pod, node) before the checks start, so a caller
    can show progress."""
    namespace, pod_name = names.pod_ref(reference)
    started = time.monotonic()
    cluster = transports.cluster
    try:
        pod = cluster.get("Pod", pod_name, namespace)
    except NotFound:
        raise NotFound(
            _("pod {pod} not found in context {context}").format(
                pod=f"{namespace}/{pod_name}", context=cluster.context
            )
        ) from None
    node_name = (pod.get("spec") or {}).get("nodeName")
    node = None
    if node_name:
        try:
            node = cluster.get("Node", node_name)
        except NotFound:
            node = None
    context = Context(transports, settings, "Pod", pod, node)
    if on_target is not None:
        on_target(context.target)
    findings = run_checks(
        context, registry or default_registry(), "pod", _timeout(settings, timeout_s), only
    )
    return Diagnosis(context.target, context.node_facts, findings, _ms_since(started))


def diagnose_node(
    transports: Transports,
    settings: Settings,
    name: str,
    registry: Registry | None = None,
    timeout_s: float | None = None,
    on_target: Callable[[Target], None] | None = None,
    only: frozenset[str] | None = None,
) -> Diagnosis:
    node_name = names.node_name(name)
    started = time.monotonic()
    cluster = transports.cluster
    try:
        node = cluster.get("Node", node_name)
    except NotFound:
        raise NotFound(
            _("node {node} not found in context {context}").format(
                node=node_name, context=cluster.context
            )
        ) from None
    context = Context(transports, settings, "Node", None, node)
    if on_target is not None:
        on_target(context.target)
    findings = run_checks(
        context, registry or default_registry(), "node", _timeout(settings, timeout_s), only
    )
    return Diagnosis(context.target, context.node_facts, findings, _ms_since(started))


def run_checks(
    context: Context,
    registry: Registry,
    scope: Scope,
    timeout_s: float,
    only: frozenset[str] | None = None,
) -> tuple[Finding, ...]:
    """Every check of the scope (or only those named), concurrently, each bounded."""
    specs = registry.for_scope(scope, only)
    findings: list[Finding] = []
    pool = ThreadPoolExecutor(max_workers=max(1, len(specs)), thread_name_prefix="check")
    try:
        futures = {spec.id: pool.submit(spec.run, context) for spec in specs}
        wait(futures.values(), timeout=timeout_s)
        for spec in specs:
            future = futures[spec.id]
            if not future.done():
                findings.append(
                    Finding(
                        spec.id,
                        "warning",
                        _could_not(spec),
                        _("the check did not finish within {seconds} s").format(
                            seconds=f"{timeout_s:g}"
                        ),
                    )
                )
                continue
            error = future.exception()
            if error is None:
                findings.extend(future.result())
            elif isinstance(error, WinpodError):
                findings.append(Finding(spec.id, "warning", _could_not(spec), str(error)))
            else:
                log.error("check %s failed unexpectedly", spec.id, exc_info=error)
                findings.append(
                    Finding(
                        spec.id,
                        "warning",
                        _could_not(spec),
                        _("the check failed unexpectedly ({error})").format(
                            error=type(error).__name__
                        ),
                    )
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return sort_findings(findings)


def _timeout(settings: Settings, timeout_s: float | None) -> float:
    return settings.work.check_timeout.total_seconds() if timeout_s is None else timeout_s


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _could_not(spec: CheckSpec) -> str:
    return _("Could not check {what}").format(what=_(spec.title).lower())
