"""`winpod serve` end to end: signed Slack requests in, messages on the simulated Slack out."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from bot_process import RunningBot, SlackResponse, start_bot
from sim_process import RunningSim

pytestmark = pytest.mark.wire

SLACK_ACK_S = 3.0  # Slack shows the user an error when a command is not acknowledged by then
# Every /winpod subcommand SPEC §5 names; help must list exactly those that exist so far.
SPEC_SUBCOMMANDS = ("help", "diagnose", "node", "sweep", "rdp", "audit", "explain")
BURST_PODS = (
    "web/iis-healthy",
    "web/iis-0",
    "shop/api-0",
    "web/legacy-0",
    "web/nginx-7c5d",
    "web/report-0",
)


@pytest.fixture(scope="module")
def bot(seed_sim: RunningSim) -> Iterator[RunningBot]:
    """One `winpod serve` for the module; each test talks in a channel of its own."""
    running = start_bot(seed_sim, name="slack-e2e")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def restricted_bot(
    seed_sim: RunningSim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBot]:
    """A second replica that only serves C0OPS, with a store of its own."""
    store = tmp_path_factory.mktemp("restricted") / "winpod.db"
    running = start_bot(
        seed_sim,
        {
            "WINPOD_SLACK__ALLOWED_CHANNELS": '["C0OPS"]',
            "WINPOD_STORE__URL": f"sqlite:///{store}",
        },
        name="slack-e2e-restricted",
    )
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def calm_slack(seed_sim: RunningSim) -> Iterator[None]:
    """No test leaves a Slack fault behind for the next one."""
    yield
    seed_sim.control("POST", "/sim/v1/faults/slack", {"fail_next": 0, "latency_ms": 0})


def ack_text(response: SlackResponse) -> str:
    """What Slack shows the person who typed the command, from the HTTP answer to it."""
    if not response.body.startswith("{"):
        return response.body
    answer = response.json()
    assert answer.get("response_type", "ephemeral") == "ephemeral", answer
    texts = [answer.get("text", "")]
    texts += [b["text"]["text"] for b in answer.get("blocks", []) if "text" in b]
    return "\n".join(texts)


def edited(bot: RunningBot, channel: str) -> list[dict[str, Any]]:
    return [m for m in bot.messages(channel) if m.get("edited")]


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    }


def slack_calls(bot: RunningBot, channel: str) -> list[dict[str, Any]]:
    return list(bot.sim.control("GET", f"/sim/v1/slack/calls?channel={channel}")["calls"])


# --- the slash command ---------------------------------------------------------------------


def test_diagnose_posts_progress_then_findings_with_buttons(bot: RunningBot) -> None:
    response = bot.command("diagnose shop/api-0", channel="C0DIAG")
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    message = bot.wait_for(
        lambda: next(iter(edited(bot, "C0DIAG")), None),
        what="the diagnosis message to be edited into its result",
    )
    assert len(bot.messages("C0DIAG")) == 1  # the progress message became the result
    header = message["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "Pod shop/api-0 on akswin000002 · build 17763"
    offered = buttons(message)
    assert {"remediate:hns-reset", "remediate:kube-proxy-restart"} <= set(offered)
    assert all(button["value"] for button in offered.values())
    # Medium and high risk ask "are you sure?" and say what happens; low risk does not.
    assert "akswin000002" in offered["remediate:hns-reset"]["confirm"]["text"]["text"]
    assert "akswin000002" in offered["remediate:kube-proxy-restart"]["confirm"]["text"]["text"]
    assert "confirm" not in offered["remediate:pod-dns-override"]
    first_post = next(c for c in slack_calls(bot, "C0DIAG") if c["method"] == "chat.postMessage")
    assert first_post["params"]["text"].startswith("Diagnosing shop/api-0 on akswin000002")
    assert first_post["response"]["ts"] == message["ts"]


def test_help_lists_exactly_the_subcommands_that_exist_with_an_example_each(
    bot: RunningBot,
) -> None:
    response = bot.command("help", channel="C0HELP")
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    answer = response.json()
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    listed = {re.match(r"`/winpod ([a-z-]+)", s).group(1) for s in sections}  # type: ignore[union-attr]
    assert {"help", "diagnose", "node", "explain"} <= listed
    for section in sections:
        name = re.match(r"`/winpod ([a-z-]+)", section).group(1)  # type: ignore[union-attr]
        assert f"_e.g._ `/winpod {name}" in section, section
    for name in SPEC_SUBCOMMANDS:
        # Three stray arguments: a usage error from a subcommand that exists, nothing runs.
        said = ack_text(bot.command(f"{name} x y z", channel="C0HELP"))
        assert ("unknown subcommand" not in said) == (name in listed), (name, said)
    assert bot.messages("C0HELP") == []


@pytest.mark.parametrize(
    ("text", "problem", "right_form"),
    [
        ("frobnicate web/iis-0", "unknown subcommand 'frobnicate'", "/winpod help"),
        ("diagnose iis-0", "'iis-0' is not a pod reference", "/winpod diagnose NAMESPACE/POD"),
        ("diagnose web/iis-0 web/iis-1", "expected exactly one pod", "/winpod diagnose"),
        ("node", "expected exactly one node", "/winpod node NODE"),
        ("explain not/a-check", "is not a check id", "/winpod explain CHECK_ID"),
    ],
)
def test_a_wrong_command_gets_an_ephemeral_reply_with_the_problem_and_the_right_form(
    bot: RunningBot, text: str, problem: str, right_form: str
) -> None:
    response = bot.command(text, channel="C0TYPO")
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    said = ack_text(response)
    assert problem in said
    assert f"`{right_form}" in said
    assert slack_calls(bot, "C0TYPO") == []  # nothing posted for the channel to see


def test_a_pod_that_does_not_exist_is_told_to_the_user_alone(bot: RunningBot) -> None:
    response = bot.command("diagnose shop/ghost-0", channel="C0GHOST", user="U0TYPIST")
    assert response.status == 200
    note = bot.wait_for(
        lambda: next(iter(bot.ephemeral("C0GHOST")), None), what="the not-found reply"
    )
    assert note["user"] == "U0TYPIST"
    assert "pod shop/ghost-0 not found in context winpod-sim" in note["text"]
    assert bot.messages("C0GHOST") == []


# --- what is refused -------------------------------------------------------------------------


def test_a_stale_timestamp_is_refused_with_401(bot: RunningBot) -> None:
    six_minutes_ago = int(time.time()) - 6 * 60
    response = bot.command("diagnose shop/api-0", channel="C0STALE", timestamp=six_minutes_ago)
    assert response.status == 401
    assert slack_calls(bot, "C0STALE") == []


def test_a_forged_signature_is_refused_with_401(bot: RunningBot) -> None:
    response = bot.command("diagnose shop/api-0", channel="C0FORGED", signature="v0=" + "ab" * 32)
    assert response.status == 401
    assert slack_calls(bot, "C0FORGED") == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("%%%not-form", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("payload=42", "application/x-www-form-urlencoded"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
def test_a_garbage_body_with_a_valid_signature_gets_4xx_not_500(
    bot: RunningBot, body: str, content_type: str
) -> None:
    response = bot.post(body, content_type=content_type)
    assert 400 <= response.status < 500, (response.status, response.body)
    assert bot.process.poll() is None
    assert bot.get("/healthz")[0] == 200


def test_a_command_from_a_channel_that_is_not_allowed_is_refused(
    restricted_bot: RunningBot,
) -> None:
    response = restricted_bot.command("diagnose shop/api-0", channel="C0ELSEWHERE")
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    assert "not enabled in this channel" in ack_text(response)
    assert "slack.allowed_channels" in ack_text(response)
    allowed = restricted_bot.command("help", channel="C0OPS")
    assert "/winpod diagnose" in ack_text(allowed)
    metrics = restricted_bot.get("/metrics")[1]
    assert 'winpod_commands_total{outcome="refused",subcommand="unknown"} 1.0' in metrics
    assert 'subcommand="diagnose"' not in metrics  # nothing ran
    assert slack_calls(restricted_bot, "C0ELSEWHERE") == []


# --- health, readiness, metrics ----------------------------------------------------------------


def test_health_readiness_and_metrics(bot: RunningBot) -> None:
    assert bot.get("/healthz") == (200, '{"status": "alive"}')
    status, body = bot.get("/readyz")
    assert status == 200
    assert json.loads(body)["checks"] == {"kubernetes": "ok", "slack": "ok"}
    bot.command("diagnose web/iis-healthy", channel="C0METRICS")
    bot.wait_for(lambda: edited(bot, "C0METRICS"), what="the diagnosis")
    metrics = bot.get("/metrics")[1]
    assert re.search(r'^winpod_commands_total\{[^}]*subcommand="diagnose"[^}]*\} \d', metrics, re.M)
    assert re.search(r"^winpod_ack_seconds_count [1-9]", metrics, re.M)


def test_readiness_fails_while_slack_answers_500(restricted_bot: RunningBot) -> None:
    restricted_bot.sim.control("POST", "/sim/v1/faults/slack", {"fail_next": 1000, "mode": "500"})
    # Readiness is cached for a few seconds, so a fresh answer may take that long.
    body = restricted_bot.wait_for(
        lambda: next((b for s, b in [restricted_bot.get("/readyz")] if s == 503), None),
        timeout=15,
        what="/readyz to answer 503",
    )
    checks = json.loads(body)["checks"]
    assert checks["kubernetes"] == "ok"
    assert checks["slack"] != "ok"
    assert restricted_bot.get("/healthz")[0] == 200  # alive, just not ready


# --- load and Slack's rate limits -------------------------------------------------------------


def test_fifty_simultaneous_diagnoses_are_all_acknowledged_and_all_answered(
    bot: RunningBot,
) -> None:
    references = [BURST_PODS[i % len(BURST_PODS)] for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as clients:
        responses = list(
            clients.map(lambda ref: bot.command(f"diagnose {ref}", channel="C0BURST"), references)
        )
    results = bot.wait_for(
        lambda: next((done for done in [edited(bot, "C0BURST")] if len(done) == 50), None),
        timeout=120,
        what="all 50 diagnoses to be posted",
    )
    assert [r.status for r in responses] == [200] * 50
    slowest = max(r.seconds for r in responses)
    assert slowest < SLACK_ACK_S, f"slowest ack took {slowest:.2f} s"
    headers = sorted(m["blocks"][0]["text"]["text"].split(" on ")[0] for m in results)
    assert headers == sorted(f"Pod {ref}" for ref in references)
    assert len(bot.messages("C0BURST")) == 50


def test_a_rate_limited_post_is_retried_after_retry_after(bot: RunningBot) -> None:
    bot.sim.control(
        "POST", "/sim/v1/faults/slack", {"mode": "429", "fail_next": 3, "retry_after_s": 1}
    )
    response = bot.command("diagnose shop/api-0", channel="C0RATE")
    assert response.status == 200
    message = bot.wait_for(
        lambda: next(iter(edited(bot, "C0RATE")), None),
        timeout=30,
        what="the result despite three 429s",
    )
    assert message["blocks"][0]["text"]["text"].startswith("Pod shop/api-0")
    posts = [c for c in slack_calls(bot, "C0RATE") if c["method"] == "chat.postMessage"]
    assert [c["status"] for c in posts] == [429, 429, 429, 200]
    waits = [b["time"] - a["time"] for a, b in itertools.pairwise(posts)]
    assert min(waits) >= 0.9  # Retry-After: 1 was honoured, not hammered


def test_the_log_holds_no_secret(bot: RunningBot, seed_sim: RunningSim) -> None:
    secrets = Path(seed_sim.config).read_text()
    token = re.search(r"bot_token: (\S+)", secrets).group(1)  # type: ignore[union-attr]
    signing = re.search(r"signing_secret: (\S+)", secrets).group(1)  # type: ignore[union-attr]
    assert token not in bot.log
    assert signing not in bot.log
