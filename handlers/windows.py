"""Knowledge of Windows builds: which node runs which image, and how runtime events say it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from handlers.i18n import _


@dataclass(frozen=True)
class WindowsRelease:
    """A Windows Server release: its build number, product name and usual image tags."""

    build: int
    name: str
    tags: tuple[str, ...]
    ltsc: bool


WINDOWS_RELEASES: tuple[WindowsRelease, ...] = (
    WindowsRelease(14393, "Windows Server 2016 / 1607", ("ltsc2016", "1607", "sac2016"), ltsc=True),
    WindowsRelease(16299, "Windows Server 1709", ("1709",), ltsc=False),
    WindowsRelease(17134, "Windows Server 1803", ("1803",), ltsc=False),
    WindowsRelease(17763, "Windows Server 2019 / 1809", ("ltsc2019", "1809"), ltsc=True),
    WindowsRelease(18362, "Windows Server 1903", ("1903",), ltsc=False),
    WindowsRelease(18363, "Windows Server 1909", ("1909",), ltsc=False),
    WindowsRelease(19041, "Windows Server 2004", ("2004",), ltsc=False),
    WindowsRelease(19042, "Windows Server 20H2", ("20H2",), ltsc=False),
    WindowsRelease(20348, "Windows Server 2022", ("ltsc2022",), ltsc=True),
    # The annual channel publishes no base images of its own; it runs ltsc2022 images.
    WindowsRelease(25398, "Windows Server Annual Channel 23H2", (), ltsc=False),  # i18n: a name
    WindowsRelease(26100, "Windows Server 2025", ("ltsc2025",), ltsc=True),
)

_RELEASE_BY_BUILD = {release.build: release for release in WINDOWS_RELEASES}
_BUILD_BY_TAG = {tag.lower(): release.build for release in WINDOWS_RELEASES for tag in release.tags}

# The first build whose hosts accept images of other builds (containerd's stable-ABI rule).
LTSC2022_BUILD = 20348


def release_for_build(build: int) -> WindowsRelease | None:
    """The known release with this build number, or None."""
    return _RELEASE_BY_BUILD.get(build)


def describe_build(build: int) -> str:
    """A build as people name it, e.g. "17763 (Windows Server 2019 / 1809)"."""
    release = release_for_build(build)
    if release is None:
        return _("build {build} (unknown release)").format(build=build)
    return f"{build} ({release.name})"


def _describe_image_build(build: int) -> str:
    """A build as image tags name it, e.g. "20348 (ltsc2022)"."""
    release = release_for_build(build)
    if release is None or not release.tags:
        return describe_build(build)
    return f"{build} ({release.tags[0]})"


# Windows builds have five digits; requiring them keeps Linux kernels ("5.15.0-…") out.
_KERNEL_VERSION = re.compile(r"10\.0[.\s]\s*(?P<build>\d{5})(?!\d)")
_BUILD_LABEL = re.compile(r"10\.0\.(?P<build>\d{5})(?:\.\d+)?")


def build_from_kernel_version(kernel_version: str) -> int | None:
    """The build in a node's `nodeInfo.kernelVersion`, or None for a non-Windows kernel.

    Accepts "10.0.17763.2061" (containerd era) and
    "10.0 14393 (14393.1715.amd64fre.rs1_release_inf.170807-1720)" (docker era).
    """
    match = _KERNEL_VERSION.match(kernel_version.strip())
    return int(match["build"]) if match else None


_KERNEL_REVISION = re.compile(r"10\.0\.\d{5}\.(?P<revision>\d+)|\(\d{5}\.(?P<docker>\d+)\.")


def revision_from_kernel_version(kernel_version: str) -> int | None:
    """The update revision in a `kernelVersion`: 2582 in "10.0.20348.2582", 1715 in the
    docker-era "10.0 14393 (14393.1715.amd64fre…)"; None when it names none."""
    match = _KERNEL_REVISION.search(kernel_version.strip())
    if match is None:
        return None
    return int(match["revision"] or match["docker"])


def build_from_label(label_value: str) -> int | None:
    """The build in a `node.kubernetes.io/windows-build` label value such as "10.0.17763"."""
    match = _BUILD_LABEL.fullmatch(label_value.strip())
    return int(match["build"]) if match else None


@dataclass(frozen=True)
class ImageRef:
    """A container image reference split into its parts, Docker's defaults filled in.

    `tag` is None only when the image is pinned by digest alone.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """Registry and repository, e.g. "docker.io/library/nginx"."""
        return f"{self.registry}/{self.repository}"


