"""1,000 hostile requests to `winpod serve` over HTTP: huge unsigned bodies (400 MB announced,
chunked past the limit), forged signatures, signed payloads with wrong types, deep nesting and
megabytes of command text. How much the bot's memory grows, and whether anything got a 5xx."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.ack import Bot, _wait_for_first_sweep, start_bot
from bench.harness import start_sim, write_scenario

REQUESTS = 1000
TARGET_RSS_GROWTH_MB = 20.0
CHANNEL = "C0HOSTILE"
Request = tuple[bytes, bytes]  # (head without Content-Length, body)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of process `pid` in MB (Linux /proc)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def _signed_head(bot: Bot, body: bytes, content_type: str, forged: bool = False) -> bytes:
    stamp = str(int(time.time()))
    digest = hmac.new(
        bot.signing_secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256
    ).hexdigest()
    signature = "v0=" + ("0" * 64 if forged else digest)
    return (
        f"POST /slack/events HTTP/1.1\r\nHost: winpod\r\nContent-Type: {content_type}\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: {signature}\r\n"
    ).encode()


def _signed(bot: Bot, body: bytes, content_type: str) -> Request:
    return _signed_head(bot, body, content_type), body


def _click(**replaced: Any) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0HOSTILE"},
        "team": {"id": "T0WINPODSIM"},
        "api_app_id": "A0WINPOD",
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.2"},
        "channel": {"id": CHANNEL},
        "message": {"ts": "1.2", "blocks": []},
        "actions": [{"action_id": "remediate:hns-reset", "value": "nosuchoffer"}],
        **replaced,
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _nested(depth: int) -> str:
    return '{"a": [' * depth + "1" + "]}" * depth


def _kinds(bot: Bot) -> dict[str, Callable[[], Request]]:
    form, json_type = "application/x-www-form-urlencoded", "application/json"
    deep_event = f'{{"type": "event_callback", "event": {_nested(50_000)}}}'.encode()
    long_text = urllib.parse.urlencode(
        {
            "command": "/winpod",
            "text": "diagnose " + "a b " * 200_000,
            "channel_id": CHANNEL,
            "user_id": "U0HOSTILE",
            "team_id": "T0WINPODSIM",
        }
    ).encode()
    wrong_types = itertools.cycle(
        [
            _click(container="x"),
            _click(message=7),
            _click(channel=[1]),
            _click(team="t"),
            _click(actions=[{"action_id": "remediate:x", "value": {"a": 1}}]),
        ]
    )
    return {
        # announced as 400 MB, unsigned: only the head and 64 KB are sent
        "huge unsigned": lambda: (
            b"POST /slack/events HTTP/1.1\r\nHost: winpod\r\nContent-Length: 419430400\r\n",
            b"payload=" + b"a" * 65536,
        ),
        "chunked past the limit": lambda: (
            b"POST /slack/events HTTP/1.1\r\nHost: winpod\r\nTransfer-Encoding: chunked\r\n",
            b"".join(b"40000\r\n" + b"a" * 0x40000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n",
        ),
        "forged, 900 KB": lambda: (
            _signed_head(bot, b"x", form, forged=True),
            b"payload=" + b"a" * 900_000,
        ),
        "signed, wrong types": lambda: _signed(bot, next(wrong_types), form),
        "signed, nested 50,000 deep": lambda: _signed(bot, deep_event, json_type),
        "signed, 800 KB of command text": lambda: _signed(bot, long_text, form),
    }


def _send(port: int, request: Request) -> int:
    head, body = request
    framed = b"Transfer-Encoding" in head or b"Content-Length" in head
    data = head + (b"" if framed else b"Content-Length: %d\r\n" % len(body)) + b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        # the bot may answer 413 and close before the rest of a huge body went out
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(data)
        answer = connection.recv(64).decode("latin-1")
    return int(answer.split(" ", 2)[1]) if answer.startswith("HTTP/") else 0


def run(workdir: Path) -> dict[str, Any]:
    scenario = write_scenario(workdir / "seed-hostile.yaml", scenarios.seed_copies(1))
    sim = start_sim(scenario, workdir / "sim-hostile")
    bot: Bot | None = None
    try:
        bot = start_bot(sim)
        _wait_for_first_sweep(bot)
        kinds = _kinds(bot)
        # a few of each first: the code paths and their caches are warm before the baseline
        for make in itertools.islice(itertools.cycle(kinds.values()), 30):
            _send(bot.port, make())
        before, _ = rss_mb(bot.process.pid)
        statuses: Counter[str] = Counter()
        started = time.monotonic()
        for name, make in itertools.islice(itertools.cycle(kinds.items()), REQUESTS):
            statuses[f"{name}: {_send(bot.port, make())}"] += 1
        seconds = time.monotonic() - started
        after, peak = rss_mb(bot.process.pid)
        alive = bot.process.poll() is None
    finally:
        if bot is not None:
            bot.stop()
        sim.stop()
    growth = after - before
    server_errors = sum(n for key, n in statuses.items() if int(key.rsplit(": ", 1)[1]) >= 500)
    return {
        "benchmark": "hostile",
        "requests": REQUESTS,
        "answers": dict(sorted(statuses.items())),
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(growth, 1),
        "server_errors": server_errors,
        "bot_alive": alive,
        "target": {"rss_growth_mb_max": TARGET_RSS_GROWTH_MB, "server_errors": 0},
        "meets_target": growth <= TARGET_RSS_GROWTH_MB and server_errors == 0 and alive,
    }
