"""Slack at its edges: forged, stale and replayed signatures, garbage bodies, a 429 storm and
Slack answering 500 — every request answered with 2xx/4xx, nothing promised lost silently."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from bot_process import RunningBot
from reliability_kit import (
    Lab,
    ack_text,
    button,
    click_body,
    log_entries,
    metric,
    request_mark,
    requests_since,
    tracebacks,
    until,
)
from sim_process import SEED, RunningSim

from bot.store import Store

pytestmark = pytest.mark.wire

APPROVER = "U0APPROVER1"  # the simulator's winpod.yaml
FIVE_MINUTES_S = 5 * 60
Message = dict[str, Any]


@pytest.fixture(scope="module")
def sim(lab: Lab) -> RunningSim:
    return lab.sim(SEED)


@pytest.fixture(scope="module")
def bot(lab: Lab, sim: RunningSim) -> RunningBot:
    """One replica; no timed work after its first sweep, so the Slack calls and cluster requests
    a test sees are the ones it caused."""
    running = lab.quiet_bot(sim, "edges")
    # Bolt calls auth.test once, on the first request, before acknowledging it: done here, so
    # that no Slack fault of a test lands on it.
    assert running.command("help", channel="C0WARMUP").status == 200
    return running


@pytest.fixture
def store(sim: RunningSim) -> Iterator[Store]:
    with closing(Store(yaml.safe_load(sim.config.read_text())["store"]["url"])) as opened:
        yield opened


@pytest.fixture(autouse=True)
def calm_slack(sim: RunningSim) -> Iterator[None]:
    """No test leaves a Slack fault behind for the next one."""
    yield
    sim.control("POST", "/sim/v1/faults/slack", {"fail_next": 0, "latency_ms": 0, "mode": "500"})


@pytest.fixture
def untouched(sim: RunningSim, bot: RunningBot) -> Iterator[None]:
    """What the test sends reaches neither the cluster nor Slack, and leaves no traceback."""
    mark = request_mark(sim)
    yield
    for server in ("kube", "exec", "winrm", "slack"):
        reached = requests_since(sim, mark, server)
        assert reached == [], (server, [(r["method"], r["path"]) for r in reached])
    assert not tracebacks(bot.log)


def signed(secret: str, stamp: int, body: str) -> str:
    return (
        "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    )


def command_body(text: str, channel: str, user: str = "U0OPERATOR") -> str:
    return urllib.parse.urlencode(
        {
            "command": "/winpod",
            "text": text,
            "channel_id": channel,
            "user_id": user,
            "team_id": "T0WINPODSIM",
            "api_app_id": "A0WINPOD",
            "trigger_id": "1.2.3",
        }
    )


def calls(sim: RunningSim, channel: str, method: str = "chat.postMessage") -> list[Message]:
    found = sim.control("GET", f"/sim/v1/slack/calls?method={method}&channel={channel}")
    return list(found["calls"])


def diagnosed(bot: RunningBot, reference: str, channel: str) -> Message:
    """`/winpod diagnose`, then its message once edited into the findings."""
    assert bot.command(f"diagnose {reference}", channel=channel).status == 200
    return until(
        lambda: next((m for m in bot.messages(channel) if m.get("edited")), None),
        60,
        f"the diagnosis of {reference} in {channel}",
    )


# --- signatures -------------------------------------------------------------------------------

FORGERIES = {
    "another secret": lambda secret, stamp, body: signed("not-" + secret, stamp, body),
    "all zeros": lambda secret, stamp, body: "v0=" + "0" * 64,
    "empty": lambda secret, stamp, body: "",
    "another version": lambda secret, stamp, body: "v1=" + signed(secret, stamp, body)[3:],
    "another body": lambda secret, stamp, body: signed(secret, stamp, body + "&x=1"),
    "upper-case hex": lambda secret, stamp, body: signed(secret, stamp, body).upper(),
    "another timestamp": lambda secret, stamp, body: signed(secret, stamp - 1, body),
}


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("kind", ["command", "click"])
def test_a_forged_signature_is_refused_with_401(bot: RunningBot, forgery: str, kind: str) -> None:
    body = (
        command_body("diagnose shop/api-0", "C0FORGED")
        if kind == "command"
        else click_body("remediate:kube-proxy-restart", "any", user=APPROVER, channel="C0FORGED")
    )
    stamp = int(time.time())
    response = bot.post(
        body, timestamp=stamp, signature=FORGERIES[forgery](bot.signing_secret, stamp, body)
    )
    assert response.status == 401, response


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("offset_s", [-6 * 60, 6 * 60, -3600 * 24 * 365])
def test_a_stale_or_future_timestamp_is_refused_with_401_even_when_signed(
    bot: RunningBot, offset_s: int
) -> None:
    stamp = int(time.time()) + offset_s
    body = command_body("diagnose shop/api-0", "C0STALE")
    response = bot.post(body, timestamp=stamp)  # correctly signed for that timestamp
    assert response.status == 401, response


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("stamp", ["", "abc", "1e3", "17000000000.5", " 1700000000", "9" * 400])
def test_a_timestamp_that_is_no_number_of_seconds_is_refused_with_401(
    bot: RunningBot, stamp: str
) -> None:
    body = command_body("help", "C0STAMP")
    digest = signed(bot.signing_secret, 0, body)  # whatever: the stamp is refused first
    request = urllib.request.Request(
        bot.events_url,
        data=body.encode(),
        method="POST",
        headers={
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": digest,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    assert status == 401


def test_a_replayed_slash_command_within_five_minutes_is_accepted_as_slack_allows(
    bot: RunningBot,
) -> None:
    # Slack's signing scheme bounds replays in time (5 minutes), not in number: a replay of
    # a read-only command inside the window is answered like the original.
    stamp = int(time.time()) - 60
    body = command_body("help", "C0REPLAYHELP")
    first, replayed = bot.post(body, timestamp=stamp), bot.post(body, timestamp=stamp)
    assert (first.status, replayed.status) == (200, 200)
    assert ack_text(first) == ack_text(replayed)
    assert stamp > time.time() - FIVE_MINUTES_S


def test_a_replayed_approval_after_the_action_finished_changes_nothing(
    bot: RunningBot, sim: RunningSim, store: Store
) -> None:
    channel = "C0REPLAY"
    message = diagnosed(bot, "shop/api-0", channel)
    restart = button(message, "remediate:kube-proxy-restart")
    body = click_body(
        restart["action_id"],
        restart["value"],
        user=APPROVER,
        channel=channel,
        message_ts=message["ts"],
        blocks=message["blocks"],
    )
    stamp = int(time.time())
    assert bot.post(body, timestamp=stamp).status == 200
    until(
        lambda: any(
            "Verification —" in r["text"]
            for m in bot.messages(channel)
            for r in m["replies"]
            if m["ts"] == message["ts"]
        ),
        60,
        "the remediation's result in the thread",
    )
    ran = sim.control("GET", "/sim/v1/hosts/akswin000002")["history"]
    assert ran == ["kube-proxy-restart"]
    [action] = [a for a in store.list_actions(limit=500) if a.target == "akswin000002"]
    assert action.status == "succeeded"
    told_before = len(bot.ephemeral(channel))

    # An attacker (or a retrying proxy) sends the very same signed request again, three times.
    replays = [bot.post(body, timestamp=stamp) for _ in range(3)]
    assert [r.status for r in replays] == [200, 200, 200]
    told = until(
        lambda: (
            [e["text"] for e in bot.ephemeral(channel)[told_before:] if e["user"] == APPROVER][:3]
            if len(bot.ephemeral(channel)) >= told_before + 3
            else None
        ),
        30,
        "an answer to each replay",
    )
    assert all("already ran (succeeded); nothing to do" in text for text in told), told
    assert sim.control("GET", "/sim/v1/hosts/akswin000002")["history"] == ran
    assert [a.id for a in store.list_actions(limit=500) if a.target == "akswin000002"] == [
        action.id
    ]
    thread = next(m for m in bot.messages(channel) if m["ts"] == message["ts"])["replies"]
    assert sum("Verification —" in r["text"] for r in thread) == 1


# --- garbage bodies ----------------------------------------------------------------------------

PAYLOAD = {
    "type": "block_actions",
    "user": {"id": APPROVER},
    "container": {"type": "message", "channel_id": "C0GARBAGE", "message_ts": "1.2"},
    "channel": {"id": "C0GARBAGE"},
    "actions": [{"action_id": "remediate:kube-proxy-restart", "value": "nope"}],
}


def _form(payload: object) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


GARBAGE = {
    "not a form": ("%%%not-form", "application/x-www-form-urlencoded"),
    "json that does not parse": ("{not json", "application/json"),
    "a json array": ("[1, 2, 3]", "application/json"),
    "json null": ("null", "application/json"),
    "payload not json": ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
    "payload a number": ("payload=42", "application/x-www-form-urlencoded"),
    "payload a list": (_form([PAYLOAD]), "application/x-www-form-urlencoded"),
    "empty body": ("", "application/x-www-form-urlencoded"),
    "no actions": (_form({**PAYLOAD, "actions": []}), "application/x-www-form-urlencoded"),
    "actions null": (_form({**PAYLOAD, "actions": None}), "application/x-www-form-urlencoded"),
    "action a string": (_form({**PAYLOAD, "actions": ["x"]}), "application/x-www-form-urlencoded"),
    "action_id a number": (
        _form({**PAYLOAD, "actions": [{"action_id": 7, "value": "x"}]}),
        "application/x-www-form-urlencoded",
    ),
    "no user": (
        _form({k: v for k, v in PAYLOAD.items() if k != "user"}),
        "application/x-www-form-urlencoded",
    ),
    "user a string": (_form({**PAYLOAD, "user": APPROVER}), "application/x-www-form-urlencoded"),
    "view without a type": (
        _form({"type": "view_submission", "user": {"id": APPROVER}, "view": {"id": "V1"}}),
        "application/x-www-form-urlencoded",
    ),
    "event without a type": ('{"type": "event_callback", "event": {}}', "application/json"),
    "command without a user": (
        "command=%2Fwinpod&text=diagnose+shop%2Fapi-0&channel_id=C0GARBAGE",
        "application/x-www-form-urlencoded",
    ),
    "unknown type": (_form({**PAYLOAD, "type": "zzz"}), "application/x-www-form-urlencoded"),
    "plain text": ("hello", "text/plain"),
    "multipart": ("--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    "a megabyte": ("payload=" + "a" * 1_000_000, "application/x-www-form-urlencoded"),
}


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("name", list(GARBAGE))
def test_a_signed_garbage_body_gets_4xx_never_500(bot: RunningBot, name: str) -> None:
    body, content_type = GARBAGE[name]
    response = bot.post(body, content_type=content_type)
    assert 400 <= response.status < 500, (response.status, response.body[:200])
    assert bot.get("/healthz")[0] == 200


# --- Slack itself failing -----------------------------------------------------------------------


def test_a_429_storm_with_retry_after_still_posts_the_result(
    bot: RunningBot, sim: RunningSim
) -> None:
    sim.control("POST", "/sim/v1/faults/slack", {"mode": "429", "fail_next": 5, "retry_after_s": 1})
    response = bot.command("diagnose shop/api-0", channel="C0STORM")
    assert response.status == 200
    message = until(
        lambda: next((m for m in bot.messages("C0STORM") if m.get("edited")), None),
        60,
        "the result despite five 429s",
    )
    assert message["blocks"][0]["text"]["text"].startswith("Pod shop/api-0")
    posts = calls(sim, "C0STORM")
    assert [c["status"] for c in posts] == [429] * 5 + [200]
    waits = [b["time"] - a["time"] for a, b in itertools.pairwise(posts)]
    assert min(waits) >= 0.9  # Retry-After: 1 honoured every time, never hammered


@pytest.mark.parametrize("mode", ["500", "reset"])
def test_two_slack_failures_in_a_row_are_retried_and_the_result_arrives(
    bot: RunningBot, sim: RunningSim, mode: str
) -> None:
    channel = f"C0RETRY{mode.upper()}"
    sim.control("POST", "/sim/v1/faults/slack", {"mode": mode, "fail_next": 2})
    assert bot.command("diagnose web/iis-0", channel=channel).status == 200
    message = until(
        lambda: next((m for m in bot.messages(channel) if m.get("edited")), None),
        60,
        f"the result despite two Slack {mode}s",
    )
    assert message["blocks"][0]["text"]["text"].startswith("Pod web/iis-0")
    assert len(calls(sim, channel)) == 3  # two failed attempts, then the post


@pytest.mark.parametrize("mode", ["500", "reset"])
def test_slack_failing_for_good_is_logged_as_an_error_and_counted_in_metrics(
    bot: RunningBot, sim: RunningSim, mode: str
) -> None:
    channel = f"C0DOWN{mode.upper()}"
    before = metric(bot, "winpod_errors_total", peer="slack")
    logged = len(log_entries(bot))
    sim.control("POST", "/sim/v1/faults/slack", {"mode": mode, "fail_next": 20})
    response = bot.command("diagnose shop/api-0", channel=channel)
    assert response.status == 200  # the ack itself needs no Web API call

    until(
        lambda: [
            e
            for e in log_entries(bot)[logged:]
            if e.get("level") == "error"
            and str(e.get("message")).startswith("Slack call failed while posting progress")
        ],
        60,
        "winpod's own error line for the failed post",
    )
    assert metric(bot, "winpod_errors_total", peer="slack") > before
    # tried, and retried twice (a reset is recorded as the 500 it never got to send)
    assert [c["status"] for c in calls(sim, channel)] == [500, 500, 500]
    assert not tracebacks(bot.log)


# --- bounded bodies and wrong types --------------------------------------------------------------


def _raw_post(bot: RunningBot, head: str, body: bytes) -> tuple[int, float]:
    """Send a request head and the start of a body on a raw socket; the status line that comes
    back, and how long it took. The rest of a huge body is never sent."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        answer = connection.recv(4096).decode("latin-1")
    return int(answer.split(" ", 2)[1]), time.monotonic() - started