_DEFAULT_REGISTRY = "docker.io"


def parse_image(ref: str) -> ImageRef:
    """Split an image reference; raises ValueError when it names no repository."""
    name, _at, digest = ref.strip().partition("@")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    first, slash, rest = name.partition("/")
    # Docker's rule: the first component is a registry only if it looks like a host name.
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = _DEFAULT_REGISTRY, name
    if registry == "index.docker.io":
        registry = _DEFAULT_REGISTRY
    if registry == _DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or repository.endswith("/") or tag == "":
        raise ValueError(f"not an image reference: {ref!r}")  # i18n: callers word it
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, repository, tag, digest or None)


# A release tag counts only as a whole token (bounded by -, _, . or the ends of the tag) and
# not as part of a dotted number, so that "1.18.09", "2.1.1803" or "20240101" are no builds.
_RELEASE_TAG_TOKEN = re.compile(
    r"(?<![a-z0-9])(?<!\d\.)("
    + "|".join(re.escape(tag) for tag in sorted(_BUILD_BY_TAG, key=len, reverse=True))
    + r")(?![a-z0-9])(?!\.\d)",
    re.IGNORECASE,
)
_FULL_VERSION_TOKEN = re.compile(
    r"(?<![a-z0-9.])10\.0\.(\d{5})(?:\.\d+)?(?![a-z0-9.])", re.IGNORECASE
)


def build_from_tag(tag: str) -> int | None:
    """The Windows build an image tag names by convention, or None if it names none.

    A full version ("10.0.17763.437") wins over a release name ("ltsc2019", "1809", "20H2").
    """
    full_version = _FULL_VERSION_TOKEN.search(tag)
    if full_version:
        return int(full_version[1])
    release_tag = _RELEASE_TAG_TOKEN.search(tag)
    return _BUILD_BY_TAG[release_tag[1].lower()] if release_tag else None


def image_build(ref: str) -> int | None:
    """The Windows build an image reference's tag names, or None."""
    try:
        tag = parse_image(ref).tag
    except ValueError:
        return None
    return build_from_tag(tag) if tag else None


# The pause repositories whose images are multi-arch, with Windows variants from 3.4 on.
MULTI_ARCH_PAUSE_REPOSITORIES = frozenset(
    {"registry.k8s.io/pause", "k8s.gcr.io/pause", "mcr.microsoft.com/oss/kubernetes/pause"}
)
_KUBERNETES_REGISTRIES = frozenset({"registry.k8s.io", "k8s.gcr.io"})
# Images on the Kubernetes registries that also ship Windows variants.
_KUBERNETES_IMAGES_WITH_WINDOWS = frozenset(
    {
        "sig-storage/csi-node-driver-registrar",
        "sig-storage/livenessprobe",
        "sig-storage/smbplugin",
        "cloud-provider-azure/azure-cloud-node-manager",
    }
)
# Docker official images whose shared tags include Windows variants.
_OFFICIAL_IMAGES_WITH_WINDOWS = frozenset(
    {
        "docker",
        "eclipse-temurin",
        "golang",
        "hello-world",
        "julia",
        "mongo",
        "openjdk",
        "pypy",
        "python",
    }
)
_LINUX_ONLY_NAMES = frozenset(
    {
        "alpine",
        "busybox",
        "centos",
        "debian",
        "fedora",
        "httpd",
        "mariadb",
        "memcached",
        "mysql",
        "nginx",
        "postgres",
        "redis",
        "ubuntu",
    }
)
_WINDOWS_WORDS = ("windows", "nanoserver", "servercore")


def looks_like_linux_image(ref: str) -> bool:
    """Whether the image is a well-known Linux-only one.

    A heuristic on the reference alone — a name says nothing certain about the platforms in an
    image index — so use it only together with a runtime event text that already points at the
    image's platform (see `classify_event_message`).
    """
    try:
        image = parse_image(ref)
    except ValueError:
        return False
    tag = (image.tag or "").lower()
    repository = image.repository.lower()
    registry = image.registry.lower()
    if build_from_tag(tag) is not None or any(
        word in repository or word in tag for word in _WINDOWS_WORDS
    ):
        return False
    if f"{registry}/{repository}" in MULTI_ARCH_PAUSE_REPOSITORIES:
        return False
    if registry in _KUBERNETES_REGISTRIES:
        return not (
            repository in _KUBERNETES_IMAGES_WITH_WINDOWS
            or repository.startswith("e2e-test-images/")
        )
    if registry == _DEFAULT_REGISTRY and repository.startswith("library/"):
        return repository.removeprefix("library/") not in _OFFICIAL_IMAGES_WITH_WINDOWS
    return repository.rsplit("/", 1)[-1] in _LINUX_ONLY_NAMES


