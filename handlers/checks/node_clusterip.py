"""`node-clusterip`: a Windows node itself cannot reach Service ClusterIPs — by design."""

from __future__ import annotations

from handlers.context import Context
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable

CHECK_ID = "node-clusterip"
DOCS = ("https://kubernetes.io/docs/concepts/services-networking/windows-networking/#limitations",)


@check(
    CHECK_ID,
    title=N_("Service ClusterIPs from the node"),
    scopes=("node",),
    explanation=Explanation(
        cause=(
            N_(
                "The Windows network stack only load-balances Service ClusterIPs for pods; the "
                "node "
                "itself cannot reach them. This is a known limitation, not a fault."
            )
        ),
        signals=(N_("Test-NetConnection <ClusterIP> from the node (not a pod) fails"),),
        fixes=(
            N_("run the client in a pod on the node"),
            N_("or use the Service's endpoint (pod) IPs from the node"),
        ),
        links=DOCS,
    ),
)
def node_clusterip(context: Context) -> list[Finding]:
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    return [
        Finding(
            CHECK_ID,
            "info",
            _("The node cannot reach Service ClusterIPs (by design)"),
            _(
                "Windows only load-balances ClusterIPs for pods; tools run on "
                "{node_name} itself cannot reach them. Run the client in a pod, or use "
                "endpoint IPs."
            ).format(node_name=context.node_name),
            (),
            (),
            DOCS,
        )
    ]
