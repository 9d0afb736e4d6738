"""`python -m bench.sweep_driver CONFIG`: one sweep in a process of its own, so that its peak RSS
is the sweep's; prints its figures as one JSON object."""

from __future__ import annotations

import json
import resource
import sys
import time

from bot.wiring import build_transports
from config.settings import load_settings
from handlers.sweep import sweep


def main(config: str) -> int:
    settings = load_settings(config)
    transports = build_transports(settings)
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    report = sweep(transports, settings, known_boots={})
    wall_ms = (time.monotonic() - started) * 1000
    states: dict[str, int] = {}
    for node in report.nodes:
        states[node.state] = states.get(node.state, 0) + 1
    figures = {
        "wall_ms": round(wall_ms, 1),
        "probes": report.probes,
        "nodes": len(report.nodes),
        "states": states,
        "findings": len(report.findings),
        "concurrency": settings.sweep.concurrency,
        "rss_before_sweep_mb": round(rss_before_kb / 1024, 1),
        # Linux reports ru_maxrss in KiB
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
