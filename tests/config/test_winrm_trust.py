"""winpod refuses to send WinRM credentials to nodes whose certificates it does not check."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINPOD_WINRM__USERNAME", "winpod")
    monkeypatch.setenv("WINPOD_WINRM__PASSWORD", "Pw-not-a-real-one")


def config(tmp_path: Path, winrm: str) -> Path:
    path = tmp_path / "winpod.yaml"
    path.write_text(f"winrm: {winrm}\n")
    return path


@pytest.mark.usefixtures("credentials")
def test_verify_false_with_credentials_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"verify is false while WinRM credentials are set") as e:
        load_settings(config(tmp_path, "{verify: false}"))
    assert "winrm.ca_bundle" in str(e.value) and "winrm.allow_unverified" in str(e.value)
    assert "Pw-not-a-real-one" not in str(e.value)


@pytest.mark.usefixtures("credentials")
def test_verify_false_is_accepted_when_explicitly_allowed(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, "{verify: false, allow_unverified: true}"))
    assert settings.winrm.verify is False


@pytest.mark.usefixtures("credentials")
def test_verified_winrm_with_credentials_loads(tmp_path: Path) -> None:
    assert load_settings(config(tmp_path, "{ca_bundle: /etc/winpod-ca/ca.pem}")).winrm.verify


def test_verify_false_without_credentials_sends_nothing_and_loads(tmp_path: Path) -> None:
    assert load_settings(config(tmp_path, "{verify: false}")).winrm.verify is False
