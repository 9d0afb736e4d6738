"""`pause-image`: the pod sandbox (pause) image is wrong, missing or not pullable for the node."""

from __future__ import annotations

from handlers import windows
from handlers.context import Context
from handlers.errors import WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable, offer

CHECK_ID = "pause-image"
DOCS = (
    "https://kubernetes.io/docs/concepts/windows/intro/#pause-container",
    "https://github.com/kubernetes/kubernetes/issues/99157",
    "https://github.com/kubernetes/kubernetes/blob/master/build/pause/CHANGELOG.md",
)


@check(
    CHECK_ID,
    title=N_("Pause (sandbox) image"),
    scopes=("pod", "node"),
    explanation=Explanation(
        # The image named here is windows.RECOMMENDED_PAUSE_IMAGE (a test holds them equal).
        cause=N_(
            "Every pod starts from a pause (sandbox) image configured in containerd. On Windows "
            "it must be a multi-arch image with a variant for the node's build, such as "
            "mcr.microsoft.com/oss/kubernetes/pause:3.6; otherwise every pod on the node stays "
            "in ContainerCreating."
        ),
        signals=(
            N_('event: failed to get sandbox image "<image>": failed to pull image …'),
            N_(
                "event FailedCreatePodSandBox (does not say whether pause or app image is at fault)"
            ),
            N_("node: containerd sandbox_image / pinned_images.sandbox vs the node build"),
            N_(
                "pause versions and their Windows variants: 3.4 added 1809-2004, 3.6 ltsc2022, "
                "3.7 dropped 1903/1909/2004, 3.9 dropped 20H2, 3.10.2 added ltsc2025"
            ),
        ),
        fixes=(
            N_('containerd 1.x: sandbox_image under plugins."io.containerd.grpc.v1.cri"'),
            N_("containerd 2.x: plugins.'io.containerd.cri.v1.images'.pinned_images.sandbox"),
            N_(
                "use mcr.microsoft.com/oss/kubernetes/pause:3.6 or registry.k8s.io/pause:3.6 "
                "and later, then restart containerd"
            ),
        ),
        links=DOCS,
    ),
)
def pause_image(context: Context) -> list[Finding]:
    host_build = context.build
    if not context.windows_node or host_build is None:
        return not_applicable(CHECK_ID, N_("not a Windows node"))
    node = context.node_name or ""
    isolation = windows.isolation_for_runtime(context.container_runtime)
    evidence: list[str] = []
    event_images: list[str] = []
    if context.kind == "Pod":
        assert context.pod is not None
        if (context.pod.get("status") or {}).get("phase") == "Running":
            return [
                Finding(
                    CHECK_ID,
                    "ok",
                    _("Pod sandbox is running"),
                    _("the pod runs, so its pause image was pulled and started"),
                )
            ]
        for event in context.pod_events():
            message = str(event.get("message", ""))
            image = windows.sandbox_image_from_message(message)
            if image:
                event_images.append(image)
                evidence.append(
                    _("event {reason}: {message}").format(
                        reason=event.get("reason"), message=message
                    )
                )
    try:
        configured = str(context.node_status().get("sandboxImage") or "")
        problem = windows.pause_image_problem(configured, host_build, isolation)
        evidence.insert(
            0,
            _("containerd sandbox image on {node}: {image}").format(
                node=node, image=configured or _("(not set)")
            ),
        )
    except WinpodError as exc:
        configured, problem = "", None
        if not event_images:
            return [
                Finding(
                    CHECK_ID,
                    "warning",
                    _("Could not check the pause image"),
                    _("reading the node's containerd configuration failed: {exc}").format(exc=exc),
                )
            ]
        evidence.append(
            _("could not read the node's containerd configuration: {error}").format(error=exc)
        )
    if problem is None and not event_images:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("Pause image fits the node"),
                _("{configured} has a variant for {build}").format(
                    configured=configured, build=windows.describe_build(host_build)
                ),
                tuple(evidence),
            )
        ]
    summary = problem or _("containerd could not get the sandbox image {image} for {build}").format(
        image=event_images[0], build=windows.describe_build(host_build)
    )
    return [
        Finding(
            CHECK_ID,
            "error",
            _("Wrong pause (sandbox) image"),
            _(
                "{summary}. Configure {image} in containerd and "
                "restart it; until then no pod can start on this node."
            ).format(
                summary=summary,
                image=windows.recommended_pause_image(host_build, isolation),
            ),
            tuple(evidence),
            (offer("fix-sandbox-image", node),),
            DOCS,
        )
    ]
