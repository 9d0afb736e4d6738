"""Latency and failure knobs for each simulated server, applied as aiohttp middleware.

Servers are named `kube` (REST API), `exec` (pod exec WebSockets), `winrm` and `slack`. Each has
a per-request latency and a "fail the next N requests" switch with one of the modes below; the
control API sets them, benchmarks and reliability tests use them, and every request is counted
and recorded (method, path, query) in a bounded log that the control API serves.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

SERVERS = ("kube", "exec", "winrm", "slack")
MODES = ("500", "reset", "hang", "429")
# Enough for every request of a test run or a demo; the oldest are dropped past it.
REQUEST_LOG_LIMIT = 20_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Knobs:
    latency_ms: float = 0.0
    fail_next: int = 0
    mode: str = "500"
    retry_after_s: int = 1  # for mode 429
    hang_s: float = 600.0  # for mode hang: the client's timeout should fire first

    def as_dict(self) -> dict[str, object]:
        return {
            "latency_ms": self.latency_ms,
            "fail_next": self.fail_next,
            "mode": self.mode,
            "retry_after_s": self.retry_after_s,
            "hang_s": self.hang_s,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a server saw it, before any fault: what an RBAC audit needs."""

    seq: int
    server: str
    method: str
    path: str
    query: dict[str, list[str]]

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "server": self.server,
            "method": self.method,
            "path": self.path,
            "query": self.query,
        }


@dataclass
class KubeTraffic:
    """What the Kubernetes API served (SPEC §15): requests and body bytes, per resource too."""

    requests: int = 0
    bytes_out: int = 0
    by_resource: dict[str, Counter[str]] = field(default_factory=dict)
    hostprocess_pods: int = 0

    def count(self, resource: str, sent: int, *, request: bool = True, watch: bool = False) -> None:
        counts = self.by_resource.setdefault(resource, Counter())
        if request:
            self.requests += 1
            counts["requests"] += 1
        if watch:
            counts["watches"] += 1
        self.bytes_out += sent
        counts["bytes_out"] += sent

    def clear(self) -> None:
        """Zero in place: open watches keep counting into this object."""
        self.requests = self.bytes_out = self.hostprocess_pods = 0
        self.by_resource.clear()

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "bytes_out": self.bytes_out,
            "by_resource": {name: dict(c) for name, c in sorted(self.by_resource.items())},
        }


@dataclass
class Faults:
    knobs: dict[str, Knobs] = field(default_factory=lambda: {s: Knobs() for s in SERVERS})
    requests: Counter[str] = field(default_factory=Counter)
    kube: KubeTraffic = field(default_factory=KubeTraffic)
    log: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_LIMIT))
    recorded: int = 0  # the last sequence number given out
    dropped_through: int = 0  # the newest sequence number the full log has had to drop

    def set(self, server: str, **values: object) -> Knobs:
        if server not in self.knobs:
            raise ValueError(f"unknown server {server!r}; one of {', '.join(SERVERS)}")
        knobs = self.knobs[server]
        for key, value in values.items():
            if key not in knobs.as_dict():
                raise ValueError(f"unknown knob {key!r}; one of {', '.join(knobs.as_dict())}")
            if key == "mode" and value not in MODES:
                raise ValueError(f"unknown mode {value!r}; one of {', '.join(MODES)}")
            current = getattr(knobs, key)
            setattr(knobs, key, type(current)(value))
        return knobs

    async def apply(self, server: str, request: web.Request) -> web.StreamResponse | None:
        """Count and record the request, wait its latency, and maybe fail it; None lets it
        through."""
        self.requests[server] += 1
        self.record(server, request)
        knobs = self.knobs[server]
        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if knobs.fail_next <= 0:
            return None
        knobs.fail_next -= 1
        if knobs.mode == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPInternalServerError()  # never delivered: the socket is gone
        if knobs.mode == "hang":
            await asyncio.sleep(knobs.hang_s)
        if knobs.mode == "429":
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(knobs.retry_after_s)},
            )
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "simulated server error",
                "reason": "InternalError",
                "code": 500,
            },
            status=500,
        )

    def record(self, server: str, request: web.Request) -> None:
        self.recorded += 1
        if len(self.log) == self.log.maxlen:
            self.dropped_through = self.log[0].seq
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.log.append(RecordedRequest(self.recorded, server, request.method, request.path, query))

    def recorded_requests(self, server: str | None = None, since: int = 0) -> list[RecordedRequest]:
        """The log, oldest first: one server's requests (or all), after sequence number `since`."""
        return [r for r in self.log if r.seq > since and server in (None, r.server)]

    def reset_log(self) -> None:
        self.log.clear()

    def reset_stats(self) -> None:
        self.requests.clear()
        self.kube.clear()

    def stats(self) -> dict[str, object]:
        """SPEC §15's counters, plus every server's request count under `requests`."""
        return {
            "kube": self.kube.as_dict(),
            "exec": self.requests["exec"],
            "winrm": self.requests["winrm"],
            "hostprocess_pods": self.kube.hostprocess_pods,
            "requests": {s: self.requests[s] for s in SERVERS},
        }

    def middleware(self, server: str) -> Middleware:
        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/sim/"):
                return await handler(request)
            failed = await self.apply(server, request)
            return failed if failed is not None else await handler(request)

        return faults_middleware
