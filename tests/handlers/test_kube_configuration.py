"""Loading the kubeconfig: the environment's proxy is honoured, and read once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client import configuration as client_configuration

from config.settings import KubernetesSettings
from handlers.transports.kube import load_configuration


def kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_the_environments_proxy_is_used_and_not_read_again_before_each_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    configuration, context = load_configuration(
        KubernetesSettings(kubeconfig=str(kubeconfig(tmp_path / "config")))
    )
    assert (context, configuration.proxy) == ("ctx", "http://proxy.example:3128")

    reads: list[int] = []
    real = client_configuration.getproxies
    monkeypatch.setattr(client_configuration, "getproxies", lambda: reads.append(1) or real())
    for _ in range(3):  # what the client does before every request with a bearer token
        assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer t0ken"
    assert reads == []
    assert configuration.proxy == "http://proxy.example:3128"
