"""A `winpod sim` process for tests: start it on a scenario, read its URLs, use its control API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
            self.urls["control"] + path,
            data=data,
            method=method,
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
        if self.process.stdout is not None:
            self.process.stdout.close()  # unclosed pipes are ResourceWarnings: errors here

    @property
    def log(self) -> str:
        """What the simulator wrote on stderr (kept in a file so it can never block)."""
        path = self.out / "sim.log"
        return path.read_text() if path.exists() else ""


def start_sim(scenario: Path, out: Path, extra_args: list[str] | None = None) -> RunningSim:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sim.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim",
                "--scenario",
                str(scenario),
                "--out",
                str(out),
                *(extra_args or []),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
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
        process.communicate(timeout=10)
        raise RuntimeError(f"simulator did not start: {(out / 'sim.log').read_text().strip()}")
    urls = json.loads((out / "sim.json").read_text())
    return RunningSim(process, out, urls)


def config_without_winrm(sim: RunningSim, **node: Any) -> Path:
    """The simulator's bot config (`sim.config`, rewritten) without WinRM credentials, as on a
    managed cluster, with `node` settings merged in; every host's WinRM listener off."""
    config = yaml.safe_load(sim.config.read_text())
    config["winrm"].pop("username")
    config["winrm"].pop("password")
    config["node"] = {"transport": "auto", **node}
    path = sim.config
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for host in sim.control("GET", "/sim/v1/hosts")["hosts"]:
        sim.control("PATCH", f"/sim/v1/hosts/{host['name']}", {"winrm": False})
    return path
