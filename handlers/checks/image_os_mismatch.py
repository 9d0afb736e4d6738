"""`image-os-mismatch`: a container image built for a Windows build the node cannot run."""

from __future__ import annotations

from handlers import windows
from handlers.context import Context, pod_images
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable, offer

CHECK_ID = "image-os-mismatch"
DOCS = (
    "https://learn.microsoft.com/en-us/virtualization/windowscontainers/deploy-containers/version-compatibility",
    "https://kubernetes.io/docs/concepts/windows/user-guide/#ensuring-os-specific-workloads-land-on-the-appropriate-container-host",
)


@check(
    CHECK_ID,
    title=N_("Image Windows version"),
    scopes=("pod",),
    explanation=Explanation(
        cause=(
            N_(
                "Kubernetes runs Windows containers with process isolation, where the image's "
                "Windows "
                "build must fit the host's: before Windows Server 2022 (20348) they must be equal; "
                "from 20348 on, containerd 1.7.6+ and 2.x run images from 20348 up to the host's "
                "build, while containerd 1.6 and 1.7.0-1.7.5 still need the exact host build. Pods "
                "whose RuntimeClass has the handler runhcs-wcow-hypervisor run with Hyper-V "
                "isolation, where the host's build and older ones run. An image built for another "
                "build leaves the pod stuck in ContainerCreating."
            )
        ),
        signals=(
            N_("event: The container operating system does not match the host operating system"),
            N_("event: The operating system of the container does not match … (0xc0370101)"),
            N_("pull: no match for platform in manifest / no matching manifest for windows/amd64"),
            N_("image tag (1709, 1809, ltsc2019, ltsc2022, ltsc2025, 10.0.17763.x) vs node build"),
            N_("node nodeInfo.containerRuntimeVersion (containerd before 1.7.6: exact match)"),
            N_("pod runtimeClassName whose RuntimeClass handler is runhcs-wcow-hypervisor"),
        ),
        fixes=(
            N_("use the image tag built for the node's Windows build"),
            N_(
                "pin the workload to matching nodes: nodeSelector node.kubernetes.io/windows-build "
                "and kubernetes.io/os: windows (remediation pin-windows-build)"
            ),
            N_(
                "on containerd before 1.7.6, upgrade containerd (1.7.6+ accepts ltsc2022 images on "
                "newer hosts)"
            ),
        ),
        links=(*DOCS, "https://github.com/containerd/containerd/pull/9069"),
    ),
)
def image_os_mismatch(context: Context) -> list[Finding]:
    assert context.pod is not None
    target = context.target
    host_build = context.build
    if not context.windows_node or host_build is None:
        return not_applicable(CHECK_ID, N_("the pod is not on a Windows node"))
    images = pod_images(context.pod)
    # A platform error for a Linux image is linux-pod-on-windows's finding, not this one's.
    linux = any(windows.looks_like_linux_image(image) for _container, image in images)
    events = [
        e
        for e in context.pod_events()
        if not linux and windows.classify_event_message(str(e.get("message", ""))) == "os-mismatch"
    ]
    host = windows.describe_build(host_build)
    isolation, isolation_evidence = _isolation(context)
    evidence: list[str] = []
    wrong_builds: list[int] = []
    for container, image in images:
        image_build = windows.image_build(image)
        if image_build is None:
            continue
        if windows.can_run(host_build, image_build, isolation):
            continue
        wrong_builds.append(image_build)
        evidence.append(
            _("container {name}: image {image} is built for {build}; node {node} is {host}").format(
                name=container,
                image=image,
                build=windows.describe_build(image_build),
                node=context.node_name,
                host=host,
            )
        )
    evidence.extend(
        _("event {reason}: {message}").format(reason=e.get("reason"), message=e.get("message"))
        for e in events[:3]
    )
    if isolation_evidence:
        evidence.append(isolation_evidence)
    if not wrong_builds and not events:
        listed = ", ".join(image for _container, image in images)
        how = _(" with Hyper-V isolation") if isolation == "hyperv" else ""
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Images fit the node's Windows build"),
                _("every image tag that names a build can run on {host}{how}").format(
                    host=host, how=how
                ),
                (f"images: {listed}", *([isolation_evidence] if isolation_evidence else [])),
            )
        ]
    suggestion = windows.suggest_tag(host_build)
    if wrong_builds:
        reason = windows.compatibility_reason(host_build, wrong_builds[0], isolation)
        summary = _(
            "{reason}. Use the {tag} tag of the image, or pin the workload to nodes of "
            "build {build}."
        ).format(reason=reason, tag=suggestion, build=windows.describe_build(wrong_builds[0]))
    else:
        summary = _(
            "The container runtime reports that an image's Windows version does not match the "
            "node ({host}); the tags do not say which build they are, so check the image's "
            "os.version (and the pause image, see pause-image). Images for this node use the "
            "{tag} tag."
        ).format(host=host, tag=suggestion)
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Container image built for another Windows version"),
            summary,
            tuple(evidence),
            (offer("pin-windows-build", target.ref),),
            DOCS,
        )
    ]


def _isolation(context: Context) -> tuple[windows.Isolation, str | None]:
    """The build rule for this pod, and the evidence for it when it is not the usual one."""
    assert context.pod is not None and context.node is not None
    runtime_class = (context.pod.get("spec") or {}).get("runtimeClassName")
    runtime = context.container_runtime
    isolation = windows.isolation_for_runtime(runtime)
    note = (
        _(
            "node runtime {runtime}: containerd before 1.7.6 runs only images of the host's "
            "exact build"
        ).format(runtime=runtime)
        if isolation == "process-exact"
        else None
    )
    if not runtime_class:
        return isolation, note
    try:
        handler = (context.runtime_class(str(runtime_class)).get("handler")) or ""
    except WinpodError as exc:
        return isolation, _("runtimeClassName {name}: could not read it ({error})").format(
            name=runtime_class, error=exc
        )
    if handler == windows.HYPERV_RUNTIME_HANDLER:
        return "hyperv", _(
            "runtimeClassName {name}: handler {handler} (Hyper-V isolation, which runs the "
            "host's build and older ones)"
        ).format(name=runtime_class, handler=handler)
    return isolation, note
