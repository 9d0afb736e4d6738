"""`/healthz`, `/readyz` and `/metrics` as a small WSGI app on the metrics port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.metrics import Metrics

Probe = Callable[[], str | None]  # None when healthy, else what is wrong
StartResponse = Callable[..., Any]


class HealthApp:
    """Readiness asks each probe at most every `cache_s` seconds, so scrapes stay cheap."""

    def __init__(self, metrics: Metrics, probes: dict[str, Probe], cache_s: float = 10.0) -> None:
        self._metrics = metrics
        self._probes = probes
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._problems: dict[str, str | None] = {}
        self.extra: dict[str, Callable[[], object]] = {}

    def readiness(self) -> dict[str, str | None]:
        with self._lock:
            if time.monotonic() - self._checked_at > self._cache_s:
                self._problems = {name: _safe(probe) for name, probe in self._probes.items()}
                self._checked_at = time.monotonic()
            return dict(self._problems)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _reply(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            problems = self.readiness()
            ready = all(problem is None for problem in problems.values())
            body: dict[str, object] = {
                "status": "ready" if ready else "not ready",
                "checks": {name: problem or "ok" for name, problem in problems.items()},
            }
            body.update({name: value() for name, value in self.extra.items()})
            return _reply(start_response, "200 OK" if ready else "503 Service Unavailable", body)
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [self._metrics.exposition()]
        return _reply(start_response, "404 Not Found", {"error": "not found"})


def _safe(probe: Probe) -> str | None:
    try:
        return probe()
    except Exception as exc:  # a probe must never take the health endpoint down
        return f"{type(exc).__name__}"


def _reply(start_response: StartResponse, status: str, body: dict[str, object]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
