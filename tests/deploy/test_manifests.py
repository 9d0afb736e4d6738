"""The manifests in deploy/ are valid Kubernetes 1.30 objects that run winpod locked down."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30"
SECRET_KEYS = {
    "WINPOD_SLACK__BOT_TOKEN",
    "WINPOD_SLACK__SIGNING_SECRET",
    "WINPOD_SLACK__APP_TOKEN",
    "WINPOD_WINRM__USERNAME",
    "WINPOD_WINRM__PASSWORD",
    "WINPOD_STORE__URL",
}
RBAC_KINDS = ("ClusterRole", "Role")
# Verbs that would let the ServiceAccount grant itself more than these manifests say.
ESCALATING_VERBS = {"escalate", "bind", "impersonate"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _applied() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/` creates (read once; tests must not change it)."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents(DEPLOY / name)]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for doc in _applied() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    containers = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _settings_of_the_config_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "winpod.yaml"
    config.write_text(_one("ConfigMap")["data"]["winpod.yaml"])
    (secret,) = _documents(DEPLOY / "examples" / "secret.example.yaml")
    for key, value in secret["stringData"].items():
        monkeypatch.setenv(key, value)
    return load_settings(config)


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_validates_strictly_against_kubernetes_1_30(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path} holds no object"
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {document['kind']} at {where or '(top)'}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{path.name}: {exc.message}")


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    top_level = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == top_level
    assert len(set(listed)) == len(listed)
    assert not any(doc["kind"] == "Secret" for doc in _applied())
    assert [i["name"] for i in kustomization["images"]] == [_container()["image"].split(":")[0]]


def test_every_applied_object_lives_in_the_winpod_namespace_or_is_cluster_wide() -> None:
    for doc in _applied():
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert namespace is None, doc["metadata"]["name"]
        else:
            assert namespace == "winpod", f"{doc['kind']} {doc['metadata']['name']}"
    assert _one("Namespace")["metadata"]["name"] == "winpod"


def test_rbac_has_no_wildcards_and_cannot_escalate() -> None:
    for role in (doc for doc in _applied() if doc["kind"] in RBAC_KINDS):
        for rule in role["rules"]:
            values = [v for key in rule for v in rule[key]]
            assert not any("*" in str(v) for v in values), f"{role['metadata']['name']}: {rule}"
            assert not ESCALATING_VERBS & set(rule["verbs"]), rule
            assert "secrets" not in rule.get("resources", []), "winpod never reads Secrets"
            assert "nonResourceURLs" not in rule, rule


def test_the_namespaced_role_is_only_in_winpods_namespace_and_bound_to_its_account() -> None:
    account = _one("ServiceAccount")["metadata"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": "winpod"}
    bindings = [d for d in _applied() if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    roles = {(d["kind"], d["metadata"]["name"]) for d in _applied() if d["kind"] in RBAC_KINDS}
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == roles
    for binding in bindings:
        assert binding["subjects"] == [subject]
    assert _one("Role")["metadata"]["namespace"] == "winpod"


def test_deployment_runs_two_replicas_of_winpod_serve_on_linux_nodes() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]
    container = _container()
    assert deployment["spec"]["replicas"] == 2
    assert container["command"] == ["winpod"]
    assert container["args"][0] == "serve"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )


def test_probes_and_metrics_use_port_9090_and_resources_are_bounded() -> None:
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9090
    assert container["args"][container["args"].index("--metrics-port") + 1] == "9090"
    assert container["args"][container["args"].index("--port") + 1] == str(ports["slack"])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 9090
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}


def test_container_is_non_root_read_only_and_without_privileges() -> None:
    pod_context = _one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    context = {**pod_context, **_container()["securityContext"]}  # the container's settings win
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = _one("Deployment")["spec"]["template"]["spec"]
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all("hostPath" not in volume for volume in pod["volumes"])


def test_only_tmp_is_writable_and_the_config_map_is_mounted_where_winpod_config_points() -> None:
    container = _container()
    pod = _one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]
    env = {e["name"]: e["value"] for e in container["env"]}
    config = Path(env["WINPOD_CONFIG"])
    mount = mounts[str(config.parent)]
    assert volumes[mount["name"]]["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
    assert config.name in _one("ConfigMap")["data"]
    assert container["envFrom"] == [{"secretRef": {"name": "winpod"}}]


def test_the_secret_template_carries_every_secret_and_is_not_applied() -> None:
    path = DEPLOY / "examples" / "secret.example.yaml"
    (secret,) = _documents(path)
    assert secret["kind"] == "Secret"
    assert secret["metadata"] == {**secret["metadata"], "name": "winpod", "namespace": "winpod"}
    assert set(secret["stringData"]) == SECRET_KEYS
    assert path.parent != DEPLOY  # `kubectl apply -f deploy/` does not descend into examples/


def test_config_map_and_secret_template_make_valid_settings_for_two_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a replica would load: the ConfigMap's winpod.yaml plus the Secret's variables."""
    settings = _settings_of_the_config_map(tmp_path, monkeypatch)
    assert settings.kubernetes.namespace == _one("Role")["metadata"]["namespace"]
    assert settings.kubernetes.kubeconfig is None  # in-cluster
    assert settings.kubernetes.leader_election is True
    assert settings.store.url.startswith("postgresql://")  # SQLite cannot serve two replicas
    assert settings.slack.app_token is not None  # Socket Mode: nothing has to reach the pods
    assert settings.winrm.scheme == "https" and settings.winrm.verify is True


def test_the_service_reaches_the_deployments_named_ports() -> None:
    service = _one("Service")
    pod = _one("Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for p in _container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_the_network_policy_lets_in_only_the_slack_and_metrics_ports() -> None:
    policy = _one("NetworkPolicy")
    pod = _one("Deployment")["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["spec"]["ingress"]
    named = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert {p["port"] for p in ingress["ports"]} == set(named) == {"slack", "metrics"}


def test_the_network_policy_lets_out_dns_the_api_slack_winrm_and_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_of_the_config_map(tmp_path, monkeypatch)
    egress = _one("NetworkPolicy")["spec"]["egress"]
    dns = [rule for rule in egress if rule.get("to")]
    assert [(p["port"], p["protocol"]) for rule in dns for p in rule["ports"]] == [
        (53, "UDP"),
        (53, "TCP"),
    ]
    anywhere = {
        (p["port"], p["protocol"]) for rule in egress if not rule.get("to") for p in rule["ports"]
    }
    store_port = int(settings.store.url.rsplit(":", 1)[1].split("/", 1)[0])
    assert anywhere == {
        (443, "TCP"),  # the API server's Service port and Slack (slack.api_url is https)
        (6443, "TCP"),
        (settings.winrm.port, "TCP"),
        (store_port, "TCP"),
    }
    assert settings.slack.api_url.startswith("https://")


def test_the_config_map_validates_winrm_certificates_against_a_mounted_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_of_the_config_map(tmp_path, monkeypatch)
    assert settings.winrm.verify is True and settings.winrm.allow_unverified is False
    assert settings.winrm.ca_bundle is not None
    bundle = Path(settings.winrm.ca_bundle)
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    mount = mounts[str(bundle.parent)]
    assert mount["readOnly"] is True
    source = volumes[mount["name"]]["configMap"]
    assert source["name"] == "winpod-winrm-ca"
    assert source.get("optional", False) is False  # no CA, no start: never unverified by accident
