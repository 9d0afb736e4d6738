"""`python -m bench.sweep_driver CONFIG`: one sweep in a process of its own, so that its peak RSS
is the sweep's; prints its figures as one JSON object."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from bench.harness import machine_cpu_seconds
from bot.wiring import build_transports
from config.settings import load_settings
from handlers.sweep import sweep


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM). Not `ru_maxrss`: Linux carries that over from the
    parent through fork and exec, so it would report the benchmark runner's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main(config: str) -> int:
    settings = load_settings(config)
    transports = build_transports(settings)
    rss_before = _peak_rss_mb()
    cpu, machine_cpu = _cpu_s(), machine_cpu_seconds()
    started = time.monotonic()
    report = sweep(transports, settings, known_boots={})
    wall_ms = (time.monotonic() - started) * 1000
    machine_cpu = machine_cpu_seconds() - machine_cpu
    figures = {
        "wall_ms": round(wall_ms, 1),
        "cpu_s": round(_cpu_s() - cpu, 2),
        "machine_cpu_s": round(machine_cpu, 2),
        "pods_probed": report.probes,
        "states": dict(Counter(node.state for node in report.nodes)),
        "findings": len(report.findings),
        "concurrency": settings.sweep.concurrency,
        "rss_before_sweep_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