# How the runtime starts a pod's containers, which decides the image build rule:
# "process" containerd 1.7.6+ and 2.x; "process-exact" containerd before 1.7.6 (and Docker);
# "hyperv" a RuntimeClass with handler runhcs-wcow-hypervisor (Hyper-V isolation).
Isolation = Literal["process", "process-exact", "hyperv"]
# containerd accepts images from 20348 up to the host build from 1.7.6 on (the backport
# containerd#9069) and in 2.x; 1.6 and 1.7.0-1.7.5 match the host build exactly (containerd#7439).
FIRST_RELAXED_CONTAINERD = (1, 7, 6)
HYPERV_RUNTIME_HANDLER = "runhcs-wcow-hypervisor"
_RUNTIME_VERSION = re.compile(r"^(?P<name>[\w.-]+)://v?(?P<version>\d+(?:\.\d+){0,2})")


def isolation_for_runtime(container_runtime_version: str) -> Isolation:
    """The process-isolation rule of a node's `nodeInfo.containerRuntimeVersion`.

    "containerd://1.7.5" and "docker://20.10.9" match builds exactly; "containerd://1.7.6",
    "containerd://2.0.0" (and a runtime that reports no version) use the relaxed rule.
    """
    match = _RUNTIME_VERSION.match(container_runtime_version.strip().lower())
    if match is None:
        return "process"
    if match["name"] == "docker":
        return "process-exact"
    parts = tuple(int(p) for p in match["version"].split("."))
    parts = parts + (0,) * (3 - len(parts))
    if match["name"] == "containerd" and parts < FIRST_RELAXED_CONTAINERD:
        return "process-exact"
    return "process"


def can_run(host_build: int, image_build: int, isolation: Isolation = "process") -> bool:
    """Whether a node of `host_build` runs an image of `image_build`.

    Process isolation on containerd 1.7.6+ / 2.x: before Windows Server 2022 the builds must be
    equal; from 20348 on, a host runs every image from 20348 up to its own build (a 26100 host
    runs ltsc2022 and ltsc2025 images, never ltsc2019). Older runtimes ("process-exact") need
    equal builds everywhere. Hyper-V isolation runs the host's build and older ones, never newer.
    """
    if isolation == "hyperv":
        return image_build <= host_build
    if host_build < LTSC2022_BUILD or isolation == "process-exact":
        return image_build == host_build
    return LTSC2022_BUILD <= image_build <= host_build


def compatibility_reason(
    host_build: int, image_build: int, isolation: Isolation = "process"
) -> str:
    """One sentence on why a node of `host_build` does or does not run an `image_build` image."""
    image, node = _describe_image_build(image_build), describe_build(host_build)
    builds = _("the image is {image}, the node is {node}").format(image=image, node=node)
    if isolation == "hyperv":
        rule = _("Hyper-V isolation runs images of the host's build and older ones, never newer")
        return _("{rule}: {builds}").format(rule=rule, builds=builds)
    if isolation == "process-exact" and host_build >= LTSC2022_BUILD:
        rule = _(
            "containerd before 1.7.6 needs the image build to equal the host build "
            "(later versions accept 20348 up to the host build)"
        )
        if image_build == host_build:
            return _("{rule}, and it does: {builds}").format(rule=rule, builds=builds)
        return _("{rule}: {builds}").format(rule=rule, builds=builds)
    if host_build < LTSC2022_BUILD:
        rule = _(
            "process isolation before Windows Server 2022 needs the image build to equal "
            "the host build"
        )
        if image_build == host_build:
            return _("{rule}, and it does: {builds}").format(rule=rule, builds=builds)
        return _("{rule}: {builds}").format(rule=rule, builds=builds)
    window = _(
        "from Windows Server 2022 on, a node runs images built for {build} (ltsc2022) "
        "up to its own build"
    ).format(build=LTSC2022_BUILD)
    if image_build < LTSC2022_BUILD:
        return _("{rule}, never older ones: {builds}").format(rule=window, builds=builds)
    if image_build > host_build:
        return _("{rule}, never newer ones: {builds}").format(rule=window, builds=builds)
    return _("{rule}: {builds}").format(rule=window, builds=builds)


