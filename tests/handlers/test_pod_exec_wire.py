"""The pod exec adapter (`KubePodExec`) over the wire: the simulator's exec WebSocket with its
TLS, bearer token and `Status` answers, as an API server gives them. The checks' tests use the
same adapter; these pin what each failure becomes for the reader."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import certifi
import pytest
from sim_process import SEED, RunningSim, start_sim

from config.settings import Settings, load_settings
from handlers.errors import NotFound, Refused, TimedOut, Unreachable
from handlers.transports.kube import KubePodExec, load_configuration

pytestmark = pytest.mark.wire

POD = ("shop", "api-0")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SEED, tmp_path_factory.mktemp("exec"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def settings(sim: RunningSim) -> Settings:
    return load_settings(sim.config)


def pod_exec(settings: Settings, **change: Any) -> KubePodExec:
    configuration, _context = load_configuration(settings.kubernetes)
    for name, value in change.items():
        setattr(configuration, name, value)
    return KubePodExec(configuration)


@pytest.fixture
def faults(sim: RunningSim) -> Iterator[RunningSim]:
    yield sim
    sim.control("POST", "/sim/v1/faults/exec", {"fail_next": 0, "latency_ms": 0})


def test_stdout_stderr_and_exit_code_come_back(settings: Settings) -> None:
    exec_ = pod_exec(settings)

    said = exec_.run(*POD, None, ["cmd", "/c", "echo", "hello"], 10)
    failed = exec_.run(*POD, None, ["cmd", "/c", "exit", "3"], 10)
    not_simulated = exec_.run(*POD, None, ["no-such-program.exe"], 10)

    assert (said.stdout.strip(), said.exit_code) == ("hello", 0)
    assert failed.exit_code == 3
    assert not_simulated.exit_code != 0 and not_simulated.stderr


def test_a_missing_pod_is_not_found(settings: Settings) -> None:
    with pytest.raises(NotFound, match="exec in pod shop/no-such-pod: pod not found"):
        pod_exec(settings).run("shop", "no-such-pod", None, ["cmd", "/c", "echo"], 10)


def test_a_container_the_pod_lacks_is_refused_with_the_reason(settings: Settings) -> None:
    with pytest.raises(Refused, match="is the pod running"):
        pod_exec(settings).run(*POD, "no-such-container", ["cmd", "/c", "echo"], 10)


def test_a_wrong_token_is_refused(settings: Settings) -> None:
    # the kubeconfig's hook would put the right token back before the request
    exec_ = pod_exec(
        settings, api_key={"authorization": "Bearer not-the-token"}, refresh_api_key_hook=None
    )

    with pytest.raises(Refused, match="refused by the Kubernetes API") as raised:
        exec_.run(*POD, None, ["cmd", "/c", "echo"], 10)
    assert "not-the-token" not in str(raised.value)


def test_a_server_the_ca_does_not_vouch_for_is_not_spoken_to(settings: Settings) -> None:
    exec_ = pod_exec(settings, ssl_ca_cert=certifi.where())

    with pytest.raises(Unreachable, match="SSLCertVerificationError"):
        exec_.run(*POD, None, ["cmd", "/c", "echo"], 10)


def test_an_exec_slower_than_its_timeout_times_out(faults: RunningSim, settings: Settings) -> None:
    faults.control("POST", "/sim/v1/faults/exec", {"latency_ms": 3000})

    with pytest.raises(TimedOut, match=r"no answer within 0\.5 s"):
        pod_exec(settings).run(*POD, None, ["cmd", "/c", "echo"], 0.5)


def test_a_server_error_on_the_upgrade_names_the_status(
    faults: RunningSim, settings: Settings
) -> None:
    faults.control("POST", "/sim/v1/faults/exec", {"fail_next": 1, "mode": "500"})

    with pytest.raises(Unreachable, match="the Kubernetes API answered 500"):
        pod_exec(settings).run(*POD, None, ["cmd", "/c", "echo"], 10)


def test_nothing_listening_is_unreachable(settings: Settings) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    exec_ = pod_exec(settings, host=f"https://127.0.0.1:{port}")

    with pytest.raises(Unreachable, match="exec in pod shop/api-0"):
        exec_.run(*POD, None, ["cmd", "/c", "echo"], 10)
