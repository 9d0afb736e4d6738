"""WinRM sessions reused per host (`SessionCache`) against the simulator's WS-Management
endpoints, through pywinrm: fewer requests for a second script, a fresh session after a
failure, bounds on what is kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from config.settings import load_settings
from handlers import node_scripts
from handlers.errors import Unreachable
from handlers.transports import NodeTarget
from handlers.transports.winrm import SessionCache, WinRMShell

if TYPE_CHECKING:
    from tests.sim_process import RunningSim

pytestmark = pytest.mark.wire

NODE_ADDRESS_OF = "akswin000000"


def winrm_requests(sim: RunningSim) -> int:
    return int(sim.control("GET", "/sim/v1/stats")["winrm"])


def address(sim: RunningSim, host: str) -> str:
    return str(sim.control("GET", f"/sim/v1/hosts/{host}")["address"])


@pytest.fixture
def sim(sim_factory: Callable[..., RunningSim]) -> RunningSim:
    return sim_factory()


def test_a_second_script_on_the_same_host_reuses_the_authenticated_session(
    sim: RunningSim,
) -> None:
    shell = WinRMShell(load_settings(sim.config).winrm)
    script = node_scripts.render("node-status", DnsServiceIP="10.0.0.10")
    host = address(sim, NODE_ADDRESS_OF)

    counts = []
    for _ in range(3):
        before = winrm_requests(sim)
        result = shell.run_script(NodeTarget(host, host), script, 30)
        assert node_scripts.parse_output("node-status", result)["host"]
        counts.append(winrm_requests(sim) - before)

    # first: an unauthenticated try, the NTLM handshake, then the five WinRS calls
    assert counts[0] == 7
    assert counts[1:] == [5, 5]  # create, command, receive, signal, delete


def test_a_failed_script_drops_its_session_and_the_next_one_authenticates_again(
    sim: RunningSim,
) -> None:
    shell = WinRMShell(load_settings(sim.config).winrm)
    script = node_scripts.render("node-status", DnsServiceIP="10.0.0.10")
    host = address(sim, NODE_ADDRESS_OF)
    shell.run_script(NodeTarget(host, host), script, 30)
    assert len(shell.sessions) == 1
    sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 1, "mode": "reset"})

    with pytest.raises(Unreachable):
        shell.run_script(NodeTarget(host, host), script, 30)
    assert len(shell.sessions) == 0  # the broken session is not kept

    before = winrm_requests(sim)
    shell.run_script(NodeTarget(host, host), script, 30)
    assert winrm_requests(sim) - before == 7  # a new session authenticates afresh
    assert len(shell.sessions) == 1


class _Session:
    """Stands in for a pywinrm session in the cache's bookkeeping tests."""

    def __init__(self) -> None:
        self.closed = False
        outer = self

        class _Transport:
            def close_session(self) -> None:
                outer.closed = True

        class _Protocol:
            transport = _Transport()

        self.protocol = _Protocol()


def test_the_cache_keeps_few_idle_sessions_per_host_and_forgets_old_ones() -> None:
    now = [0.0]
    cache = SessionCache(hosts=2, per_host=1, idle_s=60, clock=lambda: now[0])
    key = ("https://127.0.1.1:5986/wsman", 20, 30)
    first, second = _Session(), _Session()
    cache.give_back(key, first)  # type: ignore[arg-type]
    cache.give_back(key, second)  # type: ignore[arg-type]
    assert second.closed and not first.closed and cache.idle(key) == 1

    assert cache.lend(key, _Session) is first  # type: ignore[arg-type]
    cache.give_back(key, first)  # type: ignore[arg-type]
    now[0] = 61
    fresh = cache.lend(key, _Session)  # type: ignore[arg-type]
    assert fresh is not first and first.closed  # idle too long: closed, never lent

    others = [("https://127.0.1.2:5986/wsman", 20, 30), ("https://127.0.1.3:5986/wsman", 20, 30)]
    kept = [_Session(), _Session()]
    cache.give_back(key, fresh)
    for other, session in zip(others, kept, strict=True):
        cache.give_back(other, session)  # type: ignore[arg-type]
    assert fresh.closed and cache.idle(key) == 0  # the least recently used host went
