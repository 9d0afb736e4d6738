"""The App Home in zh-CN (its wire test, tests/bot/test_home_e2e.py, runs in English): every
text winpod words comes from the catalog, counts and "and N more" included."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from english import english_runs

from bot.render_home import Home, NodeRow, home_view
from bot.store import PendingAction, RdpSession
from handlers import i18n

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


@pytest.fixture
def chinese() -> Iterator[None]:
    i18n.use("zh-CN")
    yield
    i18n.use("en")


def _action(i: int) -> PendingAction:
    return PendingAction(
        id=f"a{i}",
        remediation="hns-reset",
        target=f"akswin{i:06d}",
        params={},
        risk="high",
        requester="U0REQ",
        channel="C0OPS",
        message_ts="1.1",
        thread_ts="1.1",
        status="pending",
        approvals=("U0A",),
        rejected_by=None,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        result=None,
        target_kind="node",
        plan=None,
        offer_id=None,
        check_id=None,
        diagnosed=None,
    )


@pytest.mark.usefixtures("chinese")
def test_the_app_home_in_chinese() -> None:
    nodes = [
        NodeRow(f"akswin{i:06d}", 17763, "Windows Server 2019", str(i), None, "x", verdict)
        for i, verdict in enumerate(("ok", "failing", "unreachable", None) * 15)
    ]
    sessions = [
        RdpSession(
            f"akswin{i:06d}",
            "U0REQ",
            NOW + timedelta(hours=1),
            ("10.0.0.0/8",),
            None,
            None,
            NOW,
            NOW,
        )
        for i in range(12)
    ]
    home = Home(
        "prod",
        nodes,
        None,
        [(_action(i), 2) for i in range(20)],
        sessions,
        NOW,
        {"checked": 60, "failing": 15, "unreachable": 15},
    )
    view = home_view(home)
    texts = re.findall(r'"text": "((?:[^"\\\\]|\\\\.)*)"', json.dumps(view, ensure_ascii=False))
    assert "已检查 60 个" in " ".join(texts)
    assert any("还有" in t for t in texts)  # the "and N more" notes
    found = [(t, runs) for t in texts if (runs := english_runs(t))]
    assert not found, found
