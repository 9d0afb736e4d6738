"""HostProcess pods (SPEC §9): validated as the API server and Pod Security admission do, then
run by the node's simulated kubelet: the container's command (winpod's encoded script) goes
through the same command line as over WinRM (`host_scripts.run_command_line`), so its effects
are the same; the pod ends `Succeeded`/`Failed` with the script's exit code and its output is
its log. While the host's kubelet is away (stopped, or restarting after a script restarted it),
pod statuses on that node do not change and exec/log requests for its pods fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sim.host_scripts import run_command_line
from sim.world import ApiError, Obj, Resource, WindowsHost, World, now_iso

POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
# Registries the simulated nodes can pull from; an image elsewhere fails with ErrImagePull.
PULLABLE_REGISTRIES = frozenset({"mcr.microsoft.com", "registry.k8s.io", "docker.io", "ghcr.io"})
# A container's command line goes to CreateProcess, not cmd.exe.
CREATE_PROCESS_LIMIT = 32_767
# How often a kubelet that is away is looked at again.
RETRY_S = 0.2


def is_hostprocess(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return any(
        (context.get("windowsOptions") or {}).get("hostProcess") is True
        for context in _security_contexts(pod)
    ) or any(
        ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True
        for c in spec.get("initContainers") or []
    )


def _security_contexts(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [spec.get("securityContext") or {}] + [
        c.get("securityContext") or {} for c in spec.get("containers") or []
    ]


def _container_host_process(pod: Obj, container: Obj) -> bool:
    spec = pod.get("spec") or {}
    pod_level = ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
    own = ((container.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
    return bool(own if own is not None else pod_level)


def admit(world: World, namespace: str, pod: Obj) -> None:
    """Raise what the API server answers to a HostProcess pod it does not accept: validation
    (422) first, then Pod Security admission of the namespace (403)."""
    if not is_hostprocess(pod):
        return
    name = str(
        (pod.get("metadata") or {}).get("name")
        or (pod.get("metadata") or {}).get("generateName", "")
    )
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not spec.get("hostNetwork"):
        raise ApiError(
            422,
            "Invalid",
            f'Pod "{name}" is invalid: spec.hostNetwork: Invalid value: false: must be true if '
            "pod contains any hostProcess containers",
        )
    plain = [str(c.get("name")) for c in containers if not _container_host_process(pod, c)]
    if plain:
        raise ApiError(
            422,
            "Invalid",
            f'Pod "{name}" is invalid: spec.containers[0].securityContext.windowsOptions.'
            "hostProcess: Invalid value: false: If pod contains any hostProcess containers "
            "then all containers must be HostProcess containers",
        )
    ns = world.find("namespaces", None, namespace) or {}
    level = ((ns.get("metadata") or {}).get("labels") or {}).get(POD_SECURITY_LABEL, "baseline")
    if level == "privileged":
        return
    names = ", ".join(f'"{c.get("name")}"' for c in containers)
    pod_level = bool(
        ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
    )
    who = ("pod and " if pod_level else "") + (
        "container " if len(containers) == 1 else "containers "
    )
    raise ApiError(
        403,
        "Forbidden",
        f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": host namespaces '
        f"(hostNetwork=true), hostProcess ({who}{names} must not set "
        "securityContext.windowsOptions.hostProcess=true)",
        {"name": name, "kind": "pods"},
    )


def _pullable(image: str) -> bool:
    first = image.split("/", 1)[0]
    registry = first if "/" in image and ("." in first or ":" in first) else "docker.io"
    return registry in PULLABLE_REGISTRIES


def install(world: World) -> None:
    world.after_delete.append(lambda resource, obj: _on_delete(world, resource, obj))


def _on_delete(world: World, resource: Resource, pod: Obj) -> None:
    if resource.plural == "pods":
        meta = pod.get("metadata") or {}
        world.pod_logs.pop((str(meta.get("namespace")), str(meta.get("name"))), None)


def kubelet_answering(host: WindowsHost) -> bool:
    return host.services.get("kubelet") == "Running" and time.monotonic() >= host.kubelet_back_at


def start(world: World, pod: Obj) -> None:
    """The node's kubelet picks up a new HostProcess pod: pulls, starts, runs, reports."""
    host = world.hosts.get(str((pod.get("spec") or {}).get("nodeName") or ""))
    if host is None or host.role != "node":
        return  # no simulated Windows kubelet there: the pod stays Pending
    meta = pod["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]

    def exists() -> bool:
        return world.find("pods", namespace, name) is not None

    def status(patch: Obj) -> None:
        world.patch("pods", namespace, name, {"status": patch}, "application/merge-patch+json")

    def when_kubelet_answers(then: Callable[[], None]) -> Callable[[], None]:
        def attempt() -> None:
            if not exists():
                return
            if kubelet_answering(host):
                then()
            else:
                _later(RETRY_S, attempt)

        return attempt

    def run() -> None:
        image = str(container.get("image") or "")
        if not _pullable(image):
            registry = image.split("/", 1)[0]
            status(
                {
                    "containerStatuses": [
                        _container_status(
                            container,
                            {
                                "waiting": {
                                    "reason": "ErrImagePull",
                                    "message": f'failed to pull and unpack image "{image}": '
                                    f'failed to resolve reference "{image}": failed to do '
                                    f'request: Head "https://{registry}/v2/": dial tcp: lookup '
                                    f"{registry}: no such host",
                                }
                            },
                        )
                    ]
                }
            )
            return
        started = now_iso()
        status(
            {
                "phase": "Running",
                "hostIP": host.address,
                "podIP": host.address,
                "startTime": started,
                "containerStatuses": [
                    _container_status(container, {"running": {"startedAt": started}})
                ],
            }
        )
        command = [str(part) for part in container.get("command") or []]
        restarts = host.kubelet_restarts
        output = run_command_line(
            world, host, command[0] if command else "", " ".join(command[1:]), CREATE_PROCESS_LIMIT
        )
        if host.kubelet_restarts != restarts:
            # the script restarted kubelet: it is away a moment, the container runs on
            host.kubelet_back_at = time.monotonic() + world.kubelet_restart_s
        # the runtime logs each stream line by line: stderr's last line ends with a newline
        stderr = (
            output.stderr
            if output.stderr.endswith("\n") or not output.stderr
            else output.stderr + "\n"
        )
        log = stderr + output.stdout

        def finish() -> None:
            world.pod_logs[(namespace, name)] = log
            code = output.exit_code
            status(
                {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [
                        _container_status(
                            container,
                            {
                                "terminated": {
                                    "exitCode": code,
                                    "reason": "Completed" if code == 0 else "Error",
                                    "startedAt": started,
                                    "finishedAt": now_iso(),
                                }
                            },
                        )
                    ],
                }
            )
            host.history.append(f"hostprocess pod {name} exited {code}")

        when_kubelet_answers(finish)()

    _later(world.hostprocess_start_delay_s, when_kubelet_answers(run))


def _container_status(container: Obj, state: Obj) -> Obj:
    return {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def _later(delay_s: float, work: Callable[[], None]) -> None:
    try:
        asyncio.get_running_loop().call_later(max(delay_s, 0.0), work)
    except RuntimeError:  # no event loop (a world used directly, as in unit tests)
        work()


def check_kubelet(world: World, pod: Obj) -> None:
    """Raise what the API server answers when it cannot reach the pod's kubelet (exec, log)."""
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    host = world.hosts.get(node)
    if host is not None and not kubelet_answering(host):
        meta = pod.get("metadata") or {}
        raise ApiError(
            502,
            "InternalError",
            f'Get "https://{host.address}:10250/containerLogs/{meta.get("namespace")}/'
            f'{meta.get("name")}": dial tcp {host.address}:10250: connect: connection refused',
        )


def read_log(world: World, pod: Obj) -> str:
    check_kubelet(world, pod)
    meta = pod["metadata"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first = statuses[0] if statuses else {}
    waiting = (first.get("state") or {}).get("waiting")
    if (pod.get("status") or {}).get("phase") == "Pending" or waiting:
        reason = (waiting or {}).get("reason") or "ContainerCreating"
        raise ApiError(
            400,
            "BadRequest",
            f'container "{containers[0].get("name")}" in pod "{meta["name"]}" is waiting to '
            f"start: {reason}",
        )
    return world.pod_logs.get((str(meta["namespace"]), str(meta["name"])), "")