def suggest_tag(host_build: int) -> str | None:
    """The base-image tag to build for a node of `host_build`, or None if no tag fits it.

    A release's own tag when it has one, else the newest tag the host can run (so the 23H2
    annual channel gets "ltsc2022").
    """
    release = release_for_build(host_build)
    if release is not None and release.tags:
        return release.tags[0]
    runnable = [r for r in WINDOWS_RELEASES if r.tags and can_run(host_build, r.build)]
    return runnable[-1].tags[0] if runnable else None


# The Windows variants in the multi-arch pause image's index, as each version changed them
# (kubernetes/kubernetes build/pause/CHANGELOG.md): (version, builds added, builds removed).
PAUSE_WINDOWS_CHANGES: tuple[tuple[tuple[int, ...], frozenset[int], frozenset[int]], ...] = (
    ((3, 4), frozenset({17763, 18362, 18363, 19041}), frozenset()),
    ((3, 4, 1), frozenset({19042}), frozenset()),
    ((3, 6), frozenset({20348}), frozenset()),
    ((3, 7), frozenset(), frozenset({18362, 18363, 19041})),  # 1903, 1909, 2004 dropped
    ((3, 9), frozenset(), frozenset({19042})),  # 20H2 dropped
    ((3, 10, 2), frozenset({26100}), frozenset()),  # ltsc2025 added (k/k#136960)
)
GOOD_PAUSE_IMAGES = ("registry.k8s.io/pause:3.6", "mcr.microsoft.com/oss/kubernetes/pause:3.6")
# 3.6 is the first pause with a Windows Server 2022 variant and still has 1809 and the
# semi-annual releases, so it fits every build from 17763 on (2025 hosts run its ltsc2022
# variant on containerd 1.7.6+); MCR because Windows nodes already pull their base layers there.
RECOMMENDED_PAUSE_IMAGE = "mcr.microsoft.com/oss/kubernetes/pause:3.6"
# The first pause with a variant of 26100 itself, for runtimes that need the exact build.
LTSC2025_PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"
_PAUSE_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_FIRST_MULTI_ARCH_PAUSE_HOST = 17763


def pause_windows_variants(version: tuple[int, ...]) -> frozenset[int]:
    """The Windows builds the multi-arch pause image of `version` has variants for."""
    variants: frozenset[int] = frozenset()
    for changed_in, added, removed in PAUSE_WINDOWS_CHANGES:
        if version >= changed_in:
            variants = (variants | added) - removed
    return variants


def _pause_variant_for(
    version: tuple[int, ...], host_build: int, isolation: Isolation
) -> int | None:
    runnable = [b for b in pause_windows_variants(version) if can_run(host_build, b, isolation)]
    return max(runnable) if runnable else None


def recommended_pause_image(host_build: int, isolation: Isolation = "process") -> str:
    """The sandbox image to configure on a node of `host_build`.

    One image for every build Kubernetes supports on Windows (17763 and later), except a 2025
    host on a runtime that needs the exact build; older builds have no public pause image, and
    `pause_image_problem` says so for them.
    """
    if _pause_variant_for((3, 6), host_build, isolation) is None and host_build >= 26100:
        return LTSC2025_PAUSE_IMAGE
    return RECOMMENDED_PAUSE_IMAGE


def _builds_text(builds: frozenset[int]) -> str:
    return ", ".join(_describe_image_build(b) for b in sorted(builds)) or "none"


