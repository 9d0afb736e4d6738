"""Settings: YAML plus environment overrides, validated once, with errors naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings, parse_duration

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WINPOD_CONFIG", raising=False)
    settings = load_settings()
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.winrm.port == 5986 and settings.winrm.transport == "ntlm"
    assert settings.winrm.verify is True
    assert settings.approvals.two_person == ["high"]
    assert settings.approvals.expire_after == timedelta(minutes=15)
    assert settings.sweep.interval == timedelta(minutes=5)
    assert settings.rdp.max_ttl == timedelta(hours=4)
    assert settings.store.url == "sqlite:///./winpod.db"
    assert settings.dry_run is False


def test_example_file_loads_and_env_placeholders_are_unset() -> None:
    settings = load_settings(ROOT / "config" / "winpod.example.yaml")
    assert settings.slack.bot_token is None
    assert settings.winrm.password is None
    assert settings.kubernetes.namespace == "winpod"


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("sweep: {concurrency: 4}\nslack: {alert_channel: C1}\n")
    monkeypatch.setenv("WINPOD_SWEEP__CONCURRENCY", "8")
    monkeypatch.setenv("WINPOD_SLACK__BOT_TOKEN", "xoxb-secret-value")
    settings = load_settings(path)
    assert settings.sweep.concurrency == 8
    assert settings.slack.alert_channel == "C1"
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-secret-value"
    assert "xoxb-secret-value" not in repr(settings)


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("kubernetes: {namespace: ops}\n")
    monkeypatch.setenv("WINPOD_CONFIG", str(path))
    assert load_settings().kubernetes.namespace == "ops"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sweep: {interval: soon}", "sweep.interval"),
        ("winrm: {port: 70000}", "winrm.port"),
        ("winrm: {operation_timeout_s: 40, read_timeout_s: 30}", "winrm.read_timeout_s"),
        ("slakc: {}", "slakc: unknown key"),
        ("approvals: {two_person: [extreme]}", "approvals.two_person"),
        ("[1, 2]", "must be a mapping"),
        ("slack: {api_url: ftp://x}", "slack.api_url"),
        ("a: [", "not valid YAML at line"),
        ("node: {transport: ssh}", "node.transport"),
        ("node: {script_timeout: 500ms}", "node.script_timeout"),
    ],
)
def test_bad_config_names_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert expected in str(error.value)
    assert "Traceback" not in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("15m", 900), ("4h", 14400), ("1d", 86400), (90, 90), ("250ms", 0.25)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["0s", "-5m", "five minutes", True])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
