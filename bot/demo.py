"""`winpod demo`: start the simulator on the seed scenario and walk through it with the real bot."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from bot import render_text
from bot.wiring import build_transports
from config.settings import load_settings
from handlers import engine

SEED_PODS = (
    ("web/iis-healthy", "a healthy IIS pod on a healthy Windows Server 2019 node"),
    ("web/iis-0", "an ltsc2022 image on a 2019 node, stuck in ContainerCreating"),
    ("shop/api-0", "a pod on a node that rebooted: DNS fails until HNS is reset"),
    ("web/legacy-0", "a pod on an old 1709 host: the ServiceAccount token is unreadable"),
    ("jobs/worker-0", "a pod on a Hyper-V VM node with MAC address spoofing off"),
    ("web/nginx-7c5d", "a Linux image scheduled onto a Windows node"),
    ("web/report-0", "a Server 2022 node configured with a wrong pause image"),
)


def _start_simulator(out: Path) -> subprocess.Popen[str]:
    scenario = resources.files("sim") / "scenarios" / "seed.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "--scenario", str(scenario), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "sim ready":
        process.kill()
        raise RuntimeError(f"the simulator did not start: {process.communicate()[1].strip()}")
    return process


def run_demo(colour: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="winpod-demo-") as tmp:
        out = Path(tmp)
        print("Starting the simulated Windows cluster (seed scenario)…", flush=True)
        process = _start_simulator(out)
        try:
            settings = load_settings(out / "winpod.yaml")
            transports = build_transports(settings)
            print(f"Simulator ready: kubeconfig {out / 'kubeconfig'}\n", flush=True)
            for reference, story in SEED_PODS:
                print("=" * 100)
                print(f"$ winpod diagnose {reference}      # {story}")
                diagnosis = engine.diagnose_pod(transports, settings, reference)
                print(render_text.diagnosis_text(diagnosis, colour), flush=True)
                print()
            print("=" * 100)
            print("$ winpod node akswin000002      # the rebooted node itself")
            diagnosis = engine.diagnose_node(transports, settings, "akswin000002")
            print(render_text.diagnosis_text(diagnosis, colour))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    return 0
