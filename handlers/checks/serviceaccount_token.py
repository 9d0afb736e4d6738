"""`serviceaccount-token`: the pod cannot read its ServiceAccount token (host build < 17074)."""

from __future__ import annotations

from handlers import probes, windows
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable

CHECK_ID = "serviceaccount-token"
FIXED_IN_BUILD = 17074
DOCS = ("https://github.com/moby/moby/issues/28401",)


@check(
    CHECK_ID,
    title=N_("ServiceAccount token"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=(
            N_(
                "Secret files are symlinks that Windows hosts before build 17074 cannot follow "
                "through the volume mount, so pods there cannot read their ServiceAccount token "
                "and "
                "every call to the Kubernetes API fails (moby#28401). Nothing in the pod fixes it."
            )
        ),
        signals=(
            N_("node build below 17074 (e.g. 16299 / 1709)"),
            N_(
                "reading C:\\var\\run\\secrets\\kubernetes.io\\serviceaccount\\token fails in "
                "the pod"
            ),
        ),
        fixes=(
            N_(
                "move the workload to nodes on Windows Server 2019 (17763) or later; every release "
                "from 1803 (17134) on has the fix"
            ),
            N_("HostProcess pods read the token under $env:CONTAINER_SANDBOX_MOUNT_POINT"),
        ),
        links=DOCS,
    ),
)
def serviceaccount_token(context: Context) -> list[Finding]:
    build = context.build
    if not context.windows_node or build is None:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    old = build < FIXED_IN_BUILD
    host = windows.describe_build(build)
    build_evidence = _("node {node} is {host}; the fix shipped in build {build}").format(
        node=context.node_name, host=host, build=FIXED_IN_BUILD
    )
    fix = _(
        "Move the workload to nodes on build {build} or later (Windows Server 2019 and "
        "newer); nothing inside the pod can fix it."
    ).format(build=FIXED_IN_BUILD)
    if context.kind == "Node":
        if not old:
            return [
                Finding(CHECK_ID, "ok", _("Host can serve ServiceAccount tokens"), build_evidence)
            ]
        return [
            Finding(
                CHECK_ID,
                "error",
                _("Pods on this node cannot read their ServiceAccount token"),
                _(
                    "Windows before build {build} cannot follow the secret's "
                    "symlinks (moby#28401). {fix}"
                ).format(build=FIXED_IN_BUILD, fix=fix),
                (build_evidence,),
                (),
                DOCS,
            )
        ]
    assert context.pod is not None
    spec, status = context.pod.get("spec") or {}, context.pod.get("status") or {}
    if spec.get("automountServiceAccountToken") is False:
        return not_applicable(CHECK_ID, N_("the pod does not mount a ServiceAccount token"))
    if status.get("phase") != "Running" or not probes.has_powershell(context):
        if old:
            return [
                Finding(
                    CHECK_ID,
                    "warning",
                    _("ServiceAccount token will be unreadable"),
                    _(
                        "The token could not be probed (pod not running or no PowerShell), but "
                        "builds before {build} cannot read it. {fix}"
                    ).format(build=FIXED_IN_BUILD, fix=fix),
                    (build_evidence,),
                    (),
                    DOCS,
                )
            ]
        return not_applicable(CHECK_ID, N_("the pod is not running or has no PowerShell to probe"))
    try:
        probe, length = probes.token_length(context)
    except WinpodError as exc:
        return [
            Finding(CHECK_ID, "warning", _("Could not check the ServiceAccount token"), str(exc))
        ]
    if probe.ok:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("ServiceAccount token readable"),
                _(
                    "the token file can be read ({length} characters; its content is never "
                    "read by winpod)"
                ).format(length=length),
                (probe.evidence(),),
            )
        ]
    if old:
        return [
            Finding(
                CHECK_ID,
                "error",
                _("The pod cannot read its ServiceAccount token"),
                _(
                    "Windows before build {build} cannot follow the secret's "
                    "symlinks (moby#28401). {fix}"
                ).format(build=FIXED_IN_BUILD, fix=fix),
                (build_evidence, probe.evidence()),
                (),
                DOCS,
            )
        ]
    return [
        Finding(
            CHECK_ID,
            "warning",
            _("The ServiceAccount token cannot be read"),
            _(
                "The host build has the symlink fix, so look elsewhere: a HostProcess "
                "pod reads it under $env:CONTAINER_SANDBOX_MOUNT_POINT; Linux-only "
                "securityContext fields break mounts on Windows."
            ),
            (build_evidence, probe.evidence()),
            (),
            DOCS,
        )
    ]
