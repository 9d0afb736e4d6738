"""The seed's DNS story from the terminal, on the AKS-style seed host (ext + azure): diagnose,
`winpod remediate hns-reset`, diagnose again; the management network stays and WinRM answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sim_process import RunningSim

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.wire


def winpod(sim: RunningSim, *argv: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WINPOD_")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv, "--config", str(sim.config)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def dns_finding(sim: RunningSim) -> dict[str, Any]:
    run = winpod(sim, "diagnose", "shop/api-0", "--output", "json")
    findings = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "dns-after-reboot"]
    assert len(findings) == 1, run.stdout
    finding: dict[str, Any] = findings[0]
    return finding


def test_hns_reset_cures_dns_and_leaves_the_management_network(
    sim_factory: Callable[..., RunningSim],
) -> None:
    sim = sim_factory()
    assert dns_finding(sim)["severity"] == "error"

    run = winpod(sim, "remediate", "hns-reset", "akswin000002", "--yes")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    host = sim.control("GET", "/sim/v1/hosts/akswin000002")
    assert [n["name"] for n in host["networks"] if n["management"]] == ["ext"]
    assert host["managementUp"] is True
    assert dns_finding(sim)["severity"] == "ok"  # read over WinRM: it still answers
