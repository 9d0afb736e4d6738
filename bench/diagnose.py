"""200 pod diagnoses of the seed's problems, run as `winpod serve` runs them: latency and calls.

The scenario holds 34 copies of the seed, each on nodes of its own, so every diagnosis meets
its problem as the seed sets it up (one pod on the DNS-broken node, and so on). `diagnose` reads
the nodes over WinRM; `diagnose-hostprocess` runs the same node scripts in HostProcess pods
(`node.transport: hostprocess`) that take 2 s to start, as a real one with a cached image does.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.harness import (
    LATENCY_MS,
    Sim,
    machine_cpu_seconds,
    percentile,
    process_cpu_seconds,
    start_sim,
    write_scenario,
)
from bot.wiring import build_transports
from config.settings import Settings, WorkSettings, load_settings
from handlers.context import Transports
from handlers.engine import diagnose_pod

WORKERS = WorkSettings().workers  # the bot's default pool size

DIAGNOSES = 200
COPIES = 34  # 6 problem pods a copy: 204 pods, of which the first 200 are diagnosed
TARGET_RATIO = 1.2
# A node script over WinRM (pywinrm, NTLM) on a host winpod has no session with yet needs one
# NTLM round trip (negotiate → challenge) and the five WS-Management messages (Create shell,
# Command, Receive, Signal, Delete), each waiting for the one before. requests-ntlm also sends
# the first message once without credentials to learn the scheme (a 401): a client's habit,
# not a necessity, so not counted. On a host with a session in the cache
# (handlers.transports.winrm.SessionCache) the connection is authenticated already: 5 calls.
WINRM_CALLS_PER_SCRIPT = 6
WINRM_CALLS_REUSED = 5
# A node script in a HostProcess pod: create the pod, the pod's start, one read that sees it
# ended, its log, its deletion. How often winpod looks (its poll interval) is winpod's cost, so
# it is not in the bound.
HOSTPROCESS_START_S = 2.0
HOSTPROCESS_KUBE_CALLS = 4
TARGET_RATIO_HOSTPROCESS = 1.5
STEP_MS = {
    "kube": LATENCY_MS["kube"],
    "exec": LATENCY_MS["exec"],
    "winrm-script": WINRM_CALLS_PER_SCRIPT * LATENCY_MS["winrm"],
    "winrm-script-reused": WINRM_CALLS_REUSED * LATENCY_MS["winrm"],
    "hostprocess-script": HOSTPROCESS_KUBE_CALLS * LATENCY_MS["kube"] + HOSTPROCESS_START_S * 1000,
}
# Per seed problem, the calls that cannot overlap: each needs the answer of the one before.
# Every pod diagnosis reads node-status over WinRM from the start (node-services wants the
# node's services; the address comes with the node), so the probes in the pod (exec, 200 ms
# each, at most two one after the other) run beside that script and never lengthen the chain.
# Reads that could run beside the chain (events, Service IPs, pods on the node) are left out.
CHAINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "iis-0": ("image-os-mismatch", ("kube", "kube", "winrm-script")),
    "api-0": ("dns-after-reboot", ("kube", "kube", "winrm-script")),
    "legacy-0": ("serviceaccount-token", ("kube", "kube", "winrm-script")),
    # node-status says "Virtual Machine"; only then is MAC spoofing read on the Hyper-V host,
    # which every copy shares: its sessions are reused from the calibration run on
    "worker-0": (
        "apiserver-unreachable",
        ("kube", "kube", "winrm-script", "winrm-script-reused"),
    ),
    "nginx-7c5d": ("linux-pod-on-windows", ("kube", "kube", "winrm-script")),
    "report-0": ("pause-image", ("kube", "kube", "winrm-script")),
}


# The same chains with node-status in a HostProcess pod; the Hyper-V host is still WinRM.
CHAINS_HOSTPROCESS: dict[str, tuple[str, tuple[str, ...]]] = {
    problem: (check, tuple("hostprocess-script" if s == "winrm-script" else s for s in steps))
    for problem, (check, steps) in CHAINS.items()
}
Chains = dict[str, tuple[str, tuple[str, ...]]]


def chain_ms(steps: tuple[str, ...]) -> float:
    return sum(STEP_MS[step] for step in steps)


def _problem(reference: str) -> str:
    return reference.split("/", 1)[1].rsplit("-c", 1)[0]


def _timed(transports: Transports, settings: Settings, reference: str) -> tuple[str, float, int]:
    started = time.monotonic()
    diagnosis = diagnose_pod(transports, settings, reference)
    errors = sum(f.severity == "error" for f in diagnosis.findings)
    return reference, (time.monotonic() - started) * 1000, errors


def _calibrate(
    sim: Sim, transports: Transports, settings: Settings, references: list[str], chains: Chains
) -> dict[str, dict[str, Any]]:
    """One diagnosis of each problem alone: its calls and its latency without company."""
    per_problem: dict[str, dict[str, Any]] = {}
    for reference in references:
        sim.reset_stats()
        _, latency, errors = _timed(transports, settings, reference)
        requests = sim.requests()
        check, steps = chains[_problem(reference)]
        per_problem[_problem(reference)] = {
            "check": check,
            "alone_ms": round(latency, 1),
            "error_findings": errors,
            "requests": {k: requests[k] for k in ("kube", "exec", "winrm")},
            "chain": " -> ".join(steps),
            "chain_ms": chain_ms(steps),
        }
    return per_problem


def run(workdir: Path) -> dict[str, Any]:
    return _run(workdir, "diagnose", CHAINS, TARGET_RATIO, hostprocess=False)


def run_hostprocess(workdir: Path) -> dict[str, Any]:
    figures = _run(
        workdir,
        "diagnose-hostprocess",
        CHAINS_HOSTPROCESS,
        TARGET_RATIO_HOSTPROCESS,
        hostprocess=True,
    )
    figures["hostprocess_start_s"] = HOSTPROCESS_START_S
    return figures


def _run(
    workdir: Path, name: str, chains: Chains, target_ratio: float, hostprocess: bool
) -> dict[str, Any]:
    scenario = write_scenario(workdir / "seed-copies.yaml", scenarios.seed_copies(COPIES))
    references = scenarios.seed_problem_pods(COPIES)[:DIAGNOSES]
    sim = start_sim(scenario, workdir / f"sim-{name}")
    try:
        sim.set_latencies()
        settings = load_settings(sim.config)
        if hostprocess:
            sim.control("POST", "/sim/v1/hostprocess", {"start_delay_s": HOSTPROCESS_START_S})
            node = settings.node.model_copy(update={"transport": "hostprocess"})
            settings = settings.model_copy(update={"node": node})
        transports = build_transports(settings)
        per_problem = _calibrate(sim, transports, settings, references[: len(chains)], chains)
        sim.reset_stats()
        cpu = (process_cpu_seconds(os.getpid()), sim.cpu_seconds(), machine_cpu_seconds())
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="diagnose") as pool:
            results = list(pool.map(lambda ref: _timed(transports, settings, ref), references))
        wall_s = time.monotonic() - started
        bot_cpu = process_cpu_seconds(os.getpid()) - cpu[0]
        sim_cpu = sim.cpu_seconds() - cpu[1]
        other_cpu = machine_cpu_seconds() - cpu[2] - bot_cpu - sim_cpu
        requests = sim.requests()
        hostprocess_pods = int(sim.control("GET", "/sim/v1/stats")["hostprocess_pods"])
    finally:
        sim.stop()
    latencies = [latency for _, latency, _ in results]
    by_problem: dict[str, list[float]] = {}
    for reference, latency, _ in results:
        by_problem.setdefault(_problem(reference), []).append(latency)
    for problem, values in by_problem.items():
        per_problem[problem]["p50_ms"] = round(percentile(values, 0.5), 1)
        per_problem[problem]["count"] = len(values)
    longest = max(chains.values(), key=lambda chain: chain_ms(chain[1]))
    bound = chain_ms(longest[1])
    p95 = percentile(latencies, 0.95)
    return {
        "benchmark": name,
        "diagnoses": len(results),
        "concurrency": WORKERS,
        "mode": f"thread pool of {WORKERS} (work.workers); latency = diagnose_pod call",
        "wall_s": round(wall_s, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(max(latencies), 1),
        "with_error_finding": sum(1 for *_, errors in results if errors),
        "requests_per_diagnosis": {
            server: round(requests[server] / len(results), 2)
            for server in ("kube", "exec", "winrm")
        },
        "hostprocess_pods_per_diagnosis": round(hostprocess_pods / len(results), 2),
        "per_problem": per_problem,
        "latency_ms": LATENCY_MS,
        "winrm_calls_per_script": {
            "new_session": WINRM_CALLS_PER_SCRIPT,
            "reused": WINRM_CALLS_REUSED,
        },
        "bound_ms": bound,
        "bound": f"{longest[0]}: " + " -> ".join(longest[1]),
        "ratio": round(p95 / bound, 2),
        "bot_cpu_s": round(bot_cpu, 2),
        "sim_cpu_s": round(sim_cpu, 2),
        "other_cpu_s": round(max(0.0, other_cpu), 2),
        "target": {"ratio_max": target_ratio},
        "meets_target": p95 / bound <= target_ratio,
    }
