"""The approval request as approvers see it, the full script attached in its thread, and the
App Home — published when opened, with Approve and Reject buttons that work — over the wire."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bot_process import RunningBot, start_bot
from sim_process import ROOT, SCENARIOS, RunningSim, start_sim

pytestmark = pytest.mark.wire

APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"  # the simulator's winpod.yaml
OUTSIDER = "U0OUTSIDER"
CHANNEL = "C0HOME"
HNS_RESET = (ROOT / "handlers" / "scripts" / "hns-reset.ps1").read_text()
Message = dict[str, Any]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SCENARIOS / "home_cluster.yaml", tmp_path_factory.mktemp("home"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bot(sim: RunningSim) -> Iterator[RunningBot]:
    running = start_bot(sim, name="home")
    yield running
    running.stop()


def _current(bot: RunningBot, ts: str) -> Message:
    return next(m for m in bot.messages(CHANNEL) if m["ts"] == ts)


def _diagnose(bot: RunningBot, reference: str) -> Message:
    before = {m["ts"] for m in bot.messages(CHANNEL)}
    assert bot.command(f"diagnose {reference}", channel=CHANNEL).status == 200
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next(
            (m for m in bot.messages(CHANNEL) if m["ts"] not in before and m.get("edited")), None
        ),
        what=f"the diagnosis of {reference}",
    )


def _open_tab(bot: RunningBot, user: str, tab: str = "home") -> None:
    """The user opens a tab of winpod's app (Slack sends app_home_opened, signed)."""
    sent = bot.sim.control(
        "POST",
        "/sim/v1/slack/events/app_home_opened",
        {"user": user, "url": bot.events_url, "tab": tab},
    )
    assert sent["status"] == 200


def _open_home(bot: RunningBot, user: str, since: int) -> dict[str, Any]:
    """The user opens the App Home; the view published for them."""
    _open_tab(bot, user)
    return _published(bot, user, since)


def _published(bot: RunningBot, user: str, since: int) -> dict[str, Any]:
    call = bot.wait_for(
        lambda: next(
            iter(
                c
                for c in bot.sim.control(
                    "GET", f"/sim/v1/slack/calls?method=views.publish&since={since}"
                )["calls"]
                if c["params"].get("user_id") == user
            ),
            None,
        ),
        what=f"views.publish for {user}",
    )
    assert call["response"]["ok"], call["response"]
    return bot.sim.control("GET", f"/sim/v1/slack/home?user={user}")["view"]  # type: ignore[no-any-return]


def _last_seq(bot: RunningBot) -> int:
    calls = bot.sim.control("GET", "/sim/v1/slack/calls")["calls"]
    return int(calls[-1]["seq"]) if calls else 0


