"""Windows builds, image tags, compatibility, pause images and event texts."""

import pytest

from handlers.windows import (
    GOOD_PAUSE_IMAGES,
    WINDOWS_RELEASES,
    ImageRef,
    Isolation,
    build_from_kernel_version,
    build_from_label,
    build_from_tag,
    can_run,
    classify_event_message,
    compatibility_reason,
    describe_build,
    image_build,
    isolation_for_runtime,
    looks_like_linux_image,
    parse_image,
    pause_image_problem,
    pause_windows_variants,
    recommended_pause_image,
    release_for_build,
    sandbox_image_from_message,
    suggest_tag,
)


def test_release_table_is_sorted_and_unique() -> None:
    builds = [release.build for release in WINDOWS_RELEASES]
    assert builds == sorted(set(builds))


@pytest.mark.parametrize(
    ("build", "ltsc", "tags"),
    [
        (14393, True, ("ltsc2016", "1607", "sac2016")),
        (16299, False, ("1709",)),
        (17763, True, ("ltsc2019", "1809")),
        (20348, True, ("ltsc2022",)),
        (25398, False, ()),
        (26100, True, ("ltsc2025",)),
    ],
)
def test_release_for_build(build: int, ltsc: bool, tags: tuple[str, ...]) -> None:
    release = release_for_build(build)
    assert release is not None
    assert (release.ltsc, release.tags) == (ltsc, tags)


def test_release_for_unknown_build() -> None:
    assert release_for_build(12345) is None


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (17763, "17763 (Windows Server 2019 / 1809)"),
        (20348, "20348 (Windows Server 2022)"),
        (14393, "14393 (Windows Server 2016 / 1607)"),
        (25398, "25398 (Windows Server Annual Channel 23H2)"),
        (12345, "build 12345 (unknown release)"),
    ],
)
def test_describe_build(build: int, text: str) -> None:
    assert describe_build(build) == text


@pytest.mark.parametrize(
    ("kernel_version", "build"),
    [
        ("10.0.17763.2061", 17763),
        ("10.0.20348.2340", 20348),
        ("10.0.26100.1", 26100),
        ("10.0.17763", 17763),
        ("10.0 14393 (14393.1715.amd64fre.rs1_release_inf.170807-1720)", 14393),
        ("  10.0.17763.2061\n", 17763),
        ("5.15.0-1064-azure", None),
        ("6.8.0-1017-aws", None),
        ("4.19.0", None),
        ("", None),
    ],
)
def test_build_from_kernel_version(kernel_version: str, build: int | None) -> None:
    assert build_from_kernel_version(kernel_version) == build


@pytest.mark.parametrize(
    ("label", "build"),
    [
        ("10.0.17763", 17763),
        ("10.0.20348", 20348),
        ("10.0.17763.2061", 17763),
        ("", None),
        ("17763", None),
        ("5.15.0", None),
    ],
)
def test_build_from_label(label: str, build: int | None) -> None:
    assert build_from_label(label) == build


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        (
            "mcr.microsoft.com/windows/servercore:ltsc2022",
            ImageRef("mcr.microsoft.com", "windows/servercore", "ltsc2022", None),
        ),
        (
            "microsoft/iis:windowsservercore-1709",
            ImageRef("docker.io", "microsoft/iis", "windowsservercore-1709", None),
        ),
        ("nginx", ImageRef("docker.io", "library/nginx", "latest", None)),
        ("docker.io/library/nginx:1.25", ImageRef("docker.io", "library/nginx", "1.25", None)),
        ("index.docker.io/busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
        ("registry:5000/a/b:tag", ImageRef("registry:5000", "a/b", "tag", None)),
        ("localhost/app", ImageRef("localhost", "app", "latest", None)),
        (
            "repo@sha256:0123abcd",
            ImageRef("docker.io", "library/repo", None, "sha256:0123abcd"),
        ),
        (
            "registry.k8s.io/pause:3.6@sha256:0123abcd",
            ImageRef("registry.k8s.io", "pause", "3.6", "sha256:0123abcd"),
        ),
    ],
)
def test_parse_image(ref: str, parsed: ImageRef) -> None:
    assert parse_image(ref) == parsed


