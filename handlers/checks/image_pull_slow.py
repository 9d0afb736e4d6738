"""`image-pull-slow`: multi-GB Windows images whose pull outlasts containerd's progress timeout."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from handlers import knowledge, windows
from handlers.context import Context, event_line, pod_images
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check, not_applicable
from handlers.transports import KubeObject

CHECK_ID = "image-pull-slow"
DOCS = (
    "https://github.com/containerd/containerd/blob/main/docs/cri/config.md",
    "https://github.com/Mirantis/cri-dockerd/issues/372",
    "https://github.com/kubernetes/kubernetes/issues/116020",
    "https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy",
)
# A pull cut off by the runtime: containerd's progress timeout cancels its context
# ("cancel pulling image … because of no progress in 1m0s", "… context canceled").
PULL_CANCELLED = re.compile(
    r"context canceled|context deadline exceeded|because of no progress|"  # i18n: regex
    r"no progress (?:in|for) \d|progress (?:timeout|deadline)|"
    r"image_pull_progress_timeout|image-pull-progress-deadline",
    re.I,
)
IMAGE_GC_FAILED = re.compile(
    r"failed to garbage collect required amount of images",  # i18n: kubelet's event text
    re.I,
)
# `Pulling` this long ago with no `Pulled` since: stuck, whatever the runtime says.
SLOW_PULL = timedelta(minutes=10)
_QUOTED_IMAGE = re.compile(r"image \\?\"(?P<image>[^\"\\]+)\\?\"", re.I)
_PULL_SECONDS = re.compile(
    r"Successfully pulled image .*? in (?P<duration>[\dhms.]+)",  # i18n: kubelet's event text
    re.I,
)
GIB = 2**30


def _when(event: KubeObject, field: str) -> datetime | None:
    value = (
        event.get(field)
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def containerd_setting(runtime: str) -> str:
    """Where the node's runtime sets the pull progress timeout, and its default there."""
    name, version = knowledge.runtime_version(runtime)
    config = r"C:\Program Files\containerd\config.toml"
    if name == "docker":
        return _(
            "cri-dockerd cancels a pull without progress after --image-pull-progress-deadline "
            "(default 1m): raise it on the cri-dockerd service"
        )
    if version is not None and version[0] >= 2:
        return _(
            "containerd {version} cancels a pull without progress after "
            "image_pull_progress_timeout (default 5m in 2.x): in {config} set "
            "[plugins.'io.containerd.cri.v1.images'] image_pull_progress_timeout = '15m0s', then "
            "restart containerd"
        ).format(version=knowledge.version_text(version), config=config)
    shown = knowledge.version_text(version) if version else "1.x"
    return _(
        "containerd {version} cancels a pull without progress after "
        'image_pull_progress_timeout (default 1m in 1.x): in {config} set [plugins."io.containerd'
        '.grpc.v1.cri"] image_pull_progress_timeout = "15m0s", then restart containerd'
    ).format(version=shown, config=config)


def prepull_daemonset(image: str, namespace: str, windows_build: str | None) -> str:
    """A DaemonSet that pulls `image` onto every matching Windows node ahead of the workload."""
    repository = windows.parse_image(image).repository.rsplit("/", 1)[-1]
    name = "prepull-" + re.sub(r"[^a-z0-9-]+", "-", repository.lower()).strip("-")[:40]
    selector: dict[str, str] = {"kubernetes.io/os": "windows"}
    if windows_build:
        selector["node.kubernetes.io/windows-build"] = windows_build
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": selector,
                    "tolerations": [{"key": "os", "operator": "Equal", "value": "windows"}],
                    # The init container only pulls the image; the pause keeps the pod cheap.
                    "initContainers": [
                        {"name": "pull", "image": image, "command": ["cmd", "/c", "exit", "0"]}
                    ],
                    "containers": [
                        {
                            "name": "pause",
                            "image": windows.RECOMMENDED_PAUSE_IMAGE,
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }
    # Flow style on one line: it stays valid YAML however a renderer wraps it at spaces.
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=True, width=2**16).strip()


