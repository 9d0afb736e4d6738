"""One simulator per check test module, on its own scenario, diagnosed through the real transports.

A test module names its scenario (a file under tests/scenarios/) in `SCENARIO`; the `cluster`
fixture starts `winpod sim` on it once and diagnoses pods and nodes with the same transports the
CLI builds (kubernetes client, pod exec over WebSocket, pywinrm over HTTPS with NTLM).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sim_process import ROOT, SCENARIOS, RunningSim, start_sim

from bot.wiring import build_transports
from config.settings import Settings, load_settings
from handlers import engine
from handlers.context import Transports
from handlers.model import Diagnosis, Finding


@dataclass
class CheckCluster:
    """A running simulator plus the bot's real transports; read-only diagnoses are memoised."""

    sim: RunningSim
    settings: Settings
    transports: Transports
    _seen: dict[tuple[str, str], Diagnosis] = field(default_factory=dict)

    def pod(self, reference: str, *, fresh: bool = False) -> Diagnosis:
        key = ("pod", reference)
        if fresh or key not in self._seen:
            self._seen[key] = engine.diagnose_pod(self.transports, self.settings, reference)
        return self._seen[key]

    def node(self, name: str, *, fresh: bool = False) -> Diagnosis:
        key = ("node", name)
        if fresh or key not in self._seen:
            self._seen[key] = engine.diagnose_node(self.transports, self.settings, name)
        return self._seen[key]

    def pod_finding(self, reference: str, check_id: str) -> Finding:
        return self.only(self.pod(reference), check_id)

    def node_finding(self, name: str, check_id: str) -> Finding:
        return self.only(self.node(name), check_id)

    @staticmethod
    def only(diagnosis: Diagnosis, check_id: str) -> Finding:
        """The one finding `check_id` produced in `diagnosis` (a check reports exactly one)."""
        found = [f for f in diagnosis.findings if f.check == check_id]
        assert len(found) == 1, f"{check_id}: expected one finding, got {found}"
        return found[0]

    @staticmethod
    def offered(finding: Finding) -> list[tuple[str, str, str]]:
        """(id, target, risk) of every remediation the finding offers, in order."""
        return [(r.id, r.target, r.risk) for r in finding.remediations]

    def winpod(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`winpod ARGS --config` this simulator's config, as a separate process (the CLI)."""
        return subprocess.run(
            [sys.executable, "-m", "bot", *args, "--config", str(self.sim.config)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
            check=False,
        )

    @contextmanager
    def fault(self, server: str, **knobs: Any) -> Iterator[None]:
        """Set fault knobs on one simulated server for the block, then clear what is left."""
        self.sim.control("POST", f"/sim/v1/faults/{server}", knobs)
        try:
            yield
        finally:
            self.sim.control("POST", f"/sim/v1/faults/{server}", {"fail_next": 0})


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CheckCluster]:
    scenario = SCENARIOS / request.module.SCENARIO
    sim = start_sim(scenario, tmp_path_factory.mktemp(scenario.stem))
    try:
        settings = load_settings(sim.config)
        yield CheckCluster(sim, settings, build_transports(settings))
    finally:
        sim.stop()
