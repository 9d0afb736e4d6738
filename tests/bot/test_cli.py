"""`winpod diagnose` / `node` / `explain` as a person runs them: the real console script, in a
subprocess, against the seed simulator — output, JSON shape and exit codes (SPEC §2, §3)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sim_process import ROOT, RunningSim

pytestmark = pytest.mark.wire

POD_CHECKS = {
    "image-os-mismatch",
    "pause-image",
    "linux-pod-on-windows",
    "dns-after-reboot",
    "serviceaccount-token",
    "apiserver-unreachable",
    "node-services",
}
ALL_CHECKS = [
    "image-os-mismatch",
    "pause-image",
    "linux-pod-on-windows",
    "dns-after-reboot",
    "serviceaccount-token",
    "apiserver-unreachable",
    "node-clusterip",
    "node-services",
]
FINDING_KEYS = {"check", "severity", "title", "summary", "evidence", "remediations", "docs"}
MALFORMED = {
    "web": "'web' is not a pod reference; expected NAMESPACE/POD, e.g. web/iis-0",
    "web/iis;rm -rf /": "is not a pod reference; expected NAMESPACE/POD",
    "web/$(whoami)": "'$(whoami)' is not a valid pod name",
    "Web/IIS": "'Web' is not a valid namespace",
}
WRONG_PASSWORD = "Wr0ng-winrm-Passw0rd-for-test"
CLI_TIMEOUT_S = 120


@dataclass(frozen=True)
class Run:
    """One finished `winpod` process."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict[str, object]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data