@check(
    CHECK_ID,
    title=N_("Slow image pulls"),
    scopes=("pod", "node"),
    explanation=Explanation(
        cause=(
            N_(
                "Windows images are several GB (Server Core layers alone are gigabytes), and "
                "extracting them can take longer than containerd waits for pull progress "
                "(image_pull_progress_timeout: 1m in containerd 1.x, 5m in 2.x); the pull is then "
                "cancelled ('context canceled') and retried from the start. Disks full of such "
                "images also make image garbage collection fail (ImageGCFailed)."
            )
        ),
        signals=(
            N_("event Failed: … failed to pull and unpack image … context canceled"),
            N_("containerd: cancel pulling image … because of no progress in 1m0s"),
            N_("event Pulling long ago with no Pulled since, pod still waiting"),
            N_("node event ImageGCFailed: failed to garbage collect required amount of images"),
            N_("node status images[].sizeBytes of the image"),
        ),
        fixes=(
            N_('containerd 1.x: [plugins."io.containerd.grpc.v1.cri"] image_pull_progress_timeout'),
            N_(
                "containerd 2.x: [plugins.'io.containerd.cri.v1.images'] "
                "image_pull_progress_timeout"
            ),
            N_("pre-pull the image on every Windows node with a DaemonSet (shown in the finding)"),
            N_("share base image tags between workloads; keep images small; give nodes more disk"),
        ),
        links=DOCS,
    ),
)
def image_pull_slow(context: Context) -> list[Finding]:
    if not context.windows_node or context.node is None:
        return not_applicable(CHECK_ID, N_("not on a Windows node"))
    node = context.node
    runtime = context.container_runtime
    gc_failures = [
        e
        for e in context.node_events()
        if e.get("reason") == "ImageGCFailed" or IMAGE_GC_FAILED.search(str(e.get("message", "")))
    ]
    evidence = [event_line(e) for e in gc_failures[:2]]
    if context.kind == "Pod":
        assert context.pod is not None
        namespace = str(context.pod["metadata"].get("namespace") or "default")
        slow_images, pull_evidence = _slow_pulls(context)
    else:
        namespace, slow_images, pull_evidence = _cancelled_on_node(context)
    evidence = pull_evidence + evidence
    if not slow_images and not gc_failures:
        return [_quiet(context)]
    evidence.extend(_sizes(node, slow_images))
    evidence.append(f"node {context.node_name} runtime {runtime or '(not reported)'}")
    setting = containerd_setting(runtime)
    if not slow_images:
        return [
            Finding(
                CHECK_ID,
                "warning",
                _("Image garbage collection fails on the node"),
                _(
                    "The kubelet cannot free enough disk for images on {node_name}: large "
                    "Windows images fill it and new pulls will fail. Share base image tags "
                    "between workloads, remove unused images, or give the nodes larger "
                    "disks. When pulls are also cut off: {setting}."
                ).format(node_name=context.node_name, setting=setting),
                tuple(evidence),
                (),
                DOCS,
            )
        ]
    labels = (node.get("metadata") or {}).get("labels") or {}
    daemonset = prepull_daemonset(
        slow_images[0], namespace, labels.get("node.kubernetes.io/windows-build")
    )
    return [
        Finding(
            CHECK_ID,
            # on a node diagnosis the node works; its pods carry the errors
            "error" if context.kind == "Pod" else "warning",
            _("Image pull cut off before it finished"),
            _(
                "The pull of {image} does not finish: Windows images are several GB "
                "and extracting them outlasts the runtime's progress timeout. "
                "{setting}. Or pre-pull the image on the Windows nodes with a "
                "DaemonSet (kubectl apply -f -): {daemonset}"
            ).format(image=slow_images[0], setting=setting, daemonset=daemonset),
            tuple(evidence),
            (),
            DOCS,
        )
    ]


def _slow_pulls(context: Context) -> tuple[list[str], list[str]]:
    """Images of this pod whose pull was cancelled or has been running for too long."""
    assert context.pod is not None
    events = context.pod_events()
    images: list[str] = []
    evidence: list[str] = []
    for event in events:
        message = str(event.get("message", ""))
        if "pull" in message.lower() and PULL_CANCELLED.search(message):
            images.append(_image_in(message) or _first_image(context.pod))
            evidence.append(event_line(event))
    if (context.pod.get("status") or {}).get("phase") != "Running":
        now = datetime.now(UTC)
        pulled = {
            _image_in(str(e.get("message", ""))) for e in events if e.get("reason") == "Pulled"
        }
        for event in events:
            if event.get("reason") != "Pulling":
                continue
            image = _image_in(str(event.get("message", ""))) or _first_image(context.pod)
            started = _when(event, "firstTimestamp")
            if image in pulled or started is None or now - started < SLOW_PULL:
                continue
            minutes = int((now - started).total_seconds() // 60)
            images.append(image)
            evidence.append(
                _("{event} (started {minutes} min ago, no Pulled event since)").format(
                    event=event_line(event), minutes=minutes
                )
            )
    return list(dict.fromkeys(images)), evidence[:4]


def _cancelled_on_node(context: Context) -> tuple[str, list[str], list[str]]:
    """(namespace of the first, images, evidence) of pulls cut off in this node's pods."""
    cancelled = [
        e
        for e in context.node_pod_warnings()
        if "pull" in str(e.get("message", "")).lower()
        and PULL_CANCELLED.search(str(e.get("message", "")))
    ]
    images = [_image_in(str(e.get("message", ""))) for e in cancelled]
    namespace = (
        str((cancelled[0].get("involvedObject") or {}).get("namespace") or "default")
        if cancelled
        else "default"
    )
    evidence = [
        _("pod {pod}: {event}").format(
            pod=f"{(e.get('involvedObject') or {}).get('namespace')}/"
            f"{(e.get('involvedObject') or {}).get('name')}",
            event=event_line(e),
        )
        for e in cancelled[:3]
    ]
    return namespace, list(dict.fromkeys(i for i in images if i)), evidence


def _image_in(message: str) -> str | None:
    match = _QUOTED_IMAGE.search(message)
    return match["image"] if match else None


def _first_image(pod: KubeObject) -> str:
    images = pod_images(pod)
    return images[-1][1] if images else _("the image")


def _sizes(node: KubeObject, images: list[str]) -> list[str]:
    """Image sizes the node reports (status.images) for these images."""
    found = []
    for entry in (node.get("status") or {}).get("images") or []:
        names = entry.get("names") or []
        if any(image in name for image in images for name in names) and entry.get("sizeBytes"):
            size = int(entry["sizeBytes"]) / GIB
            found.append(
                _("image size on node: {image} is {size} GiB").format(
                    image=names[-1], size=f"{size:.1f}"
                )
            )
    return found


def _quiet(context: Context) -> Finding:
    if context.kind == "Pod":
        assert context.pod is not None
        pulled = [
            e
            for e in context.pod_events()
            if e.get("reason") == "Pulled" and _PULL_SECONDS.search(str(e.get("message", "")))
        ]
        if pulled:
            return Finding(
                CHECK_ID,
                "ok",
                _("Images pulled"),
                _("the pod's images finished pulling"),
                tuple(event_line(e) for e in pulled[:2]),
            )
    return Finding(CHECK_ID, "ok", _("No slow image pulls"), _("no pull was cut off or is stuck"))
