"""Reliability-suite fixtures: one secret scan for the whole run, one scanned lab per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_kit import Lab, SecretScan

HERE = Path(__file__).resolve().parent
# Fixtures that start processes outside the lab, so their logs and Slack calls would go unscanned.
UNSCANNED = {"seed_sim", "sim_factory", "bot_factory"}
FINAL_TEST = "test_no_secret_invalid_name_or_traceback_anywhere_in_the_run"


@pytest.fixture(scope="session")
def secret_scan() -> SecretScan:
    """What every lab scanned during the run; the final test reads it."""
    return SecretScan()


@pytest.fixture(scope="module")
def lab(secret_scan: SecretScan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = Lab(secret_scan, tmp_path_factory.mktemp("reliability"))
    yield started
    started.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse tests here that bypass the lab, and run the final secret check last of all."""
    ours = [item for item in items if HERE in Path(str(item.path)).parents]
    for item in ours:
        bypass = UNSCANNED & set(getattr(item, "fixturenames", ()))
        if bypass:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(bypass))}: in tests/reliability start "
                "simulators and bots through the `lab` fixture, so their output is scanned"
            )
    final = [item for item in ours if item.name == FINAL_TEST]
    for item in final:
        items.remove(item)
        items.append(item)
