"""`python -m bench.sweep_driver CONFIG CONTROL_URL SIM_PID NODES RUNS`: the bot's side of the
sweep benchmark in a process of its own, so that its peak RSS is the sweep's.

It starts the watch on Nodes (one paged list, then a watch, as `winpod serve` does), takes
the listed boot ids as known, then RUNS + 1 times (the first unmeasured, to warm caches):
reboots NODES (a comma-separated list) through the control API, waits until the watch has
seen every new boot, and runs one sweep. It prints one JSON object: the first list's figures
and each sweep's wall time, CPU (its own, the simulator's, the machine's) and the API server's
counters for it (the watch's events included).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import fetch, machine_cpu_seconds, process_cpu_seconds
from bot.wiring import build_transports
from config.settings import load_settings
from handlers.node_watch import NodeWatch
from handlers.sweep import sweep

WATCH_WAIT_S = 60


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


def _control(base: str, method: str, path: str) -> Any:
    return json.loads(fetch(base + path, method=method, data=b"" if method == "POST" else None))


def _kube_figures(stats: dict[str, Any]) -> dict[str, Any]:
    kube = stats["kube"]
    return {
        "api_requests": kube["requests"],
        "api_bytes": kube["bytes_out"],
        "by_resource": kube["by_resource"],
        "exec": stats["exec"],
        "winrm": stats["winrm"],
    }


def main(config: str, control: str, sim_pid: int, nodes: list[str], runs: int) -> int:
    settings = load_settings(config)
    transports = build_transports(settings)
    assert transports.watchable is not None
    _control(control, "POST", "/sim/v1/stats/reset")
    started, cpu = time.monotonic(), _cpu_s()
    watch = NodeWatch(transports.watchable)
    known = watch.boots(600)
    first_list = {
        "wall_ms": round((time.monotonic() - started) * 1000, 1),
        "cpu_s": round(_cpu_s() - cpu, 2),
        "nodes": len(known),
        **_kube_figures(_control(control, "GET", "/sim/v1/stats")),
    }
    rss_before = _peak_rss_mb()
    measured = []
    for run in range(runs + 1):
        _control(control, "POST", "/sim/v1/stats/reset")
        new_boots = {
            node: str(_control(control, "POST", f"/sim/v1/hosts/{node}/reboot")["bootID"])
            for node in nodes
        }
        deadline = time.monotonic() + WATCH_WAIT_S
        while any(watch.boots(1).get(n) != boot for n, boot in new_boots.items()):
            if time.monotonic() > deadline:
                raise RuntimeError("the watch did not see every reboot within a minute")
            time.sleep(0.01)
        cpu, sim_cpu, machine_cpu = _cpu_s(), process_cpu_seconds(sim_pid), machine_cpu_seconds()
        began = time.monotonic()
        report = sweep(
            transports, settings, known, boots=watch.boots(1), nodes=watch.rebooted_nodes
        )
        wall_ms = (time.monotonic() - began) * 1000
        figures = {
            "wall_ms": round(wall_ms, 1),
            "cpu_s": round(_cpu_s() - cpu, 2),
            "sim_cpu_s": round(process_cpu_seconds(sim_pid) - sim_cpu, 2),
            "machine_cpu_s": round(machine_cpu_seconds() - machine_cpu, 2),
            "states": dict(Counter(node.state for node in report.nodes)),
            "findings": len(report.findings),
            "probes": report.probes,
            **_kube_figures(_control(control, "GET", "/sim/v1/stats")),
        }
        known = {node.name: node.boot_id for node in report.nodes}
        if run:  # the first sweep warms the simulator's caches and is not measured
            measured.append(figures)
    watch.stop()
    result = {
        "first_list": first_list,
        "runs": measured,
        "concurrency": settings.sweep.concurrency,
        "rss_before_sweeps_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    config_path, control_url, pid, names, count = sys.argv[1:6]
    sys.exit(main(config_path, control_url, int(pid), names.split(","), int(count)))
