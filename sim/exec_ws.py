"""Pod exec over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), answered by sim.pod_shell.

Framing: every binary message starts with its channel byte (0 stdin, 1 stdout, 2 stderr,
3 status, 4 resize; v5 adds 255 = "close channel N"). Like the real server, right after the
upgrade one message with only the first writable channel's byte says the streams are open; the
command's output follows, then its status on channel 3, then the server closes the socket.
"""

from __future__ import annotations

import json

from aiohttp import web
from multidict import MultiMapping

from sim import runtime
from sim.pod_shell import run_in_pod
from sim.world import BY_PLURAL, ApiError, Obj, World, not_found

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
SUPPORTED_PROTOCOLS = (V5, V4)
STDOUT, STDERR, STATUS = 1, 2, 3
# Output is split like a container runtime's pipe reads: large output arrives in several frames.
CHUNK_BYTES = 32 * 1024
# Clients answer the close frame at once; don't hold the socket long for one that doesn't.
CLOSE_TIMEOUT_S = 5.0


def _flag(query: MultiMapping[str], name: str) -> bool:
    return str(query.get(name, "")).lower() in ("true", "1")


def _pick_container(pod: Obj, requested: str | None) -> str:
    name = pod["metadata"]["name"]
    containers = [str(c.get("name", "")) for c in (pod.get("spec") or {}).get("containers") or []]
    if requested:
        if requested not in containers:
            raise ApiError(400, "BadRequest", f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    raise ApiError(
        400,
        "BadRequest",
        f"a container name must be specified for pod {name}, "
        f"choose one of: [{' '.join(containers)}]",
    )


def _check_running(pod: Obj, container: str) -> None:
    """Refuse as the API server and kubelet do: no node, finished pod, container not started."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    phase = status.get("phase")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
    if phase in ("Succeeded", "Failed"):
        raise ApiError(
            400,
            "BadRequest",
            f"cannot exec into a container in a completed pod; current phase is {phase}",
        )
    container_status = next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == container), None
    )
    running = (
        (container_status.get("state") or {}).get("running") is not None
        if container_status is not None
        else phase == "Running"
    )
    if not running:
        raise ApiError(400, "BadRequest", f'container not found ("{container}")')


def _negotiate(request: web.Request) -> str | None:
    offered = [
        p.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in header.split(",")
    ]
    return next((p for p in offered if p in SUPPORTED_PROTOCOLS), None)


def _status(exit_code: int, argv: list[str]) -> bytes:
    if exit_code == 0:
        body: Obj = {"metadata": {}, "status": "Success"}
    else:
        body = {
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(argv)}], exit code {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    return bytes([STATUS]) + json.dumps(body, separators=(",", ":")).encode()


async def _send(ws: web.WebSocketResponse, channel: int, text: str) -> None:
    data = text.encode()
    for start in range(0, len(data), CHUNK_BYTES):
        await ws.send_bytes(bytes([channel]) + data[start : start + CHUNK_BYTES])


async def handle_exec(
    request: web.Request, world: World, namespace: str, name: str
) -> web.StreamResponse:
    """Validate like the API server (errors as `Status` before any upgrade), then stream."""
    pod = world.find("pods", namespace, name)
    if pod is None:
        raise not_found(BY_PLURAL["pods"], name)
    query = request.query
    argv = query.getall("command", [])
    if not argv:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    container = _pick_container(pod, query.get("container"))
    _check_running(pod, container)
    stdin, stdout, stderr, tty = (_flag(query, f) for f in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise ApiError(400, "BadRequest", "you must specify at least one of stdin, stdout, stderr")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(
            400,
            "BadRequest",
            "Upgrade request required: the simulator speaks pod exec over WebSocket "
            f"only ({', '.join(SUPPORTED_PROTOCOLS)}), not SPDY",
        )
    protocol = _negotiate(request)
    if protocol is None:
        raise ApiError(
            400,
            "BadRequest",
            "unable to upgrade connection: no supported WebSocket subprotocol "
            f"offered; supported: {', '.join(SUPPORTED_PROTOCOLS)}",
        )

    ws = web.WebSocketResponse(protocols=(protocol,), compress=False, timeout=CLOSE_TIMEOUT_S)
    await ws.prepare(request)
    await ws.send_bytes(bytes([STDOUT if stdout else STDERR if stderr else STATUS]))
    if runtime.wedged_host(world, pod) is not None:
        # containerd cannot start the process: kubelet reports it on the status channel
        failure = json.dumps(runtime.exec_failure(pod), separators=(",", ":")).encode()
        await ws.send_bytes(bytes([STATUS]) + failure)
        await ws.close()
        return ws
    result = run_in_pod(world, pod, container, argv)
    # A terminal has one output stream: what the command writes to stderr shows on stdout.
    if tty:
        if stdout:
            await _send(ws, STDOUT, result.stdout + result.stderr)
    else:
        if stdout:
            await _send(ws, STDOUT, result.stdout)
        if stderr:
            await _send(ws, STDERR, result.stderr)
    await ws.send_bytes(_status(result.exit_code, argv))
    # Commands here read no input: whatever the client sends on stdin (and v5's "close stdin"
    # signal) is discarded by close() while it waits for the client's close frame.
    await ws.close()
    return ws