def test_image_ref_name() -> None:
    assert parse_image("nginx").name == "docker.io/library/nginx"


@pytest.mark.parametrize("ref", ["", "   ", "nginx:", "registry.io/", ":ltsc2022"])
def test_parse_image_rejects_non_references(ref: str) -> None:
    with pytest.raises(ValueError, match="not an image reference"):
        parse_image(ref)


@pytest.mark.parametrize(
    ("tag", "build"),
    [
        ("ltsc2016", 14393),
        ("sac2016", 14393),
        ("1607", 14393),
        ("ltsc2019", 17763),
        ("ltsc2022", 20348),
        ("ltsc2025", 26100),
        ("LTSC2019", 17763),
        ("1709", 16299),
        ("1803", 17134),
        ("1809", 17763),
        ("1903", 18362),
        ("1909", 18363),
        ("2004", 19041),
        ("20H2", 19042),
        ("20h2", 19042),
        ("10.0.17763.437", 17763),
        ("10.0.17763", 17763),
        ("10.0.14393.1715", 14393),
        ("ltsc2019-KB5005568", 17763),
        ("10.0.17763.2114-amd64", 17763),
        ("windowsservercore-1709", 16299),
        ("nanoserver-1809", 17763),
        ("4.8-windowsservercore-ltsc2019", 17763),
        ("servercore-ltsc2022-amd64", 20348),
        ("3.9-windowsservercore-1809", 17763),
        ("6.0-nanoserver_1809", 17763),
        ("1809.amd64", 17763),
        ("windowsservercore-10.0.20348.2340", 20348),
        ("3.6-windows-ltsc2022-amd64", 20348),
        # An unknown but well-formed full version still names its build.
        ("10.0.22621.1", 22621),
    ],
)
def test_build_from_tag(tag: str, build: int) -> None:
    assert build_from_tag(tag) == build


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "3.6",
        "1.21.3",
        "1.18.09",
        "2.1.1803",
        "1809.1",
        "20240101",
        "v1.2.3-2004beta",
        "ltsc2019x",
        "1.10.0.17763",
        "x1809",
        "18090",
        "",
    ],
)
def test_build_from_tag_ignores_look_alikes(tag: str) -> None:
    assert build_from_tag(tag) is None


@pytest.mark.parametrize(
    ("ref", "build"),
    [
        ("mcr.microsoft.com/windows/servercore:ltsc2022", 20348),
        ("microsoft/iis:windowsservercore-1709", 16299),
        ("mcr.microsoft.com/windows/nanoserver:10.0.17763.437", 17763),
        ("registry:5000/app:ltsc2025", 26100),
        ("registry:5000/ltsc2019/app", None),
        ("nginx", None),
        ("repo@sha256:0123abcd", None),
        ("", None),
    ],
)
def test_image_build(ref: str, build: int | None) -> None:
    assert image_build(ref) == build


@pytest.mark.parametrize(
    "ref",
    [
        "nginx",
        "nginx:1.25",
        "busybox:1.36",
        "alpine",
        "ubuntu:22.04",
        "debian:bookworm",
        "redis:7",
        "postgres:16",
        "docker.io/library/node:20",
        "registry.k8s.io/kube-proxy:v1.30.0",
        "k8s.gcr.io/pause-amd64:3.1",
        "bitnami/redis:7.2",
        "quay.io/someone/nginx:1.0",
    ],
)
def test_looks_like_linux_image(ref: str) -> None:
    assert looks_like_linux_image(ref)


