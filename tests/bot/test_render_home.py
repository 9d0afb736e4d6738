"""The App Home on data: within Slack's 100 blocks however big the fleet, the rest counted, and
every outside string escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.render_home import Home, NodeRow, home_view
from bot.store import PendingAction, RdpSession

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def _node(
    i: int, os_image: str = "Windows Server 2019 Datacenter", verdict: str | None = "ok"
) -> NodeRow:
    return NodeRow(f"akswin{i:06d}", 17763, os_image, str(i), None, "2026-12-04T20:00:00Z", verdict)


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
        approvals=(),
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


def _session(i: int) -> RdpSession:
    return RdpSession(
        f"akswin{i:06d}", "U0REQ", NOW + timedelta(hours=1), ("10.0.0.0/8",), None, None, NOW, NOW
    )


def test_a_big_fleet_stays_within_100_blocks_and_says_how_many_more() -> None:
    home = Home(
        "prod",
        [_node(i) for i in range(1000)],
        None,
        [(_action(i), 2) for i in range(60)],
        [_session(i) for i in range(40)],
        NOW,
        {"checked": 1000, "failing": 3},
    )

    view = home_view(home)
    text = json.dumps(view)

    assert len(view["blocks"]) <= 100  # type: ignore[arg-type]
    assert "and 960 more nodes" in text
    assert "and 45 more actions" in text
    assert "and 30 more sessions" in text
    assert "1000 checked, 3 failing" in text


def test_a_small_fleet_shows_everything_with_working_buttons() -> None:
    home = Home("prod", [_node(1, verdict=None)], None, [(_action(1), 2)], [_session(1)], None)

    view = home_view(home)
    text = json.dumps(view)

    assert "more" not in text
    assert "No sweep recorded yet" in text and "no sweep recorded" in text
    buttons = [
        e["action_id"]
        for b in view["blocks"]  # type: ignore[attr-defined]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == ["approve:a1", "reject:a1"]


def test_outside_strings_are_escaped() -> None:
    home = Home(
        "prod<!channel>",
        [_node(1, os_image="Windows <!here> & co")],
        "could not <!everyone>",
        [],
        [],
        None,
    )

    text = json.dumps(home_view(home))

    assert "<!here>" not in text and "<!everyone>" not in text
    assert "&lt;!here&gt;" in text
