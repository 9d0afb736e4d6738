"""`gmsa` on the simulator: which of the three causes the evidence points to, and whether the
GMSACredentialSpec (and its CRD) exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from sim_process import SCENARIOS, start_sim

from bot.wiring import build_transports
from config.settings import load_settings
from handlers import engine
from handlers.model import Diagnosis

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_gmsa.yaml"
CHECK = "gmsa"


def test_the_webhook_refusing_use_points_to_rbac(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/webapp-6d4cf56db6-x7k2p", CHECK)

    assert finding.severity == "error"
    assert finding.title == "gMSA fails: RBAC `use` permission"
    assert "verb `use` on gmsacredentialspecs" in finding.summary
    assert any(
        e.startswith("event FailedCreate: ") and "not authorized `use` gMSA cred spec" in e
        for e in finding.evidence
    )
    assert "GMSACredentialSpec gmsa-webapp1: account CONTOSO\\WebApp1" in finding.evidence


def test_rpc_server_unavailable_with_a_good_spec_points_to_the_domain(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/billing-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "gMSA fails: the domain is unreachable"
    assert "TCP 53" in finding.summary
    assert any("0x6ba RPC_S_SERVER_UNAVAILABLE" in e for e in finding.evidence)


def test_the_same_symptom_with_a_missing_spec_points_to_the_spec(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/ledger-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "gMSA fails: the credential spec"
    assert "GMSACredentialSpec gmsa-ledger does not exist" in finding.evidence


def test_an_invalid_spec_refused_by_container_credential_guard(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/reports-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "gMSA fails: the credential spec"
    assert any(e.startswith("GMSACredentialSpec gmsa-broken is invalid") for e in finding.evidence)


def test_a_gmsa_pod_that_runs_fine_stays_quiet(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/webapp-ok", CHECK)
    minimal = cluster.pod_finding("web/intranet-0", CHECK)

    assert finding.severity == "ok"
    assert finding.evidence[0] == "gmsaCredentialSpecName: gmsa-webapp1"
    # an incomplete spec explains failures, but is no alarm while nothing fails
    assert minimal.severity == "ok"


def test_the_crd_objects_are_served_to_the_official_client(cluster: CheckCluster) -> None:
    api = _custom_objects(str(cluster.sim.kubeconfig))
    specs = api.list_cluster_custom_object("windows.k8s.io", "v1", "gmsacredentialspecs")

    assert sorted(s["metadata"]["name"] for s in specs["items"]) == [
        "gmsa-broken",
        "gmsa-minimal",
        "gmsa-webapp1",
    ]


@pytest.fixture(scope="module")
def no_crd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Diagnosis, str]]:
    sim = start_sim(SCENARIOS / "check_gmsa_no_crd.yaml", tmp_path_factory.mktemp("no-crd"))
    try:
        settings = load_settings(sim.config)
        yield (
            engine.diagnose_pod(build_transports(settings), settings, "web/webapp-0"),
            str(sim.kubeconfig),
        )
    finally:
        sim.stop()


def test_without_the_crd_it_says_so(no_crd: tuple[Diagnosis, str]) -> None:
    diagnosis, kubeconfig = no_crd
    (finding,) = [f for f in diagnosis.findings if f.check == CHECK]

    assert finding.severity == "warning"
    assert finding.title == "gMSA fails: the credential spec"
    assert any("the cluster has no GMSACredentialSpec CRD" in e for e in finding.evidence)
    with pytest.raises(ApiException) as refused:
        _custom_objects(kubeconfig).list_cluster_custom_object(
            "windows.k8s.io", "v1", "gmsacredentialspecs"
        )
    assert refused.value.status == 404


def _custom_objects(kubeconfig: str) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))