@pytest.mark.parametrize(
    "ref",
    [
        "mcr.microsoft.com/windows/servercore:ltsc2022",
        "mcr.microsoft.com/windows/nanoserver:1809",
        "mcr.microsoft.com/windows:20H2",
        "mcr.microsoft.com/dotnet/framework/aspnet:4.8-windowsservercore-ltsc2019",
        "nginx:ltsc2022",
        "python:3.12-windowsservercore",
        "python:3.12",
        "hello-world",
        "example.com/team/nanoserver-tools:1.0",
        "registry.k8s.io/pause:3.6",
        "k8s.gcr.io/pause:3.9",
        "mcr.microsoft.com/oss/kubernetes/pause:3.6",
        "registry.k8s.io/e2e-test-images/agnhost:2.47",
        "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.0",
        "example.com/team/app:1.0",
        "",
    ],
)
def test_not_linux_only(ref: str) -> None:
    assert not looks_like_linux_image(ref)


@pytest.mark.parametrize(
    ("host", "image", "runs"),
    [
        (17763, 17763, True),
        (17763, 20348, False),
        (17763, 14393, False),
        (14393, 14393, True),
        (16299, 17763, False),
        (17763, 16299, False),
        (19042, 19041, False),
        (20348, 20348, True),
        (20348, 17763, False),
        (20348, 26100, False),
        (25398, 20348, True),
        (25398, 26100, False),
        (26100, 20348, True),
        (26100, 26100, True),
        (26100, 17763, False),
    ],
)
def test_can_run(host: int, image: int, runs: bool) -> None:
    assert can_run(host, image) is runs


def test_can_run_a_full_version_tag_of_the_host_build() -> None:
    full_version = build_from_tag("10.0.17763.437")
    assert full_version is not None
    assert can_run(17763, full_version)


@pytest.mark.parametrize(
    ("host", "image", "reason"),
    [
        (
            17763,
            20348,
            "process isolation before Windows Server 2022 needs the image build to equal the host"
            " build: the image is 20348 (ltsc2022), the node is 17763 (Windows Server 2019 / 1809)",
        ),
        (
            17763,
            17763,
            "process isolation before Windows Server 2022 needs the image build to equal the host"
            " build, and it does: the image is 17763 (ltsc2019), the node is 17763 (Windows Server"
            " 2019 / 1809)",
        ),
        (
            20348,
            17763,
            "from Windows Server 2022 on, a node runs images built for 20348 (ltsc2022) up to its"
            " own build, never older ones: the image is 17763 (ltsc2019), the node is 20348"
            " (Windows Server 2022)",
        ),
        (
            25398,
            26100,
            "from Windows Server 2022 on, a node runs images built for 20348 (ltsc2022) up to its"
            " own build, never newer ones: the image is 26100 (ltsc2025), the node is 25398"
            " (Windows Server Annual Channel 23H2)",
        ),
        (
            26100,
            20348,
            "from Windows Server 2022 on, a node runs images built for 20348 (ltsc2022) up to its"
            " own build: the image is 20348 (ltsc2022), the node is 26100 (Windows Server 2025)",
        ),
        (
            17763,
            12345,
            "process isolation before Windows Server 2022 needs the image build to equal the host"
            " build: the image is build 12345 (unknown release), the node is 17763 (Windows"
            " Server 2019 / 1809)",
        ),
    ],
)
def test_compatibility_reason(host: int, image: int, reason: str) -> None:
    assert compatibility_reason(host, image) == reason


@pytest.mark.parametrize(
    ("host", "tag"),
    [
        (14393, "ltsc2016"),
        (16299, "1709"),
        (17134, "1803"),
        (17763, "ltsc2019"),
        (18362, "1903"),
        (19042, "20H2"),
        (20348, "ltsc2022"),
        (25398, "ltsc2022"),
        (26100, "ltsc2025"),
        (22621, "ltsc2022"),
        (27000, "ltsc2025"),
        (17000, None),
    ],
)
def test_suggest_tag(host: int, tag: str | None) -> None:
    assert suggest_tag(host) == tag


@pytest.mark.parametrize("host", [14393, 16299, 17134, 17763, 18362, 19042, 20348, 25398, 26100])
def test_suggested_tag_runs_on_the_host(host: int) -> None:
    tag = suggest_tag(host)
    assert tag is not None
    tag_build = build_from_tag(tag)
    assert tag_build is not None
    assert can_run(host, tag_build)