def _texts(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"])


def test_request_shows_target_and_commands_first_attaches_the_script_and_home_approves(
    bot: RunningBot,
) -> None:
    message = _diagnose(bot, "shop/home-0")
    assert bot.click(message, "remediate:hns-reset", user=APPROVER_A, channel=CHANNEL).status == 200
    request = bot.wait_for(
        lambda: next(
            (r for r in _current(bot, message["ts"])["replies"] if "asked for" in r["text"]),
            None,
        ),
        what="the approval request in the thread",
    )

    # what an approver must judge comes first: target, transport, the commands that change state
    first = request["blocks"][0]["text"]["text"]
    address = bot.sim.control("GET", "/sim/v1/hosts/akswin000031")["address"]
    assert "akswin000031" in first
    assert f"over WinRM to {address}" in first
    assert "Stop-Service kubelet -Force" in first
    assert "Remove-HnsPolicyList" in first
    assert "Remove-HnsNetwork" in first
    assert "Start-Service kubelet" in first
    assert "# winpod-script" not in first  # not the header comments …
    assert "function Invoke-Step" not in first  # … nor the helper function

    # the whole script, as it will run, is a file in the request's thread
    upload = bot.wait_for(
        lambda: next(
            (f for f in bot.sim.control("GET", "/sim/v1/slack/files")["files"] if f["completed"]),
            None,
        ),
        what="the script's upload",
    )
    assert upload["content"] == HNS_RESET
    assert (upload["channel"], upload["thread_ts"]) == (CHANNEL, message["ts"])
    shared = bot.wait_for(
        lambda: [r for r in _current(bot, message["ts"])["replies"] if r.get("files")],
        what="the file shared in the thread",
    )
    assert shared[0]["files"][0]["id"] == upload["id"]

    # the App Home, opened by the second approver: nodes, the waiting action, RDP, last sweep
    since = _last_seq(bot)
    view = _open_home(bot, APPROVER_B, since)
    text = _texts(view)
    assert "akswin000031" in text and "akswin000032" in text
    assert "last boot" in text and "Ready since" in text  # akswin000031's Rebooted event
    assert "build 17763" in text and "build 20348" in text
    assert "aks-linux-0" not in text  # Windows nodes only
    assert "hns-reset" in text and "Waiting for approval" in text
    assert "Open RDP sessions" in text
    ids = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    approve = next(i for i in ids if i.startswith("approve:"))
    assert approve.replace("approve:", "reject:") in ids

    # someone who may not approve is told so in a DM; nothing runs
    since = _last_seq(bot)
    assert bot.click_in_home(view, approve, user=OUTSIDER).status == 200
    told = bot.wait_for(
        lambda: [
            m for m in bot.messages("D" + OUTSIDER[1:]) if "Only approvers" in m.get("text", "")
        ],
        what="the refusal in the outsider's DM",
    )
    assert told
    assert bot.sim.control("GET", "/sim/v1/hosts/akswin000031")["history"] == []

    # the second approver's Approve in the App Home runs it, like the channel button does
    since = _last_seq(bot)
    assert bot.click_in_home(view, approve, user=APPROVER_B).status == 200
    bot.wait_for(
        lambda: any(
            "Verification — fixed" in r["text"] for r in _current(bot, message["ts"])["replies"]
        ),
        what="the result in the request's thread",
    )
    assert bot.sim.control("GET", "/sim/v1/hosts/akswin000031")["history"] == ["hns-reset"]
    refreshed = _published(bot, APPROVER_B, since)  # re-published after the click
    assert refreshed["id"] == view["id"]


def _inline_parts(bot: RunningBot, ts: str) -> list[str] | None:
    """The script's code blocks in the thread, once all its parts are there."""
    texts = [r["text"] for r in _current(bot, ts)["replies"] if "```" in r["text"]]
    found = [re.search(r"\((\d+)/(\d+)\):\n```\n(.*)\n```$", t, re.S) for t in texts]
    parts = [f for f in found if f]
    if not parts or len(parts) < int(parts[0].group(2)):
        return None
    return [f.group(3) for f in sorted(parts, key=lambda f: int(f.group(1)))]


def test_without_uploads_the_script_is_in_a_code_block_and_home_rejects(bot: RunningBot) -> None:
    bot.sim.control("POST", "/sim/v1/slack/uploads", {"refuse": True})
    try:
        message = _diagnose(bot, "shop/reject-0")
        assert (
            bot.click(message, "remediate:hns-reset", user=APPROVER_A, channel=CHANNEL).status
            == 200
        )
        parts = bot.wait_for(
            lambda: _inline_parts(bot, message["ts"]),
            what="the whole script in code blocks",
        )
    finally:
        bot.sim.control("POST", "/sim/v1/slack/uploads", {"refuse": False})
    assert html.unescape("\n".join(parts)) == HNS_RESET.rstrip("\n")  # all of it, in order

    since = _last_seq(bot)
    view = _open_home(bot, APPROVER_B, since)
    reject = next(
        e["action_id"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].startswith("reject:")
    )
    since = _last_seq(bot)
    assert bot.click_in_home(view, reject, user=APPROVER_B).status == 200
    bot.wait_for(
        lambda: any("rejected" in r["text"] for r in _current(bot, message["ts"])["replies"]),
        what="the rejection in the request's thread",
    )
    refreshed = _published(bot, APPROVER_B, since)
    assert "Nothing is waiting for approval" in _texts(refreshed)
    assert bot.sim.control("GET", "/sim/v1/hosts/akswin000033")["history"] == []


def _last_sweep(view: dict[str, Any]) -> datetime | None:
    found = re.search(r"Last sweep: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", _texts(view))
    return (
        datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if found
        else None
    )


def test_home_shows_the_last_sweep_after_one_ran(bot: RunningBot) -> None:
    asked = datetime.now(UTC).replace(microsecond=0)
    assert bot.command("sweep", channel=CHANNEL).status == 200
    bot.wait_for(
        lambda: any("checked" in m.get("text", "") for m in bot.messages(CHANNEL)),
        what="the sweep's summary",
    )
    since = _last_seq(bot)
    view = _open_home(bot, APPROVER_A, since)
    last = _last_sweep(view)
    assert last is not None and last >= asked
    assert "3 checked" in _texts(view)
    audit = bot.command("audit 5", channel=CHANNEL).body
    assert "sweep" in audit and "3 checked," in audit  # a sentence, not a dict


def test_the_messages_tab_publishes_nothing(bot: RunningBot) -> None:
    since = _last_seq(bot)
    _open_tab(bot, OUTSIDER, "messages")
    _open_tab(bot, OUTSIDER, "home")
    _published(bot, OUTSIDER, since)
    calls = bot.sim.control("GET", f"/sim/v1/slack/calls?method=views.publish&since={since}")
    assert len(calls["calls"]) == 1


def test_app_home_opened_over_socket_mode_publishes_the_home(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    sim = sim_factory("home_cluster.yaml")
    bot = bot_factory(sim, {"WINPOD_SLACK__APP_TOKEN": sim.urls["slack_app_token"]})
    bot.wait_for(
        lambda: sim.control("GET", "/sim/v1/slack/socket_mode")["connected"],
        what="the bot to connect over Socket Mode",
    )
    sent = sim.control("POST", "/sim/v1/slack/events/app_home_opened", {"user": APPROVER_A})
    assert sent["acked"] is True and sent["in_time"] is True
    view = _published(bot, APPROVER_A, 0)
    assert "akswin000033" in _texts(view)
