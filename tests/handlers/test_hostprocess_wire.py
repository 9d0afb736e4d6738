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
from handlers import engine, node_scripts, remediations
from handlers.context import Context, Transports
from handlers.errors import BadInput, OutcomeUnknown, Refused, TimedOut, WinpodError
from handlers.transports import NodeTarget
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


# --- refusals that name the fix ----------------------------------------------------------------


def node_status(cluster: Cluster, node: str, settings: Settings | None = None) -> Any:
    settings = settings or cluster.settings
    transports = build_transports(settings)
    found = transports.cluster.get("Node", node)
    return Context(transports, settings, "Node", None, found).node_status()


def with_node(cluster: Cluster, **node: Any) -> Settings:
    return cluster.settings.model_copy(
        update={"node": cluster.settings.node.model_copy(update=node)}
    )


def test_a_namespace_without_privileged_pod_security_is_refused_with_the_label(
    cluster: Cluster,
) -> None:
    label = "pod-security.kubernetes.io/enforce"
    cluster.transports.cluster.patch(
        "Namespace", "winpod", {"metadata": {"labels": {label: "baseline"}}}
    )
    try:
        with pytest.raises(Refused) as caught:
            node_status(cluster, "akswin000003")
    finally:
        cluster.transports.cluster.patch(
            "Namespace", "winpod", {"metadata": {"labels": {label: "privileged"}}}
        )

    message = str(caught.value)
    assert f"kubectl label namespace winpod {label}=privileged" in message
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in message
    assert cluster.winpod_pods() == []
    assert node_status(cluster, "akswin000003")["host"] == "akswin000003"  # the label fixes it


def test_an_image_the_node_cannot_pull_is_refused_naming_the_setting(cluster: Cluster) -> None:
    settings = with_node(cluster, hostprocess_image="registry.invalid/winpod/host:1.0")

    with pytest.raises(Refused) as caught:
        node_status(cluster, "akswin000003", settings)

    message = str(caught.value)
    assert "registry.invalid/winpod/host:1.0 cannot be pulled on node akswin000003" in message
    assert "ErrImagePull" in message and "set node.hostprocess_image" in message
    assert cluster.winpod_pods() == []


def test_a_node_that_is_not_windows_is_refused_before_any_pod(cluster: Cluster) -> None:
    shell = build_transports(cluster.settings).node_shell
    assert shell is not None
    before = cluster.stats()["hostprocess_pods"]

    with pytest.raises(BadInput, match="node aks-linux-0 is not a Windows node"):
        shell.run_script(NodeTarget("aks-linux-0", ""), node_scripts.render("node-memory"), 5)

    assert cluster.stats()["hostprocess_pods"] == before


def test_a_pod_that_never_starts_is_refused_and_nothing_ran(cluster: Cluster) -> None:
    cluster.sim.control("PATCH", "/sim/v1/hosts/akswin000005", {"services": {"kubelet": "Stopped"}})
    try:
        with pytest.raises(TimedOut) as caught:
            node_status(
                cluster, "akswin000005", with_node(cluster, script_timeout=timedelta(seconds=2))
            )
    finally:
        cluster.sim.control(
            "PATCH", "/sim/v1/hosts/akswin000005", {"services": {"kubelet": "Running"}}
        )

    message = str(caught.value)
    assert "never started on node akswin000005 within 2 s" in message
    assert "nothing ran on the node" in message
    assert cluster.winpod_pods() == []


def test_mac_spoofing_on_is_refused_without_winrm_with_the_reason(cluster: Cluster) -> None:
    with pytest.raises(WinpodError) as caught:
        remediations.plan(cluster.transports, cluster.settings, "mac-spoofing-on", "hvwin000004")

    assert "a Hyper-V host is no Kubernetes node: winpod reaches it over WinRM only" in str(
        caught.value
    )
    assert "winrm.username" in str(caught.value)


SEED_PODS = ("web/iis-0", "web/legacy-0", "jobs/worker-0", "web/nginx-7c5d", "web/report-0")


@pytest.mark.parametrize("reference", SEED_PODS)
def test_every_seed_problem_is_diagnosed_without_winrm(cluster: Cluster, reference: str) -> None:
    diagnosis = engine.diagnose_pod(cluster.transports, cluster.settings, reference)

    assert any(f.severity == "error" for f in diagnosis.findings), diagnosis.findings
    unread = [
        (f.check, e)
        for f in diagnosis.findings
        for e in f.evidence
        if "without its JSON result" in e or "WinRM is not configured" in e
    ]
    # only the Hyper-V host's read needs WinRM, and says so
    assert all(check == "apiserver-unreachable" for check, _ in unread), unread


@pytest.mark.parametrize(
    ("remediation", "node"),
    [("kube-proxy-restart", "akswin000000"), ("fix-sandbox-image", "akswin000005")],
)
def test_node_remediations_run_in_hostprocess_pods(
    cluster: Cluster, remediation: str, node: str
) -> None:
    plan = remediations.plan(cluster.transports, cluster.settings, remediation, node)

    outcome = remediations.execute(cluster.transports, cluster.settings, plan)

    assert outcome.ok, outcome.summary + outcome.output
    assert cluster.winpod_pods() == []
    assert cluster.stats()["winrm"] == 0


# Last: the node it picks stays without kubelet for the rest of the module.
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