@pytest.mark.parametrize("host", [17763, 20348, 25398, 26100])
@pytest.mark.parametrize(
    "image",
    [
        *GOOD_PAUSE_IMAGES,
        "registry.k8s.io/pause:3.9",
        "registry.k8s.io/pause:3.10",
        "mcr.microsoft.com/oss/kubernetes/pause:3.6-hotfix.20220114",
        "registry.k8s.io/pause@sha256:0123abcd",
    ],
)
def test_good_pause_images_fit(image: str, host: int) -> None:
    assert pause_image_problem(image, host) is None


@pytest.mark.parametrize("host", [17763, 20348, 26100])
def test_recommended_pause_image_fits(host: int) -> None:
    assert pause_image_problem(recommended_pause_image(host), host) is None


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-ltsc2022-amd64", 20348),
        ("mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-ltsc2022-amd64", 26100),
        ("example.com/pause:ltsc2019", 17763),
        ("registry.k8s.io/pause:3.4.1", 17763),
        ("example.com/pause:1.0", 20348),
    ],
)
def test_pause_images_that_fit(image: str, host: int) -> None:
    assert pause_image_problem(image, host) is None


@pytest.mark.parametrize(
    ("image", "host", "fragment"),
    [
        ("", 17763, "no sandbox (pause) image is configured"),
        ("  ", 20348, "mcr.microsoft.com/oss/kubernetes/pause:3.6"),
        ("pause:", 20348, "is not an image reference"),
        (
            "mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-ltsc2022-amd64",
            17763,
            "the image is 20348 (ltsc2022), the node is 17763 (Windows Server 2019 / 1809)",
        ),
        ("example.com/pause:ltsc2019", 20348, "never older ones"),
        ("example.com/pause:ltsc2025", 25398, "never newer ones"),
        ("k8s.gcr.io/pause-amd64:3.1", 17763, "is Linux-only"),
        ("busybox", 20348, "is Linux-only"),
        ("registry.k8s.io/pause:3.1", 17763, "predates Windows support"),
        ("k8s.gcr.io/pause:3.2", 20348, "predates Windows support"),
        ("registry.k8s.io/pause:3.5", 20348, "no Windows Server 2022 variant"),
        ("mcr.microsoft.com/oss/kubernetes/pause:3.4.1", 26100, "no Windows Server 2022 variant"),
        ("registry.k8s.io/pause:3.6", 14393, "none for 14393 (Windows Server 2016 / 1607)"),
    ],
)
def test_pause_image_problem(image: str, host: int, fragment: str) -> None:
    problem = pause_image_problem(image, host)
    assert problem is not None
    assert fragment in problem


