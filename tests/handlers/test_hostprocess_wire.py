"""The HostProcess node transport over the wire (SPEC §9): the bot's own transports, with no
WinRM credentials and every host's WinRM listener off, against the simulator's API server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sim_process import SEED, RunningSim, config_without_winrm, start_sim

from bot.wiring import build_transports
from config.settings import Settings, load_settings
from handlers import engine
from handlers.context import Transports
from handlers.transports.hostprocess import HostProcessShell

pytestmark = pytest.mark.wire


@dataclass
class Cluster:
    sim: RunningSim
    settings: Settings
    transports: Transports

    def winpod_pods(self) -> list[dict[str, Any]]:
        return self.transports.cluster.list(
            "Pod", namespace="winpod", label_selector="app.kubernetes.io/managed-by=winpod"
        )

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.sim.control("GET", "/sim/v1/stats")
        return stats


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    sim = start_sim(SEED, tmp_path_factory.mktemp("hostprocess"))
    try:
        settings = load_settings(config_without_winrm(sim))
        yield Cluster(sim, settings, build_transports(settings))
    finally:
        sim.stop()


def test_auto_without_winrm_credentials_picks_hostprocess(cluster: Cluster) -> None:
    assert isinstance(cluster.transports.node_shell, HostProcessShell)
    assert cluster.transports.hyperv_shell is None


def test_a_diagnosis_reads_hns_facts_in_a_hostprocess_pod(cluster: Cluster) -> None:
    before = cluster.stats()["hostprocess_pods"]

    diagnosis = engine.diagnose_pod(cluster.transports, cluster.settings, "shop/api-0")

    (finding,) = [f for f in diagnosis.findings if f.check == "dns-after-reboot"]
    assert finding.severity == "error"
    evidence = " ".join(finding.evidence)
    assert "HNS on akswin000002" in evidence, evidence
    stats = cluster.stats()
    assert stats["hostprocess_pods"] > before
    assert stats["winrm"] == 0
    assert cluster.winpod_pods() == []