def winpod(*argv: str, env: dict[str, str] | None = None) -> Run:
    """Run `python -m bot ARGV` with a clean WINPOD_* environment plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WINPOD_")}
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "bot", *argv],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    run = Run(argv, process.returncode, process.stdout, process.stderr, time.monotonic() - started)
    # whatever happens, a person never sees a Python traceback
    assert "Traceback" not in run.stdout + run.stderr, run
    return run


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _kubeconfig_variant(sim: RunningSim, path: Path, server: str | None, token: str | None) -> Path:
    """The simulator's kubeconfig with its server URL or bearer token replaced."""
    config = yaml.safe_load(sim.kubeconfig.read_text())
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        config["users"][0]["user"]["token"] = token
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def runs(seed_sim: RunningSim, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every read-only invocation, run a few at a time (each process pays the import cost)."""
    tmp = tmp_path_factory.mktemp("cli")
    config = str(seed_sim.config)
    down = _kubeconfig_variant(
        seed_sim, tmp / "down.kubeconfig", f"https://127.0.0.1:{_closed_port()}", None
    )
    bad_token = _kubeconfig_variant(seed_sim, tmp / "token.kubeconfig", None, "not-the-token")
    api_down = {"WINPOD_KUBERNETES__KUBECONFIG": str(down)}
    (tmp / "bad-value.yaml").write_text("winrm:\n  port: lots\n")
    (tmp / "bad-key.yaml").write_text("winrmm:\n  port: 5986\n")
    specs: dict[str, tuple[list[str], dict[str, str]]] = {
        "healthy": (["diagnose", "web/iis-healthy", "--config", config], {}),
        "healthy-json": (["diagnose", "web/iis-healthy", "--config", config, "-o", "json"], {}),
        "broken": (["diagnose", "web/iis-0", "--config", config], {}),
        "broken-json": (["diagnose", "web/iis-0", "--config", config, "--output", "json"], {}),
        "node-json": (["node", "akswin000002", "--config", config, "-o", "json"], {}),
        "missing": (["diagnose", "web/x", "--config", config], {}),
        "api-down": (["diagnose", "web/iis-healthy", "--config", config], api_down),
        "bad-token": (
            ["diagnose", "web/iis-healthy", "--config", config],
            {"WINPOD_KUBERNETES__KUBECONFIG": str(bad_token)},
        ),
        "winrm-password": (
            ["diagnose", "shop/api-0", "--config", config],
            {"WINPOD_WINRM__PASSWORD": WRONG_PASSWORD},
        ),
        "bad-value": (["diagnose", "web/iis-0", "--config", str(tmp / "bad-value.yaml")], {}),
        "bad-key": (["diagnose", "web/iis-0", "--config", str(tmp / "bad-key.yaml")], {}),
        "node-malformed": (["node", "akswin;calc.exe", "--config", config], api_down),
        "explain": (["explain", "dns-after-reboot"], {}),
        "explain-unknown": (["explain", "nope"], {}),
    }
    for reference in MALFORMED:
        specs[f"malformed {reference}"] = (["diagnose", reference, "--config", config], api_down)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(winpod, *argv, env=env) for name, (argv, env) in specs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture
def winrm_hang(seed_sim: RunningSim) -> Iterator[None]:
    seed_sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 5, "mode": "hang", "hang_s": 30})
    yield
    seed_sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 0})


# --- WinRM hangs (first in the module: the simulator can only stop once the hung request has
# slept its 30 s, which the other runs give it time to do) -----------------------------------


@pytest.mark.usefixtures("winrm_hang")
def test_hanging_winrm_is_bounded_by_the_configured_timeout(seed_sim: RunningSim) -> None:
    run = winpod(
        "diagnose",
        "web/iis-healthy",
        "--config",
        str(seed_sim.config),
        "-o",
        "json",
        env={"WINPOD_WINRM__OPERATION_TIMEOUT_S": "2", "WINPOD_WINRM__READ_TIMEOUT_S": "3"},
    )
    diagnosis = run.json()
    findings = diagnosis["findings"]
    assert isinstance(findings, list)
    services = next(f for f in findings if f["check"] == "node-services")

    assert run.returncode == 0
    assert services["severity"] == "warning"
    assert services["title"] == "Could not check the services on akswin000000"
    assert re.fullmatch(
        r"WinRM on 127\.0\.\d+\.\d+:\d+ did not answer within 3 s", services["summary"]
    )
    # the 3 s read timeout bounds the diagnosis, far below the 30 s the node hangs
    assert isinstance(diagnosis["duration_ms"], int) and diagnosis["duration_ms"] < 10_000


# --- diagnose -------------------------------------------------------------------------------


def test_healthy_pod_exits_0_with_readable_text(runs: dict[str, Run]) -> None:
    run = runs["healthy"]

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Pod web/iis-healthy on akswin000000 — Running"
    assert lines[1].startswith(
        "  node akswin000000: Windows Server 2019 Datacenter (build 17763), boot ID "
    )
    assert "✔ OK  DNS works in the pod [dns-after-reboot]" in run.stdout
    assert re.search(r"^0 error\(s\), 0 warning\(s\), \d+ info, \d+ ok · \d+ ms$", run.stdout, re.M)
    assert "\033[" not in run.stdout  # piped: no colour codes


def test_healthy_pod_gets_no_error_or_warning_from_any_check(runs: dict[str, Run]) -> None:
    diagnosis = runs["healthy-json"].json()
    findings = diagnosis["findings"]
    assert isinstance(findings, list)

    assert runs["healthy-json"].returncode == 0
    assert {f["check"] for f in findings} >= POD_CHECKS
    assert {f["severity"] for f in findings} <= {"ok", "info"}


def test_broken_pod_exits_1_with_the_finding_and_its_fix(runs: dict[str, Run]) -> None:
    run = runs["broken"]

    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith("Pod web/iis-0 on akswin000001 — Pending/ContainerCreating\n")
    assert "✖ ERROR  Container image built for another Windows version [image-os-mismatch]" in (
        run.stdout
    )
    assert re.search(
        r"^    fix: pin-windows-build \(low risk\) on web/iis-0 ", run.stdout, re.MULTILINE
    )
    assert "      • event FailedCreatePodSandBox: Failed to create pod sandbox" in run.stdout
    assert "    docs: https://learn.microsoft.com/" in run.stdout
    assert re.search(r"^1 error\(s\), 0 warning\(s\)", run.stdout, re.MULTILINE)


def test_json_output_has_exactly_the_documented_keys(runs: dict[str, Run]) -> None:
    run = runs["broken-json"]
    diagnosis = run.json()

    assert run.returncode == 1
    # SPEC §3's keys, and the cluster it came from (§12; "default" without `clusters:`)
    assert set(diagnosis) == {"cluster", "target", "node", "findings", "duration_ms"}
    assert diagnosis["cluster"] == "default"
    assert diagnosis["target"] == {
        "kind": "Pod",
        "namespace": "web",
        "name": "iis-0",
        "node": "akswin000001",
        "phase": "Pending",
        "reason": "ContainerCreating",
    }
    node = diagnosis["node"]
    assert isinstance(node, dict)
    assert set(node) == {"name", "build", "kernelVersion", "osImage", "bootID"}
    assert (node["name"], node["build"], node["kernelVersion"]) == (
        "akswin000001",
        17763,
        "10.0.17763.2061",
    )
    assert node["osImage"] == "Windows Server 2019 Datacenter"
    assert isinstance(node["bootID"], str)
    findings = diagnosis["findings"]
    assert isinstance(findings, list) and findings
    for finding in findings:
        assert set(finding) == FINDING_KEYS
        assert finding["severity"] in ("error", "warning", "info", "ok")
        assert all(set(r) == {"id", "target", "risk"} for r in finding["remediations"])
    first = findings[0]
    assert (first["check"], first["severity"]) == ("image-os-mismatch", "error")
    assert first["remediations"] == [
        {"id": "pin-windows-build", "target": "web/iis-0", "risk": "low"}
    ]
    assert any(e.startswith("event FailedCreatePodSandBox: ") for e in first["evidence"])
    assert isinstance(diagnosis["duration_ms"], int)


def test_node_diagnosis_json_targets_the_node(runs: dict[str, Run]) -> None:
    run = runs["node-json"]
    diagnosis = run.json()
    target = diagnosis["target"]
    findings = diagnosis["findings"]
    assert isinstance(target, dict) and isinstance(findings, list)

    assert target["kind"] == "Node"
    assert target["name"] == "akswin000002"
    assert "namespace" not in target
    dns = next(f for f in findings if f["check"] == "dns-after-reboot")
    assert dns["severity"] == "error"  # the seed's stale-policy node
    assert run.returncode == 1
    assert "node-clusterip" in {f["check"] for f in findings}


# --- bad input: exit 2, before any connection ------------------------------------------------


def test_missing_pod_exits_2_naming_pod_and_context(runs: dict[str, Run]) -> None:
    run = runs["missing"]

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip() == "winpod: pod web/x not found in context winpod-sim"


@pytest.mark.parametrize("reference", list(MALFORMED))
def test_malformed_references_are_refused_before_connecting(
    runs: dict[str, Run], reference: str
) -> None:
    # the kubeconfig points at a closed port: exit 2 (not 3) proves no connection was tried
    run = runs[f"malformed {reference}"]

    assert run.returncode == 2, run.stderr
    assert MALFORMED[reference] in run.stderr
    assert "Kubernetes API" not in run.stderr


def test_malformed_node_name_is_refused_before_connecting(runs: dict[str, Run]) -> None:
    run = runs["node-malformed"]

    assert run.returncode == 2
    assert "'akswin;calc.exe' is not a valid node name" in run.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-value", "winrm.port: Input should be a valid integer"),
        ("bad-key", "winrmm: unknown key"),
    ],
)
def test_invalid_config_exits_2_naming_the_key(
    runs: dict[str, Run], name: str, message: str
) -> None:
    run = runs[name]

    assert run.returncode == 2
    assert run.stderr.startswith("winpod: invalid configuration (")
    assert message in run.stderr


# --- the environment fails: exit 3, or a warning finding ------------------------------------


def test_api_server_down_exits_3_with_a_plain_message(runs: dict[str, Run]) -> None:
    run = runs["api-down"]

    assert run.returncode == 3
    assert run.stdout == ""
    assert run.stderr.startswith("winpod: cannot reach the Kubernetes API")
    assert len(run.stderr.strip().splitlines()) == 1


def test_refused_bearer_token_exits_3(runs: dict[str, Run]) -> None:
    run = runs["bad-token"]

    assert run.returncode == 3
    assert "refused" in run.stderr
    assert "not-the-token" not in run.stderr


def test_refused_winrm_credentials_are_a_warning_and_never_echoed(
    runs: dict[str, Run], seed_sim: RunningSim
) -> None:
    run = runs["winrm-password"]
    real_password = yaml.safe_load(seed_sim.config.read_text())["winrm"]["password"]

    # the pod's own DNS error still decides the exit code; WinRM only limits what is seen
    assert run.returncode == 1
    assert re.search(
        r"▲ WARNING  Could not check the services on akswin000002 \[node-services\]\n"
        r"    WinRM on 127\.0\.\d+\.\d+:\d+ refused the configured credentials",
        run.stdout,
    )
    assert "could not read HNS state on the node" in run.stdout
    for secret in (WRONG_PASSWORD, real_password):
        assert secret not in run.stdout + run.stderr


# --- explain --------------------------------------------------------------------------------


def test_explain_prints_cause_signals_fixes_and_links(runs: dict[str, Run]) -> None:
    run = runs["explain"]

    assert run.returncode == 0
    assert run.stdout.startswith("dns-after-reboot — DNS after a node reboot\n")
    for heading in ("Cause:", "Signals winpod looks for:", "Fixes:", "Read more:"):
        assert f"\n{heading}\n" in run.stdout
    assert "  • hns-reset: " in run.stdout
    assert "  • https://github.com/Azure/acs-engine/issues/2027" in run.stdout


def test_explain_of_an_unknown_check_lists_the_known_ones(runs: dict[str, Run]) -> None:
    run = runs["explain-unknown"]

    assert run.returncode == 2
    assert run.stderr.startswith("winpod: unknown check 'nope'; the checks are:")
    listed = [line.split()[0] for line in run.stderr.splitlines()[1:]]
    assert set(ALL_CHECKS) <= set(listed)


def test_no_case_prints_a_traceback(runs: dict[str, Run]) -> None:
    assert len(runs) == 18
    for run in runs.values():
        assert "Traceback" not in run.stdout + run.stderr
        assert run.returncode in (0, 1, 2, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ("audit", "--last", "99999999999999999999999"),
        ("audit", "--last", "0"),
        ("audit", "--last", "-5"),
        ("audit", "--last", "1e9"),
        ("serve", "--port", "70000"),
        ("serve", "--metrics-port", "99999999999999999999"),
        ("sim", "--scenario", "x", "--out", "y", "--winrm-port", "-1"),
    ],
)
def test_a_number_out_of_range_is_a_usage_error_without_a_traceback(argv: tuple[str, ...]) -> None:
    run = winpod(*argv)
    assert run.returncode == 2, run
    assert "expected a whole number from" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
