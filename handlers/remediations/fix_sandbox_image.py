"""`fix-sandbox-image`: show the configured sandbox image and the right one for the build."""

from __future__ import annotations

from collections.abc import Mapping

from handlers import windows
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import _
from handlers.registry import TargetKind
from handlers.remediations import Outcome, Plan, remediation


def _run(context: Context, plan: Plan) -> Outcome:
    return Outcome(True, _("instructions only: nothing was changed on the node"), plan.preview)


@remediation(
    "fix-sandbox-image",
    risk="medium",
    target_kind=TargetKind.NODE,
    does=lambda t: _(
        "show the sandbox image configured on {target} and the right one for its build"
    ).format(target=t),
    impact=lambda t: _("nothing changes on {target}: it shows what to change in containerd").format(
        target=t
    ),
    verified_by=("pause-image",),
    run=_run,
)
def plan(context: Context, target: str, params: Mapping[str, str]) -> Plan:
    del params  # this remediation takes no parameters
    build = context.build
    if build is None:
        raise WinpodError(_("{node} does not report a Windows build").format(node=target))
    try:
        configured = str(context.node_status().get("sandboxImage") or _("(not set)"))
    except WinpodError as exc:
        configured = _("(could not be read: {error})").format(error=exc)
    right = windows.recommended_pause_image(
        build, windows.isolation_for_runtime(context.container_runtime)
    )
    preview = "\n".join(
        [
            _("Node {node} ({build})").format(node=target, build=windows.describe_build(build)),
            _("configured sandbox image: {image}").format(image=configured),
            _("use instead:              {image}").format(image=right),
            "",
            "containerd 1.x (C:\\Program Files\\containerd\\config.toml):",
            '  [plugins."io.containerd.grpc.v1.cri"]',
            f'    sandbox_image = "{right}"',
            "containerd 2.x:",
            "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
            f'    sandbox = "{right}"',
            _("then on the node: Restart-Service containerd"),
        ]
    )
    return Plan(
        "fix-sandbox-image",
        target,
        "instructions",
        _("show how to set the sandbox image on {node}").format(node=target),
        preview,
        {"configured": configured, "recommended": right},
    )
