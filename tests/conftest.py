"""Shared fixtures: start `winpod sim` as a real process on a scenario and talk to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SEED = ROOT / "sim" / "scenarios" / "seed.yaml"


@dataclass
class RunningSim:
    """A `winpod sim` process: its out dir, URLs and a small client for the control API."""

    process: subprocess.Popen[str]
    out: Path
    urls: dict[str, Any]

    @property
    def kubeconfig(self) -> Path:
        return self.out / "kubeconfig"

    @property
    def config(self) -> Path:
        return self.out / "winpod.yaml"

    @property
    def ca(self) -> Path:
        return self.out / "ca.pem"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.urls["control"] + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sim(scenario: Path, out: Path, extra_args: list[str] | None = None) -> RunningSim:
    out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "--scenario", str(scenario), "--out", str(out),
         *(extra_args or [])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == "sim ready" or not line:
            break
    if line.strip() != "sim ready":
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"simulator did not start: {err.strip()}")
    urls = json.loads((out / "sim.json").read_text())
    return RunningSim(process, out, urls)


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., RunningSim]]:
    """Start a simulator on a scenario (a path, or a file name under tests/scenarios/)."""
    started: list[RunningSim] = []

    def factory(scenario: str | Path = SEED, extra_args: list[str] | None = None) -> RunningSim:
        path = Path(scenario)
        if not path.is_absolute() and not path.exists():
            path = SCENARIOS / path
        sim = start_sim(path, tmp_path / f"sim{len(started)}", extra_args)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def seed_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    """One simulator on the seed scenario shared by a test module (read-mostly tests)."""
    sim = start_sim(SEED, tmp_path_factory.mktemp("seed-sim"))
    yield sim
    sim.stop()
