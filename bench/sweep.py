"""The post-reboot DNS sweep over a generated fleet: wall time, requests and peak RSS per size.

Each size gets its own simulator; the sweep itself runs in `bench.sweep_driver`, a process of
its own, so that its peak RSS is the sweep's and nothing else's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.harness import LATENCY_MS, ROOT, Sim, start_sim, write_scenario

SIZES = (100, 1000, 2000)
TARGET_SIZE = 1000  # issue 9's targets are stated at 1,000 nodes
TARGET_RATIO = 1.5
TARGET_PEAK_RSS_MB = 150.0
BROKEN_EVERY = 10  # 10 % of the nodes rebooted with stale DNS policies
DRIVER_TIMEOUT_S = 600
RUNS = 3  # measured sweeps per size; the median is reported
PROBES_IN_SEQUENCE = 2  # a failing node: through the Service, then straight to kube-dns


def bound_ms(probes: int, concurrency: int) -> float:
    """Issue 9's lower bound, `ceil(probes / concurrency) x exec latency + list latency`, made
    no smaller than what one failing node needs: its lookup to a kube-dns pod can only start
    after its lookup through the Service failed (two exec latencies). One list round trip: the
    sweep's five reads are independent of each other."""
    waves = max(math.ceil(probes / concurrency), PROBES_IN_SEQUENCE if probes else 0)
    return waves * LATENCY_MS["exec"] + LATENCY_MS["kube"]


def _sweep_once(sim: Sim) -> dict[str, Any]:
    """One sweep in a fresh driver process: its figures, the requests it made, the sim's CPU."""
    sim.reset_stats()
    sim_cpu = sim.cpu_seconds()
    result = subprocess.run(
        [sys.executable, "-m", "bench.sweep_driver", str(sim.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the sweep driver failed:\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["requests"] = sim.requests()
    figures["sim_cpu_s"] = round(sim.cpu_seconds() - sim_cpu, 2)
    return figures


def run_size(nodes: int, workdir: Path) -> dict[str, Any]:
    scenario = write_scenario(workdir / f"fleet-{nodes}.yaml", scenarios.fleet(nodes, BROKEN_EVERY))
    sim = start_sim(scenario, workdir / f"sim-{nodes}")
    try:
        sim.set_latencies()
        # A real API server answers from warm caches; the simulator builds its own (encoded
        # objects, network lookups) on first use. One unmeasured sweep warms them up.
        _sweep_once(sim)
        runs = [_sweep_once(sim) for _ in range(RUNS)]
    finally:
        sim.stop()
    runs.sort(key=lambda run: float(run["wall_ms"]))
    median = runs[len(runs) // 2]
    requests = median["requests"]
    broken = len(range(0, nodes, BROKEN_EVERY))
    probes = requests["exec"]  # every probe is one exec (nslookup)
    bound = bound_ms(probes, median["concurrency"])
    ratio = median["wall_ms"] / bound
    peak_rss = max(float(run["peak_rss_mb"]) for run in runs)
    figures: dict[str, Any] = {
        "benchmark": "sweep",
        "nodes": nodes,
        "broken_nodes": broken,
        "pods": broken * scenarios.PODS_PER_BROKEN_NODE
        + (nodes - broken) * scenarios.PODS_PER_NODE,
        "pods_per_node": {
            "broken": scenarios.PODS_PER_BROKEN_NODE,
            "healthy": scenarios.PODS_PER_NODE,
        },
        "runs": RUNS,
        "wall_ms": median["wall_ms"],
        "wall_ms_all": [run["wall_ms"] for run in runs],
        "api_requests": requests["kube"],
        "probes": probes,
        "pods_probed": median["pods_probed"],
        "node_states": median["states"],
        "findings": median["findings"],
        "concurrency": median["concurrency"],
        "peak_rss_mb": peak_rss,
        "rss_before_sweep_mb": median["rss_before_sweep_mb"],
        "bot_cpu_s": median["cpu_s"],
        "sim_cpu_s": median["sim_cpu_s"],
        # CPU the rest of the machine used meanwhile: other work on these 2 cores skews timings
        "other_cpu_s": round(
            max(0.0, median["machine_cpu_s"] - median["cpu_s"] - median["sim_cpu_s"]), 2
        ),
        "latency_ms": LATENCY_MS,
        "bound_ms": bound,
        "bound": (
            f"max(ceil({probes} probes / {median['concurrency']}), {PROBES_IN_SEQUENCE} in"
            f" sequence) x {LATENCY_MS['exec']:g} ms exec + {LATENCY_MS['kube']:g} ms list"
        ),
        "ratio": round(ratio, 2),
    }
    if nodes == TARGET_SIZE:
        figures["target"] = {"ratio_max": TARGET_RATIO, "peak_rss_mb_max": TARGET_PEAK_RSS_MB}
        figures["meets_target"] = ratio <= TARGET_RATIO and peak_rss <= TARGET_PEAK_RSS_MB
    return figures


def run(workdir: Path, sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    return [run_size(nodes, workdir) for nodes in sizes]