@pytest.mark.usefixtures("untouched")
def test_an_unsigned_huge_body_gets_413_before_it_is_read(bot: RunningBot) -> None:
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: winpod\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {400 * 1024 * 1024}\r\n\r\n"
    )
    status, seconds = _raw_post(bot, head, b"payload=" + b"a" * 4096)
    assert status == 413
    assert seconds < 5  # answered from the head, not after 400 MB
    assert bot.get("/healthz")[0] == 200


@pytest.mark.usefixtures("untouched")
def test_a_chunked_body_over_the_limit_gets_413(bot: RunningBot) -> None:
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: winpod\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * (256 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    status, _ = _raw_post(bot, head, body)
    assert status == 413


@pytest.mark.usefixtures("untouched")
def test_a_signed_body_over_a_mebibyte_gets_413(bot: RunningBot) -> None:
    # Sent on a raw socket, the body only begun: the bot answers from the head and closes, and a
    # client still writing the rest would meet a broken pipe instead of reading the answer.
    body = "payload=" + "a" * (1 << 20)
    stamp = str(int(time.time()))
    digest = hmac.new(
        bot.signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: winpod\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: v0={digest}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    status, _ = _raw_post(bot, head, body[:4096].encode())
    assert status == 413


@pytest.mark.usefixtures("untouched")
def test_a_health_request_with_a_body_gets_413(bot: RunningBot) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.metrics_port}/healthz", data=b"x" * 4096, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 413


def _nested(depth: int) -> object:
    return json.loads(_nested_text(depth))


def _nested_text(depth: int) -> str:
    """JSON `depth` levels deep, written out (json.dumps itself recurses)."""
    return '{"a": [' * depth + '"x"' + "]}" * depth


WRONG_TYPES = {
    "container a string": {"container": "C0WRONG"},
    "container a list": {"container": ["C0WRONG"]},
    "channel a number": {"channel": 7},
    "channel id an object": {"channel": {"id": {"x": 1}}},
    "message a string": {"message": "hello"},
    "message blocks a string": {"message": {"ts": "1.2", "blocks": "x"}},
    "message ts a number": {"message": {"ts": 1.2, "blocks": []}},
    "message_ts a list": {"container": {"channel_id": "C0WRONG", "message_ts": [1]}},
    "action value a number": {"actions": [{"action_id": "remediate:x", "value": 7}]},
    "team a string": {"team": "T0WINPODSIM"},
    "api_app_id a number": {"api_app_id": 5},
    "nested 40 deep": {"state": _nested(40)},
    "view state nested 40 deep": {"view": {"type": "modal", "state": _nested(40)}},
}


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("name", list(WRONG_TYPES))
def test_a_signed_click_with_wrong_types_gets_400(bot: RunningBot, name: str) -> None:
    payload = {**PAYLOAD, **WRONG_TYPES[name]}
    response = bot.post(_form(payload))
    assert response.status == 400, (response.status, response.body[:200])


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("depth", [40, 900, 5000, 100_000])
def test_deeply_nested_signed_json_gets_400(bot: RunningBot, depth: int) -> None:
    payload = json.dumps({**PAYLOAD, "message": "NESTED"}).replace('"NESTED"', _nested_text(depth))
    for body, content_type in [
        ('{"type": "event_callback", "event": ' + _nested_text(depth) + "}", "application/json"),
        ("[" * depth + "]" * depth, "application/json"),
        (urllib.parse.urlencode({"payload": payload}), "application/x-www-form-urlencoded"),
    ]:
        if len(body) > 1 << 20:
            continue  # refused for its size before anything else
        response = bot.post(body, content_type=content_type)
        assert response.status == 400, (depth, response.status, response.body[:200])


@pytest.mark.usefixtures("untouched")
def test_a_forged_signature_on_a_json_body_is_refused_with_401(bot: RunningBot) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": "x"}})
    response = bot.post(body, content_type="application/json", signature="v0=" + "0" * 64)
    assert response.status == 401


@pytest.mark.parametrize("size", [5_000, 200_000, 900_000])
def test_a_long_command_text_is_a_usage_error_at_once(bot: RunningBot, size: int) -> None:
    response = bot.command("diagnose " + "a b " * (size // 4), channel="C0LONGTEXT")
    assert response.status == 200
    assert "at most 4000 are read" in ack_text(response)
    assert response.seconds < 2


def test_a_command_of_normal_length_is_still_parsed(bot: RunningBot) -> None:
    response = bot.command("explain " + "x" * 65, channel="C0LONGTEXT")
    assert "is not a check id" in ack_text(response)


# --- who may click: channels, workspace and app --------------------------------------------------


@pytest.fixture(scope="module")
def gated(lab: Lab, sim: RunningSim) -> RunningBot:
    """A replica that knows its workspace and app and serves one channel only."""
    return lab.quiet_bot(
        sim,
        "gated",
        {
            "WINPOD_SLACK__ALLOWED_CHANNELS": '["C0GATEOK"]',
            "WINPOD_SLACK__TEAM_ID": "T0WINPODSIM",
            "WINPOD_SLACK__API_APP_ID": "A0WINPOD",
        },
    )


def test_a_button_click_outside_allowed_channels_is_refused_and_changes_nothing(
    gated: RunningBot, sim: RunningSim, store: Store
) -> None:
    actions_before = len(store.list_actions(limit=500))
    body = click_body("remediate:kube-proxy-restart", "any", user=APPROVER, channel="C0GATENO")
    assert gated.post(body).status == 200
    told = until(
        lambda: [e["text"] for e in gated.ephemeral("C0GATENO") if e["user"] == APPROVER],
        30,
        "the refusal",
    )
    assert "not enabled in this channel" in told[0]
    assert "slack.allowed_channels" in told[0]
    assert len(store.list_actions(limit=500)) == actions_before


def test_a_button_click_in_an_allowed_channel_reaches_the_listener(gated: RunningBot) -> None:
    body = click_body(
        "remediate:kube-proxy-restart", "nosuchoffer", user=APPROVER, channel="C0GATEOK"
    )
    assert gated.post(body).status == 200
    told = until(
        lambda: [e["text"] for e in gated.ephemeral("C0GATEOK") if e["user"] == APPROVER],
        30,
        "the listener's answer",
    )
    assert "not enabled in this channel" not in told[0]


@pytest.mark.parametrize(
    ("field", "value"), [("team", {"id": "T0ELSEWHERE"}), ("api_app_id", "A0OTHERAPP")]
)
def test_a_click_from_another_workspace_or_app_is_refused(
    gated: RunningBot, sim: RunningSim, field: str, value: object
) -> None:
    told_before = len(calls(sim, "C0GATEOK", "chat.postEphemeral"))
    payload = json.loads(
        urllib.parse.parse_qs(
            click_body("remediate:kube-proxy-restart", "any", user=APPROVER, channel="C0GATEOK")
        )["payload"][0]
    )
    response = gated.post(_form({**payload, field: value}))
    assert response.status == 403
    time.sleep(0.5)
    assert len(calls(sim, "C0GATEOK", "chat.postEphemeral")) == told_before  # nobody answered


def test_a_command_from_another_workspace_is_refused(gated: RunningBot) -> None:
    body = command_body("help", "C0GATEOK").replace("T0WINPODSIM", "T0ELSEWHERE")
    assert gated.post(body).status == 403
    assert gated.post(command_body("help", "C0GATEOK")).status == 200


def _spilled_files(pid: int) -> list[str]:
    """Unlinked files the process holds open in the temporary directory: how waitress keeps a
    request body it spilled to disk."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(tempfile.gettempdir()) and target.endswith(" (deleted)"):
                found.append(target)
    return found


@pytest.mark.usefixtures("untouched")
def test_unfinished_uploads_under_the_limit_stay_in_memory_not_in_tmp(bot: RunningBot) -> None:
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: winpod\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n"
    )
    uploads = [socket.create_connection(("127.0.0.1", bot.port), timeout=10) for _ in range(8)]
    try:
        for upload in uploads:
            upload.sendall(head + b"a" * 900_000)  # 0.9 of 1 MB: waited for, never finished
        time.sleep(1)
        assert _spilled_files(bot.process.pid) == []
    finally:
        for upload in uploads:
            upload.close()
    assert bot.get("/healthz")[0] == 200
