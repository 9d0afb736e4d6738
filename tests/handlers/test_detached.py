"""Detached runs: the result is read after the connection drops; a result that cannot be read
is "outcome unknown", never success or failure."""

from __future__ import annotations

import json

import pytest

from handlers.detached import run_detached
from handlers.errors import ChannelLost, OutcomeUnknown, Unreachable
from handlers.node_scripts import script_name_of
from handlers.transports import CommandResult, NodeTarget


class FlakyNode:
    """A node whose address answers nothing for `dark_polls` result reads after the start."""

    def __init__(self, dark_polls: int, finishes: bool = True) -> None:
        self.dark_polls = dark_polls
        self.finishes = finishes
        self.calls: list[str] = []

    def run_script(self, target: NodeTarget, script: str, timeout_s: float) -> CommandResult:
        name = script_name_of(script)
        self.calls.append(name)
        if name == "detached-start":
            return _json({"script": name, "started": True})
        if name == "detached-result":
            if self.dark_polls:
                self.dark_polls -= 1
                raise ChannelLost("connection reset")
            if not self.finishes:
                return _json({"script": name, "state": "Running"})
            inner = json.dumps({"script": "hns-reset", "ok": True})
            return _json({"state": "done", "exitCode": 0, "stdout": inner, "stderr": ""})
        return _json({"script": name})


def _json(data: object) -> CommandResult:
    return CommandResult(json.dumps(data) + "\r\n", "", 0)


def test_the_result_is_read_after_the_connection_came_back() -> None:
    node = FlakyNode(dark_polls=3)

    result = run_detached(
        node,
        NodeTarget("10.0.0.4", "10.0.0.4"),
        "hns-reset",
        "x" * 5000,
        poll_s=0,
        sleep=lambda _: None,
    )

    assert json.loads(result.stdout)["ok"] is True
    assert node.calls.count("detached-upload") == 4  # 6,668 base64 characters, 2,000 a piece
    assert node.calls.count("detached-result") == 4


def test_no_result_within_the_time_is_outcome_unknown() -> None:
    node = FlakyNode(dark_polls=10**6)
    ticks = iter(range(1000))

    with pytest.raises(OutcomeUnknown) as caught:
        run_detached(
            node,
            NodeTarget("10.0.0.4", "10.0.0.4"),
            "hns-reset",
            "x",
            result_timeout_s=5,
            clock=lambda: next(ticks),
            sleep=lambda _: None,
        )

    message = str(caught.value)
    assert message.startswith("outcome unknown")
    assert "connection reset" in message and "winpod-hns-reset-" in message
    assert not isinstance(caught.value, Unreachable)  # never reported as a plain failure
