"""`clusters:` and `default_cluster` (SPEC §12): choosing a cluster and its merged settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SINGLE_CLUSTER, ConfigError, UnknownCluster, load_settings

TWO = """
slack: {alert_channel: C0ALL}
winrm: {scheme: http, port: 5985, transport: basic}
hyperv: {host_annotation: example.com/host}
clusters:
  - name: prod-eu
    kubeconfig: /etc/winpod/eu.kubeconfig
    alert_channel: C0EU
    winrm: {port: 5999}
  - {name: prod-us, context: prod-us}
default_cluster: prod-us
"""


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WINPOD_CONFIG", raising=False)


def test_without_clusters_the_one_kubernetes_section_is_the_default_cluster() -> None:
    settings = load_settings(None)

    assert settings.cluster_names == [SINGLE_CLUSTER]
    assert settings.resolve_cluster(None) == SINGLE_CLUSTER
    assert settings.for_cluster(SINGLE_CLUSTER) is settings
    assert not settings.many_clusters
    with pytest.raises(UnknownCluster, match="the clusters are: default"):
        settings.resolve_cluster("prod-eu")


def test_default_cluster_else_the_first(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, TWO))
    first = load_settings(_write(tmp_path, TWO.replace("default_cluster: prod-us", "")))

    assert settings.cluster_names == ["prod-eu", "prod-us"]
    assert settings.resolve_cluster(None) == "prod-us"
    assert first.resolve_cluster(None) == "prod-eu"


def test_unknown_cluster_is_a_usage_error_listing_the_clusters(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, TWO))

    with pytest.raises(UnknownCluster) as raised:
        settings.resolve_cluster("staging")

    assert "unknown cluster 'staging'" in str(raised.value)
    assert "prod-eu, prod-us" in str(raised.value)
    assert isinstance(raised.value, ConfigError)  # the CLI's exit 2


def test_a_cluster_sees_its_own_sections_over_the_top_level_ones(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, TWO))

    eu, us = settings.for_cluster("prod-eu"), settings.for_cluster("prod-us")

    assert (eu.kubernetes.kubeconfig, eu.kubernetes.context) == ("/etc/winpod/eu.kubeconfig", None)
    assert (us.kubernetes.kubeconfig, us.kubernetes.context) == (None, "prod-us")
    assert (eu.winrm.port, eu.winrm.scheme, eu.winrm.transport) == (5999, "http", "basic")
    assert (us.winrm.port, us.winrm.scheme) == (5985, "http")
    assert eu.hyperv.host_annotation == us.hyperv.host_annotation == "example.com/host"
    assert (eu.cluster, us.cluster, settings.cluster) == ("prod-eu", "prod-us", "prod-us")


def test_one_clusters_view_never_lends_its_sections_to_another(tmp_path: Path) -> None:
    settings = load_settings(
        _write(tmp_path, TWO.replace("  - {name: prod-us, context: prod-us}", "  - name: prod-us"))
    )

    us = settings.for_cluster("prod-eu").for_cluster("prod-us")

    assert (us.winrm.port, us.kubernetes.kubeconfig, us.kubernetes.context) == (5985, None, None)
    assert us.cluster == "prod-us"


def test_the_home_cluster_is_the_one_winpod_runs_in_else_the_first(tmp_path: Path) -> None:
    listed = load_settings(_write(tmp_path, TWO))
    inside = load_settings(
        _write(tmp_path, TWO.replace("default_cluster:", "  - {name: here}\ndefault_cluster:"))
    )

    assert listed.home_cluster == "prod-eu"
    assert inside.home_cluster == "here"  # no kubeconfig, no context: in-cluster in a pod


def test_alerts_go_to_the_clusters_channel_else_the_slack_one(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, TWO))

    assert settings.alert_channel_of("prod-eu") == "C0EU"
    assert settings.alert_channel_of("prod-us") == "C0ALL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clusters: [{name: a}, {name: a}]", "a listed more than once"),
        ("clusters: [{name: a}]\ndefault_cluster: b", "default_cluster: .*'b' is not one"),
        ("clusters: [{name: Prod_EU}]", "lowercase letters"),
        ("clusters: [{name: a, rdp: {max_ttl: 1h}}]", "unknown key"),
        ("clusters: [{name: a, winrm: 5}]", "winrm must be a mapping"),
    ],
)
def test_bad_clusters_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(_write(tmp_path, text))


def test_a_clusters_bad_section_is_refused_at_start_naming_the_cluster(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"clusters: .*a\.winrm: port: "):
        load_settings(_write(tmp_path, "clusters: [{name: a, winrm: {port: 0}}]"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "winpod.yaml"
    path.write_text(text)
    return path


def test_a_clusters_secrets_come_from_its_own_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINPOD_CLUSTER_PROD_EU__WINRM__USERNAME", "eu-admin")
    monkeypatch.setenv("WINPOD_CLUSTER_PROD_EU__WINRM__PASSWORD", "eu-secret")
    monkeypatch.setenv("WINPOD_WINRM__PASSWORD", "shared-secret")
    settings = load_settings(_write(tmp_path, TWO))

    eu, us = settings.for_cluster("prod-eu").winrm, settings.for_cluster("prod-us").winrm

    assert eu.username is not None and eu.username.get_secret_value() == "eu-admin"
    assert eu.password is not None and eu.password.get_secret_value() == "eu-secret"
    assert eu.port == 5999  # the rest of its YAML section stays
    assert us.password is not None and us.password.get_secret_value() == "shared-secret"
    assert "eu-secret" not in repr(settings)


def test_a_misspelt_cluster_variable_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINPOD_CLUSTER_PROD_EU__WINRN__PASSWORD", "x")

    with pytest.raises(ConfigError, match="WINPOD_CLUSTER_PROD_EU__WINRN__PASSWORD"):
        load_settings(_write(tmp_path, TWO))
