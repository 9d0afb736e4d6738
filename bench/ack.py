"""200 signed `/winpod diagnose` slash commands to `winpod serve` over HTTP, 50 at a time: how
fast each is acknowledged, and whether every result arrives in the channel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import scenarios
from bench.harness import (
    LATENCY_MS,
    ROOT,
    Sim,
    fetch,
    free_port,
    machine_cpu_seconds,
    percentile,
    process_cpu_seconds,
    start_sim,
    stop_process,
    write_scenario,
)

COMMANDS = 200
AT_ONCE = 50
COPIES = 34
CHANNEL = "C0BENCH"
USER = "U0BENCH"
TARGET_ACK_P99_MS = 100.0
RESULT_DEADLINE_S = 300.0
START_TIMEOUT_S = 60.0


@dataclass
class Bot:
    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    signing_secret: str

    def metric(self, name: str) -> float:
        text = fetch(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        stop_process(self.process, timeout_s=60)


@dataclass
class Sent:
    reference: str
    sent_at: float  # wall clock, comparable with Slack message timestamps
    ack_ms: float
    status: int
    answer: str


def start_bot(sim: Sim) -> Bot:
    config = yaml.safe_load(sim.config.read_text())
    port, metrics_port = free_port(), free_port()
    with (sim.out / "bot.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--config",
                str(sim.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                str(metrics_port),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert process.stdout is not None
    if not process.stdout.readline().startswith("winpod ready"):
        process.kill()
        process.communicate(timeout=10)
        raise RuntimeError(f"winpod serve did not start:\n{(sim.out / 'bot.log').read_text()}")
    return Bot(process, port, metrics_port, str(config["slack"]["signing_secret"]))


def _wait_for_first_sweep(bot: Bot) -> None:
    """The leader sweeps a second after start; let it finish so it does not share the run."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while bot.metric("winpod_sweep_seconds_count") < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the start-up sweep did not finish")
        time.sleep(0.2)


def _signed(sim: Sim, bot: Bot, text: str) -> tuple[bytes, dict[str, str]]:
    """A `/winpod TEXT` slash command as Slack posts it, signed."""
    response_url = sim.control(
        "POST", "/sim/v1/slack/response_url", {"channel": CHANNEL, "user": USER}
    )["response_url"]
    body = urllib.parse.urlencode(
        {
            "token": "legacy",
            "team_id": "T0WINPODSIM",
            "team_domain": "sim",
            "channel_id": CHANNEL,
            "channel_name": "bench",
            "user_id": USER,
            "user_name": "bench",
            "command": "/winpod",
            "text": text,
            "api_app_id": "A0WINPOD",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )
    stamp = str(int(time.time()))
    digest = hmac.new(
        bot.signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body.encode(), headers


async def _send_all(bot: Bot, commands: list[tuple[str, bytes, dict[str, str]]]) -> list[Sent]:
    """Every command over its own connection, as Slack sends them, at most AT_ONCE in flight.

    One asyncio loop sends them all: a thread per sender would make the senders queue for the
    benchmark's own GIL and count that as the bot's latency."""
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    gate = asyncio.Semaphore(AT_ONCE)
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(reference: str, body: bytes, headers: dict[str, str]) -> Sent:
            async with gate:
                sent_at, started = time.time(), time.monotonic()
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.text()
                return Sent(
                    reference,
                    sent_at,
                    (time.monotonic() - started) * 1000,
                    response.status,
                    answer,
                )

        return list(await asyncio.gather(*(send(*command) for command in commands)))


def _results(sim: Sim, references: list[str]) -> dict[str, float]:
    """Reference → Slack timestamp of the edit that turned "Diagnosing…" into its result."""
    messages = sim.control("GET", f"/sim/v1/slack/messages?channel={CHANNEL}")["messages"]
    found: dict[str, float] = {}
    for message in messages:
        if "edited" not in message:
            continue
        text = json.dumps(message)
        for reference in references:
            if reference in text and reference not in found:
                found[reference] = float(message["edited"]["ts"])
                break
    return found


def _ack_kind(answer: str) -> str:
    """What an acknowledgement said, in a word: accepted (empty), queued, or its text."""
    if not answer:
        return "accepted"
    try:
        text = str((json.loads(answer) or {}).get("text", ""))
    except (ValueError, AttributeError):
        text = answer
    if "queue" in text.lower() or "ahead" in text.lower():
        return "queued"
    return text[:80]


def run(workdir: Path) -> dict[str, Any]:
    scenario = write_scenario(workdir / "seed-copies.yaml", scenarios.seed_copies(COPIES))
    references = scenarios.seed_problem_pods(COPIES)[:COMMANDS]
    sim = start_sim(scenario, workdir / "sim-ack")
    bot: Bot | None = None
    try:
        sim.set_latencies()
        bot = start_bot(sim)
        _wait_for_first_sweep(bot)
        # A bot that has served before: Bolt has authorized itself (auth.test) once already.
        asyncio.run(_send_all(bot, [("help", *_signed(sim, bot, "help"))]))
        commands = [(ref, *_signed(sim, bot, f"diagnose {ref}")) for ref in references]
        pids = (os.getpid(), bot.process.pid, sim.process.pid)
        cpu = [process_cpu_seconds(pid) for pid in pids]
        machine_cpu = machine_cpu_seconds()
        sent = asyncio.run(_send_all(bot, commands))
        cpu = [process_cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
        other_cpu = machine_cpu_seconds() - machine_cpu - sum(cpu)
        deadline = time.monotonic() + RESULT_DEADLINE_S
        delivered = _results(sim, references)
        while len(delivered) < len(references) and time.monotonic() < deadline:
            time.sleep(0.5)
            delivered = _results(sim, references)
    finally:
        if bot is not None:
            bot.stop()
        sim.stop()
    acks = [s.ack_ms for s in sent]
    result_s = {
        s.reference: delivered[s.reference] - s.sent_at for s in sent if s.reference in delivered
    }
    slowest = max(result_s, key=lambda ref: result_s[ref]) if result_s else None
    kinds: dict[str, int] = {}
    for s in sent:
        kind = _ack_kind(s.answer) if s.status == 200 else f"HTTP {s.status}"
        kinds[kind] = kinds.get(kind, 0) + 1
    p99 = percentile(acks, 0.99)
    return {
        "benchmark": "ack",
        "commands": len(sent),
        "at_once": AT_ONCE,
        "ack_p50_ms": round(percentile(acks, 0.5), 1),
        "ack_p99_ms": round(p99, 1),
        "ack_max_ms": round(max(acks), 1),
        "acks": kinds,
        "results_delivered": len(result_s),
        "result_p50_s": round(percentile(list(result_s.values()), 0.5), 2) if result_s else None,
        "slowest_result_s": round(result_s[slowest], 2) if slowest else None,
        "slowest_result": slowest,
        "latency_ms": LATENCY_MS,
        # CPU used while the 200 commands were sent: by the senders, the bot, the simulator
        # and the rest of the machine (other work on these 2 cores skews the latencies)
        "cpu_during_acks_s": {
            "senders": round(cpu[0], 2),
            "bot": round(cpu[1], 2),
            "sim": round(cpu[2], 2),
            "other": round(max(0.0, other_cpu), 2),
        },
        "target": {"ack_p99_ms_max": TARGET_ACK_P99_MS, "results_delivered": COMMANDS},
        "meets_target": p99 <= TARGET_ACK_P99_MS and len(result_s) == COMMANDS,
    }
