"""What every benchmark needs: a `winpod sim` subprocess, its control API, figures as JSON."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Issue 9: every benchmark runs with these latencies unless it says otherwise.
LATENCY_MS = {"kube": 10.0, "exec": 200.0, "winrm": 300.0}


@dataclass
class Sim:
    """A running `python -m sim` process: its out dir, URLs and control API."""

    process: subprocess.Popen[str]
    out: Path
    urls: dict[str, Any]

    @property
    def config(self) -> Path:
        return self.out / "winpod.yaml"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        raw = fetch(
            self.urls["control"] + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return json.loads(raw) if raw else None

    def set_latencies(self, latencies: dict[str, float] = LATENCY_MS) -> None:
        for server, latency in latencies.items():
            self.control("POST", f"/sim/v1/faults/{server}", {"latency_ms": latency})

    def reset_stats(self) -> None:
        self.control("POST", "/sim/v1/stats/reset")

    def requests(self) -> dict[str, int]:
        return dict(self.control("GET", "/sim/v1/stats")["requests"])

    def kube_get(self, path: str) -> int:
        """GET `path` from the simulated Kubernetes API; the size of the body."""
        kubeconfig = yaml.safe_load((self.out / "kubeconfig").read_text())
        token = kubeconfig["users"][0]["user"]["token"]
        body = fetch(
            self.urls["kube_api"] + path,
            headers={"Authorization": f"Bearer {token}"},
            context=ssl.create_default_context(cafile=str(self.out / "ca.pem")),
        )
        return len(body)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process, timeout_s=20)


def start_sim(scenario: Path, out: Path) -> Sim:
    """Start the simulator on `scenario` and wait for `sim ready` (big fleets take a while)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sim.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim", "--scenario", str(scenario), "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert process.stdout is not None
    said = [line := process.stdout.readline()]
    while line and line.strip() != "sim ready":
        said.append(line := process.stdout.readline())
    if line.strip() != "sim ready":
        process.kill()
        process.communicate(timeout=10)
        raise RuntimeError(
            f"the simulator did not start (exit {process.returncode}): "
            f"{''.join(said)}{(out / 'sim.log').read_text()}"
        )
    return Sim(process, out, json.loads((out / "sim.json").read_text()))


def write_scenario(path: Path, documents: Iterable[dict[str, Any]]) -> Path:
    """JSON documents are YAML flow documents: writing them is fast at any fleet size."""
    with path.open("w") as out:
        for document in documents:
            out.write("---\n")
            out.write(json.dumps(document))
            out.write("\n")
    return path


def fetch(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 60,
) -> bytes:
    """One HTTP request to the simulator or the bot, which only ever listen on loopback."""
    if not url.startswith(("http://127.", "https://127.")):
        raise ValueError(f"benchmarks talk to loopback addresses only, not {url}")
    # the scheme and host were checked just above
    request = urllib.request.Request(url, data, headers or {}, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def process_cpu_seconds(pid: int) -> float:
    """CPU time process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used so far, all cores (Linux /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def stop_process(process: subprocess.Popen[str], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; closes its stdout."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the value that `fraction` of the samples do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def emit(figures: dict[str, Any]) -> None:
    print(json.dumps(figures), flush=True)