CONTAINERD_MISMATCH = (
    "failed to create containerd task: failed to create shim task: hcs::CreateComputeSystem"
    " 1a2b: The container operating system does not match the host operating system.: unknown"
)
DOCKER_MISMATCH = (
    "Error response from daemon: container 1a2b encountered an error during"
    " CreateComputeSystem: failure in a Windows system call: The container operating system"
    " does not match the host operating system. (0xc0370101)"
)
DOCKER_MISMATCH_OLD = (
    "Error response from daemon: The operating system of the container does not match the"
    " operating system of the host. (0xc0370101)"
)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (CONTAINERD_MISMATCH, "os-mismatch"),
        (DOCKER_MISMATCH, "os-mismatch"),
        (DOCKER_MISMATCH_OLD, "os-mismatch"),
        ("hcsshim: ERROR_VMCOMPUTE_IMAGE_MISMATCH", "os-mismatch"),
        ("HRESULT 0xC0370101", "os-mismatch"),
        (
            'Failed to pull image "mcr.microsoft.com/windows/servercore:ltsc2022": rpc error:'
            " code = NotFound desc = failed to pull and unpack image"
            ' "mcr.microsoft.com/windows/servercore:ltsc2022": no match for platform in'
            " manifest: not found",
            "os-mismatch",
        ),
        (
            'Failed to pull image "microsoft/iis:windowsservercore-1709": rpc error: code ='
            " Unknown desc = no matching manifest for windows/amd64 in the manifest list entries",
            "os-mismatch",
        ),
        (
            'Failed to pull image "nginx": rpc error: code = Unknown desc = image operating'
            ' system "linux" cannot be used on this platform',
            "linux-image",
        ),
        (
            'failed to pull image: image operating system \\"linux\\" cannot be used on this'
            " platform",
            "linux-image",
        ),
        (
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox"
            ' image "k8s.gcr.io/pause:3.1": failed to pull image "k8s.gcr.io/pause:3.1": no'
            " match for platform in manifest: not found",
            "sandbox-image",
        ),
        ('Successfully pulled image "mcr.microsoft.com/windows/servercore:ltsc2022"', None),
        ("Started container iis", None),
        ("Created container iis", None),
        ('Pulling image "mcr.microsoft.com/windows/servercore:ltsc2022"', None),
        ('Container image "registry.k8s.io/pause:3.6" already present on machine', None),
        ("Successfully assigned default/iis to akswin000000", None),
        ("Back-off restarting failed container iis in pod iis_default", None),
        ("the host operating system was updated", None),
        ("", None),
    ],
)
def test_classify_event_message(message: str, kind: str | None) -> None:
    assert classify_event_message(message) == kind


@pytest.mark.parametrize(
    ("message", "image"),
    [
        (
            'failed to get sandbox image "mcr.microsoft.com/oss/kubernetes/pause:3.6": failed to'
            " pull image",
            "mcr.microsoft.com/oss/kubernetes/pause:3.6",
        ),
        (
            'desc = failed to get sandbox image \\"k8s.gcr.io/pause:3.1\\": failed to pull image',
            "k8s.gcr.io/pause:3.1",
        ),
        ("Started container iis", None),
        (CONTAINERD_MISMATCH, None),
    ],
)
def test_sandbox_image_from_message(message: str, image: str | None) -> None:
    assert sandbox_image_from_message(message) == image


@pytest.mark.parametrize(
    ("runtime", "isolation"),
    [
        ("containerd://1.7.5", "process-exact"),
        ("containerd://1.6.28", "process-exact"),
        ("containerd://1.7.6", "process"),
        ("containerd://1.7.20+azure", "process"),
        ("containerd://2.0.4", "process"),
        ("docker://20.10.9", "process-exact"),
        ("", "process"),
    ],
)
def test_isolation_for_runtime(runtime: str, isolation: str) -> None:
    assert isolation_for_runtime(runtime) == isolation


@pytest.mark.parametrize(
    ("host", "image", "isolation", "runs"),
    [
        (26100, 20348, "process-exact", False),
        (26100, 26100, "process-exact", True),
        (20348, 17763, "hyperv", True),
        (20348, 26100, "hyperv", False),
        (17763, 14393, "hyperv", True),
    ],
)
def test_can_run_by_isolation(host: int, image: int, isolation: Isolation, runs: bool) -> None:
    assert can_run(host, image, isolation) is runs


@pytest.mark.parametrize(
    ("version", "has", "lacks"),
    [
        ((3, 4), {17763, 18363}, {19042, 20348}),
        ((3, 6), {17763, 18362, 19041, 19042, 20348}, {26100}),
        ((3, 7), {17763, 19042, 20348}, {18362, 18363, 19041}),
        ((3, 9), {17763, 20348}, {19042}),
        ((3, 10, 1), {17763, 20348}, {26100}),
        ((3, 10, 2), {17763, 20348, 26100}, set()),
    ],
)
def test_pause_windows_variants(version: tuple[int, ...], has: set[int], lacks: set[int]) -> None:
    variants = pause_windows_variants(version)
    assert has <= variants
    assert not lacks & variants