def pause_image_problem(
    image: str, host_build: int, isolation: Isolation = "process"
) -> str | None:
    """Why the configured sandbox (pause) image cannot run on a node of `host_build`, or None."""
    recommended = recommended_pause_image(host_build, isolation)
    if not image.strip():
        return _("no sandbox (pause) image is configured; set one such as {image}").format(
            image=recommended
        )
    try:
        ref = parse_image(image)
    except ValueError:
        return _("the sandbox image {image} is not an image reference; use {recommended}").format(
            image=repr(image), recommended=recommended
        )
    tag_build = build_from_tag(ref.tag) if ref.tag else None
    if tag_build is not None:
        if can_run(host_build, tag_build, isolation):
            return None
        return _("the sandbox image {image} cannot run on this node: {reason}").format(
            image=image, reason=compatibility_reason(host_build, tag_build, isolation)
        )
    # pause-amd64 and its siblings are the per-architecture Linux builds of the pause image.
    arch_specific = re.search(r"(^|/)pause-(amd64|arm64|arm|ppc64le|s390x)$", ref.name.lower())
    if looks_like_linux_image(image) or arch_specific:
        return _(
            "the sandbox image {image} is Linux-only; use a multi-arch one such as {recommended}"
        ).format(image=image, recommended=recommended)
    if ref.name.lower() not in MULTI_ARCH_PAUSE_REPOSITORIES:
        return None
    if host_build < _FIRST_MULTI_ARCH_PAUSE_HOST:
        return _(
            "the multi-arch pause images have Windows variants only from {first} on, none for "
            "{build}: build a pause image from the host's own base image"
        ).format(
            first=describe_build(_FIRST_MULTI_ARCH_PAUSE_HOST), build=describe_build(host_build)
        )
    match = _PAUSE_VERSION.match(ref.tag or "")
    if match is None:
        return None
    version = tuple(int(part) for part in match.groups() if part is not None)
    variants = pause_windows_variants(version)
    if not variants:
        return _(
            "the sandbox image {image} predates Windows support in the pause image (added in "
            "3.4); use {recommended}"
        ).format(image=image, recommended=recommended)
    if _pause_variant_for(version, host_build, isolation) is not None:
        return None
    if host_build >= LTSC2022_BUILD and LTSC2022_BUILD not in variants:
        return _(
            "the sandbox image {image} has no Windows Server 2022 variant (added in pause 3.6), "
            "which {build} needs; use {recommended}"
        ).format(image=image, build=describe_build(host_build), recommended=recommended)
    return _(
        "the sandbox image {image} has Windows variants for {variants}, none that {build} runs "
        "(pause 3.7 dropped 1903, 1909 and 2004, 3.9 dropped 20H2; 3.10.2 added ltsc2025); use "
        "{recommended}"
    ).format(
        image=image,
        variants=_builds_text(variants),
        build=describe_build(host_build),
        recommended=recommended,
    )


_I = re.IGNORECASE
EventKind = Literal["os-mismatch", "linux-image", "sandbox-image"]
# Texts that say outright that the image is a Linux one.
LINUX_IMAGE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"image operating system \\?\"linux\\?\" cannot be used on this platform",  # i18n: regex
        _I,
    ),
)
OS_MISMATCH_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"container operating system does not match the host operating system",  # i18n: regex
        _I,
    ),
    re.compile(
        r"operating system of the container does not match "  # i18n: regex
        r"the operating system of the host",
        _I,
    ),
    re.compile(r"0xc0370101", _I),
    re.compile(r"ERROR_VMCOMPUTE_IMAGE_MISMATCH", _I),
    re.compile(r"no match for platform in manifest", _I),  # i18n: regex
    re.compile(r"no matching manifest for windows/\w+", _I),  # i18n: regex
    *LINUX_IMAGE_PATTERNS,
)
# Nested runtime errors may quote the image with escaped quotes (\"…\").
_SANDBOX_IMAGE = re.compile(
    r"failed to get sandbox image \\?\"(?P<image>[^\"\\]+)\\?\"",  # i18n: regex
    _I,
)


def sandbox_image_from_message(message: str) -> str | None:
    """The image in a `failed to get sandbox image "<image>"` event text, or None."""
    match = _SANDBOX_IMAGE.search(message)
    return match["image"] if match else None


def classify_event_message(message: str) -> EventKind | None:
    """What an event text says went wrong with images on a Windows node, or None.

    "sandbox-image" when the pause image could not be had, "linux-image" when the runtime says
    the image is a Linux one, "os-mismatch" when image and host Windows versions disagree.
    """
    if _SANDBOX_IMAGE.search(message):
        return "sandbox-image"
    if any(pattern.search(message) for pattern in LINUX_IMAGE_PATTERNS):
        return "linux-image"
    if any(pattern.search(message) for pattern in OS_MISMATCH_PATTERNS):
        return "os-mismatch"
    return None
