"""Shared fixtures: start `winpod sim` as a real process on a scenario and talk to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bot_process import RunningBot, start_bot
from sim_process import SCENARIOS, SEED, RunningSim, start_sim


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., RunningSim]]:
    """Start a simulator on a scenario (a path, or a file name under tests/scenarios/)."""
    started: list[RunningSim] = []

    def factory(scenario: str | Path = SEED, extra_args: list[str] | None = None) -> RunningSim:
        path = Path(scenario)
        if not path.is_absolute() and not path.exists():
            path = SCENARIOS / path
        sim = start_sim(path, tmp_path / f"sim{len(started)}", extra_args)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def seed_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    """One simulator on the seed scenario shared by a test module (read-mostly tests)."""
    sim = start_sim(SEED, tmp_path_factory.mktemp("seed-sim"))
    yield sim
    sim.stop()


@pytest.fixture
def bot_factory() -> Iterator[Callable[..., RunningBot]]:
    """Start `winpod serve` against a simulator; every bot is stopped after the test."""
    started: list[RunningBot] = []

    def factory(sim: RunningSim, env: dict[str, str] | None = None) -> RunningBot:
        bot = start_bot(sim, env, name=f"bot{len(started)}")
        started.append(bot)
        return bot

    yield factory
    for bot in started:
        bot.stop()
