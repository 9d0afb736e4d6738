"""`dns-keeper`: a tiny DaemonSet so that every Windows node runs at least two pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.context import Context
from handlers.errors import NotFound
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, Verification, pretty, remediation

NAME = "winpod-dns-keeper"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "winpod"}
# Multi-arch, with Windows variants for ltsc2019 and ltsc2022 and later.
IMAGE = "registry.k8s.io/pause:3.9"


def daemonset(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "windows"},
                    "tolerations": [
                        {
                            "key": "os",
                            "operator": "Equal",
                            "value": "windows",
                            "effect": "NoSchedule",
                        },
                        {
                            "key": "node.kubernetes.io/os",
                            "operator": "Equal",
                            "value": "windows",
                            "effect": "NoSchedule",
                        },
                    ],
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "keeper",
                            "image": IMAGE,
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "50m", "memory": "32Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


def _run(context: Context, plan: Plan) -> Outcome:
    cluster = context.transports.cluster
    namespace = context.settings.kubernetes.namespace
    try:
        existing = cluster.get("DaemonSet", NAME, namespace)
    except NotFound:
        cluster.create("DaemonSet", plan.data["manifest"], namespace)
        return Outcome(
            True,
            _("created DaemonSet {daemonset}").format(daemonset=f"{namespace}/{NAME}"),
            plan.preview,
        )
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != "winpod":
        return Outcome(
            False,
            _("DaemonSet {daemonset} exists but is not winpod's; left alone").format(
                daemonset=f"{namespace}/{NAME}"
            ),
            "",
        )
    return Outcome(
        True,
        _("DaemonSet {daemonset} already exists (confirmed)").format(
            daemonset=f"{namespace}/{NAME}"
        ),
        "",
    )


def _verify(context: Context, plan: Plan) -> Verification:
    namespace = context.settings.kubernetes.namespace
    try:
        found = context.transports.cluster.get("DaemonSet", NAME, namespace)
    except NotFound:
        return Verification(False, f"DaemonSet {namespace}/{NAME} is missing")
    status = found.get("status") or {}
    return Verification(
        True,
        f"DaemonSet {namespace}/{NAME} present "
        f"({status.get('numberReady', '?')}/"
        f"{status.get('desiredNumberScheduled', '?')} ready)",
    )


@remediation(
    "dns-keeper",
    risk="low",
    target_kind=TargetKind.CLUSTER,
    does=lambda t: _(
        "create (or confirm) a tiny DaemonSet so that every Windows node runs at least two pods"
    ),
    impact=lambda t: _("one small pause pod on every Windows node"),
    verified_by=("dns-after-reboot",),
    run=_run,
    verify=_verify,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    manifest = daemonset(context.settings.kubernetes.namespace)
    return Plan(
        "dns-keeper",
        "cluster",
        "api",
        f"create DaemonSet {context.settings.kubernetes.namespace}/{NAME}",
        pretty(manifest),
        {"manifest": manifest},
    )
