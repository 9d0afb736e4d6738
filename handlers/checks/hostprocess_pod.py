"""`hostprocess-pod`: a HostProcess container that cannot log on or cannot find its executable."""

from __future__ import annotations

import re

from handlers import knowledge
from handlers.context import Context, event_line
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check
from handlers.transports import KubeObject

CHECK_ID = "hostprocess-pod"
DOCS = (
    "https://kubernetes.io/docs/tasks/configure-pod-container/create-hostprocess-pod/",
    "https://github.com/kubernetes/website/issues/29924",
    "https://github.com/microsoft/hcsshim/issues/1699",
)
# containerd creates the HostProcess user's token; as anything but LocalSystem it is refused.
LOGON_FAILED = re.compile(
    r"failed to logon user|failed to create user process token|logon failure",  # i18n: regex
    re.I,
)
EXECUTABLE_NOT_FOUND = re.compile(
    r"failed to find executable|executable file not found",  # i18n: regex
    re.I,
)
# The accounts a HostProcess container may run as (besides a local group winpod cannot see).
BUILT_IN_ACCOUNTS = {
    "nt authority\\system",
    "nt authority\\local service",
    "nt authority\\localservice",
    "nt authority\\network service",
    "nt authority\\networkservice",
}


def _windows_options(holder: KubeObject) -> KubeObject:
    return (holder.get("securityContext") or {}).get("windowsOptions") or {}


def is_hostprocess(pod: KubeObject) -> bool:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return bool(_windows_options(spec).get("hostProcess")) or any(
        _windows_options(c).get("hostProcess") for c in containers
    )


def _run_as(pod: KubeObject) -> str | None:
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or []:
        user = _windows_options(container).get("runAsUserName")
        if user:
            return str(user)
    user = _windows_options(spec).get("runAsUserName")
    return None if user is None else str(user)


@check(
    CHECK_ID,
    title=N_("HostProcess containers"),
    scopes=("pod",),
    explanation=Explanation(
        cause=(
            N_(
                "HostProcess containers run directly on the host as a Windows account. containerd "
                "creates that account's logon token, which only works while containerd itself runs "
                "as LocalSystem: otherwise 'failed to logon user: Access is denied'. The container "
                "runs in the host's file system: its image is mounted at "
                "$env:CONTAINER_SANDBOX_MOUNT_POINT, and from containerd 1.7 on (bind mounts) "
                "volumes "
                "appear at their own mountPath, no longer under "
                "$env:CONTAINER_SANDBOX_MOUNT_POINT; "
                "a command pointing at the wrong place fails with 'failed to find executable'."
            )
        ),
        signals=(
            "pod securityContext.windowsOptions.hostProcess: true",
            N_(
                "event: failed to create user process token: failed to logon user: Access is denied"
            ),
            N_("event: failed to find executable"),
            N_(
                "runAsUserName (NT AUTHORITY\\SYSTEM, Local service, NetworkService, or a local "
                "group)"
            ),
            N_("node nodeInfo.containerRuntimeVersion (1.6 vs 1.7+ mounts)"),
        ),
        fixes=(
            N_(
                "run the containerd service as LocalSystem (sc.exe config containerd obj= "
                "LocalSystem)"
            ),
            N_("use runAsUserName NT AUTHORITY\\SYSTEM (or Local service / NetworkService)"),
            N_(
                "call the executable by an absolute path: image files under "
                "$env:CONTAINER_SANDBOX_MOUNT_POINT, volumes at their mountPath on containerd 1.7+"
            ),
        ),
        links=DOCS,
    ),
)
def hostprocess_pod(context: Context) -> list[Finding]:
    assert context.pod is not None
    pod = context.pod
    if not is_hostprocess(pod):
        return [
            Finding(CHECK_ID, "ok", _("No HostProcess"), _("the pod has no HostProcess container"))
        ]
    events = context.pod_events()
    logon = [e for e in events if LOGON_FAILED.search(str(e.get("message", "")))]
    missing = [e for e in events if EXECUTABLE_NOT_FOUND.search(str(e.get("message", "")))]
    user = _run_as(pod)
    runtime = context.container_runtime
    evidence = [event_line(e) for e in (logon + missing)[:3]]
    evidence.append(f"runAsUserName: {user or _('(not set)')}")
    if runtime:
        evidence.append(
            _("node {node} runtime {runtime}").format(node=context.node_name, runtime=runtime)
        )
    if not logon and not missing:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("HostProcess container starts"),
                _("no logon or executable failure for this HostProcess pod"),
                tuple(evidence),
            )
        ]
    parts = []
    if logon:
        parts.append(_logon_advice(user))
    if missing:
        parts.append(_path_advice(pod, runtime))
        mounts = [
            f"{c.get('name')}: {m.get('mountPath')}"
            for c in (pod.get("spec") or {}).get("containers") or []
            for m in c.get("volumeMounts") or []
        ]
        if mounts:
            evidence.append(_("volume mounts: {mounts}").format(mounts=", ".join(mounts)))
    return [
        Finding(
            CHECK_ID,
            "error",
            _("HostProcess container cannot log on")
            if logon
            else _("HostProcess executable not found"),
            " ".join(parts),
            tuple(evidence),
            (),
            DOCS,
        )
    ]


def _logon_advice(user: str | None) -> str:
    advice = _(
        "containerd could not create the logon token for the HostProcess account (Access is "
        "denied): containerd must run as LocalSystem on the node (sc.exe config containerd "
        "obj= LocalSystem, then restart it)."
    )
    if user is None or user.lower() in BUILT_IN_ACCOUNTS:
        return advice
    return (
        advice
        + " "
        + _(
            "The pod runs as {user}: use NT AUTHORITY\\SYSTEM, NT AUTHORITY\\Local service, "
            "NT AUTHORITY\\NetworkService or a local group."
        ).format(user=repr(user))
    )


def _path_advice(pod: KubeObject, runtime: str) -> str:
    name, version = knowledge.runtime_version(runtime)
    bind_mounts = name == "containerd" and (version is None or version >= (1, 7))
    command = " ".join(
        str(part)
        for c in (pod.get("spec") or {}).get("containers") or []
        for part in [*(c.get("command") or []), *(c.get("args") or [])]
    )
    uses_sandbox_path = "CONTAINER_SANDBOX_MOUNT_POINT" in command
    where = (
        _(
            "on this node's containerd (1.7+, bind mounts) volumes appear at their mountPath, not "
            "under $env:CONTAINER_SANDBOX_MOUNT_POINT"
        )
        if bind_mounts
        else _("on containerd 1.6 volumes appear under $env:CONTAINER_SANDBOX_MOUNT_POINT")
    )
    hint = (
        " "
        + _(
            "The command builds its path from $env:CONTAINER_SANDBOX_MOUNT_POINT: check that the "
            "file is in the image, not in a volume."
        )
        if uses_sandbox_path and bind_mounts
        else ""
    )
    return (
        _(
            "The HostProcess container's command was not found: it runs in the host's file "
            "system, where the image's files are under $env:CONTAINER_SANDBOX_MOUNT_POINT and "
            "{where}. Call the executable by an absolute path."
        ).format(where=where)
        + hint
    )
