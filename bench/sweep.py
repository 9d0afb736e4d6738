"""The post-reboot DNS sweep over generated fleets: API bytes, wall time, CPU and peak RSS.

Each size gets its own simulator; the bot's side runs in `bench.sweep_driver`, a process of
its own (watch on Nodes, reboots through the control API, sweeps), so that its peak RSS is the
bot's and nothing else's.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.harness import LATENCY_MS, ROOT, start_sim, write_scenario

SIZES = (1000, 5000, 10000)
REBOOTED = 100  # nodes rebooted before each measured sweep, whatever the fleet's size
RUNS = 3  # measured sweeps per size (after one that warms the simulator); the median counts
DRIVER_TIMEOUT_S = 1800
PROBES_IN_SEQUENCE = 2  # a failing node: through the Service, then straight to kube-dns
# The reads on a failing node's path, one after another: the kube-dns Service and its pods
# (before any node), its pods (the Node itself comes from the watch), then (deciding) its
# Rebooted events.
KUBE_READS_IN_SEQUENCE = 4
TARGETS = {
    "bytes_vs_smallest_max": 1.5,  # API bytes per sweep at the largest size / the smallest
    "wall_vs_bound_max": 1.2,
    "peak_rss_mb_max": 120.0,
}


def bound_ms(execs: int, concurrency: int) -> float:
    """`ceil(execs / concurrency)` waves of exec latency (never fewer than the two lookups a
    failing node makes one after the other), plus the kube reads on one node's path."""
    waves = max(math.ceil(execs / concurrency), PROBES_IN_SEQUENCE if execs else 0)
    return waves * LATENCY_MS["exec"] + KUBE_READS_IN_SEQUENCE * LATENCY_MS["kube"]


def run_size(nodes: int, workdir: Path) -> dict[str, Any]:
    scenario = write_scenario(workdir / f"fleet-{nodes}.yaml", scenarios.fleet(nodes, REBOOTED))
    sim = start_sim(scenario, workdir / f"sim-{nodes}")
    try:
        sim.set_latencies()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.sweep_driver",
                str(sim.config),
                sim.urls["control"],
                str(sim.process.pid),
                ",".join(scenarios.rebooted_nodes(nodes, REBOOTED)),
                str(RUNS),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT_S,
            check=False,
        )
    finally:
        sim.stop()
    if result.returncode != 0:
        raise RuntimeError(f"the sweep driver failed:\n{result.stderr}")
    driven: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    runs = sorted(driven["runs"], key=lambda run: float(run["wall_ms"]))
    median = runs[len(runs) // 2]
    bound = bound_ms(median["exec"], driven["concurrency"])
    return {
        "benchmark": "sweep",
        "nodes": nodes,
        "rebooted_nodes": REBOOTED,
        "pods": REBOOTED * scenarios.PODS_PER_BROKEN_NODE
        + (nodes - REBOOTED) * scenarios.PODS_PER_NODE,
        "runs": RUNS,
        "wall_ms": median["wall_ms"],
        "wall_ms_all": [run["wall_ms"] for run in driven["runs"]],
        "api_requests": median["api_requests"],
        "api_bytes": median["api_bytes"],
        "api_bytes_all": [run["api_bytes"] for run in driven["runs"]],
        "by_resource": median["by_resource"],
        "pods_probed": median["probes"],
        "execs": median["exec"],
        "node_states": median["states"],
        "findings": median["findings"],
        "concurrency": driven["concurrency"],
        "peak_rss_mb": driven["peak_rss_mb"],
        "rss_after_first_list_mb": driven["rss_before_sweeps_mb"],
        "bot_cpu_s": median["cpu_s"],
        "sim_cpu_s": median["sim_cpu_s"],
        # CPU the rest of the machine used meanwhile: other work on these 2 cores skews timings
        "other_cpu_s": round(
            max(0.0, median["machine_cpu_s"] - median["cpu_s"] - median["sim_cpu_s"]), 2
        ),
        "first_list": driven["first_list"],
        "latency_ms": LATENCY_MS,
        "bound_ms": bound,
        "bound": (
            f"max(ceil({median['exec']} execs / {driven['concurrency']}),"
            f" {PROBES_IN_SEQUENCE} in sequence) x {LATENCY_MS['exec']:g} ms exec"
            f" + {KUBE_READS_IN_SEQUENCE} x {LATENCY_MS['kube']:g} ms reads"
        ),
        "ratio": round(median["wall_ms"] / bound, 2),
        "meets_targets": {
            "wall_vs_bound": median["wall_ms"] / bound <= TARGETS["wall_vs_bound_max"],
            "peak_rss": driven["peak_rss_mb"] <= TARGETS["peak_rss_mb_max"],
        },
    }


def run(workdir: Path, sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    """One object per size, then one comparing API bytes across the sizes."""
    figures = [run_size(nodes, workdir) for nodes in sizes]
    smallest, largest = figures[0], figures[-1]
    ratio = statistics.median(largest["api_bytes_all"]) / max(
        1, statistics.median(smallest["api_bytes_all"])
    )
    figures.append(
        {
            "benchmark": "sweep-scaling",
            "sizes": list(sizes),
            "api_bytes": {str(f["nodes"]): f["api_bytes"] for f in figures},
            "peak_rss_mb": {str(f["nodes"]): f["peak_rss_mb"] for f in figures},
            "bytes_largest_vs_smallest": round(ratio, 2),
            "targets": TARGETS,
            "meets_targets": ratio <= TARGETS["bytes_vs_smallest_max"]
            and all(all(f["meets_targets"].values()) for f in figures),
        }
    )
    return figures
