"""The HostProcess node transport over the wire (SPEC §9): the bot's own transports, with no
WinRM credentials and every host's WinRM listener off, against the simulator's API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sim_process import SEED, RunningSim, config_without_winrm, start_sim

from bot.wiring import build_transports
from config.settings import Settings, load_settings
from handlers import engine, remediations
from handlers.context import Transports
from handlers.errors import OutcomeUnknown
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


def test_hns_reset_runs_in_a_pod_that_outlives_kubelets_restart(cluster: Cluster) -> None:
    cluster.sim.control("POST", "/sim/v1/hostprocess", {"kubelet_restart_s": 1.5})
    plan = remediations.plan(cluster.transports, cluster.settings, "hns-reset", "akswin000002")
    assert "in a HostProcess pod on akswin000002" in plan.what
    assert plan.data["transport"] == "hostprocess"

    outcome = remediations.execute(cluster.transports, cluster.settings, plan)

    assert outcome.ok, outcome.summary + outcome.output
    assert "hns-reset on akswin000002 succeeded" in outcome.summary
    steps = {s["step"]: s["ok"] for s in json.loads(outcome.output)["steps"]}
    assert steps["stop kubelet"] and steps["start kubelet"]
    host = cluster.sim.control("GET", "/sim/v1/hosts/akswin000002")
    assert host["dns"] == "ok" and host["services"]["kubelet"] == "Running"
    assert any(h.startswith("hostprocess pod winpod-hns-reset-") for h in host["history"])
    diagnosis = engine.diagnose_pod(cluster.transports, cluster.settings, "shop/api-0")
    (finding,) = [f for f in diagnosis.findings if f.check == "dns-after-reboot"]
    assert finding.severity == "ok"
    assert cluster.winpod_pods() == []
    assert cluster.stats()["winrm"] == 0


def test_a_node_whose_kubelet_never_comes_back_is_outcome_unknown(cluster: Cluster) -> None:
    settings = cluster.settings.model_copy(
        update={
            "node": cluster.settings.node.model_copy(
                update={"script_timeout": timedelta(seconds=3)}
            )
        }
    )
    transports = build_transports(settings)
    cluster.sim.control("POST", "/sim/v1/hostprocess", {"kubelet_restart_s": 600})
    try:
        plan = remediations.plan(transports, settings, "hns-reset", "akswin000001")
        with pytest.raises(OutcomeUnknown) as caught:
            remediations.execute(transports, settings, plan)
    finally:
        cluster.sim.control("POST", "/sim/v1/hostprocess", {"kubelet_restart_s": 1.0})

    assert (
        "outcome unknown: hns-reset was started in a HostProcess pod on node akswin000001"
        in str(caught.value)
    )
    assert cluster.winpod_pods() == []  # deleted all the same
