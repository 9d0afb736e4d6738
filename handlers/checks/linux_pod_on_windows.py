"""`linux-pod-on-windows`: a Linux image scheduled onto a Windows node."""

from __future__ import annotations

from handlers import windows
from handlers.context import Context, pod_images
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable, offer

CHECK_ID = "linux-pod-on-windows"
DOCS = (
    "https://kubernetes.io/docs/concepts/windows/user-guide/#ensuring-os-specific-workloads-land-on-the-appropriate-container-host",
)


@check(
    CHECK_ID,
    title=N_("Linux image on a Windows node"),
    scopes=("pod",),
    explanation=Explanation(
        cause=(
            N_(
                "Without a kubernetes.io/os nodeSelector (or a taint on the Windows pool) the "
                "scheduler may place a Linux pod on a Windows node, where its image cannot be "
                "pulled "
                "or started. spec.os.name does not steer scheduling."
            )
        ),
        signals=(
            N_('pull: image operating system "linux" cannot be used on this platform'),
            N_("pull: no match for platform in manifest (for a Linux-only image)"),
            N_("no kubernetes.io/os nodeSelector, on a node labelled kubernetes.io/os=windows"),
        ),
        fixes=(
            N_(
                "add nodeSelector kubernetes.io/os: linux to Linux workloads (remediation "
                "pin-windows-build sets the right selector)"
            ),
            N_("taint the Windows pool os=windows:NoSchedule and tolerate it only in Windows pods"),
        ),
        links=DOCS,
    ),
)
def linux_pod_on_windows(context: Context) -> list[Finding]:
    assert context.pod is not None
    if not context.windows_node:
        return not_applicable(CHECK_ID, N_("the pod is not on a Windows node"))
    spec = context.pod.get("spec") or {}
    selector = (spec.get("nodeSelector") or {}).get("kubernetes.io/os")
    linux_events = [
        e
        for e in context.pod_events()
        if windows.classify_event_message(str(e.get("message", ""))) == "linux-image"
    ]
    platform_events = [
        e
        for e in context.pod_events()
        if windows.classify_event_message(str(e.get("message", ""))) == "os-mismatch"
    ]
    linux_images = [
        (name, image)
        for name, image in pod_images(context.pod)
        if windows.looks_like_linux_image(image)
    ]
    if not linux_events and not (linux_images and (platform_events or selector != "windows")):
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("No Linux image on this Windows node"),
                _("the images are Windows images or multi-arch ones"),
            )
        ]
    evidence = [
        _("container {name}: image {image} is a Linux image").format(name=name, image=image)
        for name, image in linux_images
    ]
    evidence.extend(
        _("event {reason}: {message}").format(reason=e.get("reason"), message=e.get("message"))
        for e in [*linux_events, *platform_events][:3]
    )
    evidence.append(
        f"nodeSelector kubernetes.io/os: {selector}"
        if selector
        else _("the pod has no kubernetes.io/os nodeSelector")
    )
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Linux pod scheduled onto a Windows node"),
            _(
                "Node {node_name} runs Windows, which cannot run a Linux image. Give "
                "the workload the nodeSelector kubernetes.io/os: linux (and taint the "
                "Windows pool) so it lands on a Linux node."
            ).format(node_name=context.node_name),
            tuple(evidence),
            (offer("pin-windows-build", context.target.ref),),
            DOCS,
        )
    ]
