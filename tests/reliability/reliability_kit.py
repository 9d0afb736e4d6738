"""The reliability suite's lab: simulators, bots and CLI runs whose every log line, output and
recorded Slack call is scanned for the configured secrets, plus the simulator's request log."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from bot_process import RunningBot, SlackResponse, start_bot
from sim_process import ROOT, RunningSim, start_sim

HERE = Path(__file__).resolve().parent
SECRET_ENV = re.compile(r"PASSWORD|TOKEN|SECRET")
# Every segment of a Kubernetes API path the bot calls: API words, group names and object
# names alike are lowercase DNS-style; a newline, space or `$(` there means an invalid name went
# out to the cluster.
PATH_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
CLI_TIMEOUT_S = 120
T = TypeVar("T")


def secret_forms(secret: str) -> set[str]:
    """How a secret can show up in text: as is, JSON-escaped, or URL-encoded."""
    return {secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe="")}


def configured_secrets(sim: RunningSim) -> set[str]:
    """The tokens and passwords the simulator hands the bot (winpod.yaml, kubeconfig)."""
    config = yaml.safe_load(sim.config.read_text())
    kubeconfig = yaml.safe_load(sim.kubeconfig.read_text())
    found = {
        config["slack"]["bot_token"],
        config["slack"]["signing_secret"],
        config["winrm"]["password"],
        *(user["user"]["token"] for user in kubeconfig["users"]),
        str(sim.urls.get("slack_app_token") or ""),
    }
    return {s for s in found if len(s) >= 8}


def env_secrets(env: dict[str, str] | None) -> set[str]:
    """Secrets a test configures through the environment (a wrong password, say)."""
    return {v for k, v in (env or {}).items() if SECRET_ENV.search(k) and len(v) >= 8}


# Slack markup winpod itself writes: mentions of user ids and of the configured approver groups,
# and its docs links. Anything else that Slack would act on (`<!channel>`, a link with another
# label, a mention of something that is no id) came from outside data unescaped. Planted
# canaries carry EVIL in their ids.
OWN_MENTION = re.compile(r"<(?:@[UW]|!subteam\^S)(?![A-Z0-9]*EVIL)[A-Z0-9]+>")
OWN_LINK = re.compile(r"<https?://[^|<>\s]+\|docs(?: \d+)?>")
LIVE_MARKUP = re.compile(r"<(?:!|@|https?:)[^<>]*>?")


def live_markup(text: str) -> list[str]:
    """Every piece of `text` that Slack would turn into a mention, broadcast or link and that
    winpod did not write itself."""
    return [
        m.group(0)[:120]
        for m in LIVE_MARKUP.finditer(text)
        if not (OWN_MENTION.fullmatch(m.group(0)) or OWN_LINK.fullmatch(m.group(0)))
    ]


def slack_texts(value: Any) -> Iterable[str]:
    """Every `text` in a recorded Slack call's parameters, blocks (a list or JSON) included."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            elif key in ("blocks", "attachments") and isinstance(item, str):
                try:
                    yield from slack_texts(json.loads(item))
                except ValueError:
                    yield item
            else:
                yield from slack_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from slack_texts(item)


@dataclass
class SecretScan:
    """Everything scanned during the session, and what was found where it must not be."""

    scanned: Counter[str] = field(default_factory=Counter)
    hits: list[str] = field(default_factory=list)
    bad_paths: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    markup: list[str] = field(default_factory=list)
    labs_closed: int = 0

    def scan_markup(self, source: str, calls: list[dict[str, Any]]) -> list[str]:
        """Record live markup from outside data in any text of `calls`; returns the findings."""
        found = []
        for call in calls:
            for text in slack_texts(call.get("params") or {}):
                self.scanned["Slack texts for markup"] += 1
                found += [f"{source}: {call['method']} posted {m!r}" for m in live_markup(text)]
        self.markup.extend(found)
        return found

    def scan(self, kind: str, source: str, text: str, secrets: Iterable[str]) -> list[str]:
        """Record one text of `kind` (bot log, CLI output, Slack calls); returns the hits."""
        self.scanned[kind] += 1
        self.scanned[f"{kind} bytes"] += len(text)
        hits = []
        for secret in secrets:
            for form in secret_forms(secret):
                if form in text:
                    # Never print the secret itself: say where and which kind.
                    hits.append(f"{source}: a configured secret ({secret[:4]}…) appears")
                    break
        self.hits.extend(hits)
        return hits


@dataclass(frozen=True)
class Run:
    """One finished `winpod` command-line process."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def ack_text(response: SlackResponse) -> str:
    """What Slack shows the person who typed a command, from the HTTP answer to it (Bolt
    answers plain text when there are no blocks); an answer in the channel fails here."""
    if not response.body.startswith("{"):
        return response.body
    answer = response.json()
    assert answer.get("response_type", "ephemeral") == "ephemeral", answer
    return "\n".join(
        [answer.get("text", "")]
        + [b["text"]["text"] for b in answer.get("blocks", []) if "text" in b]
    )


def click_body(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str = "1700000000.000100",
    blocks: list[Any] | None = None,
) -> str:
    """A `block_actions` request body as Slack posts it for a button press."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "name": "someone"},
        "team": {"id": "T0WINPODSIM"},
        "api_app_id": "A0WINPOD",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/unused",
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "channel": {"id": channel},
        "message": {"ts": message_ts, "blocks": blocks or []},
        "actions": [{"type": "button", "block_id": "b", "action_id": action_id, "value": value}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def post_oversized(bot: RunningBot, body: str, content_type: str) -> int:
    """POST a signed body the bot refuses before reading all of it; its status. urllib would
    fail with a broken pipe when the bot answers 413 and closes while the body is still going
    out, so this sends on a plain socket and reads whatever answer came back."""
    stamp = str(int(time.time()))
    digest = hmac.new(
        bot.signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    data = body.encode()
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: winpod\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\nX-Slack-Request-Timestamp: {stamp}\r\n"
        f"X-Slack-Signature: v0={digest}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", bot.port), timeout=30) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(head.encode() + data)
        answer = connection.recv(64).decode("latin-1")
    return int(answer.split(" ", 2)[1])


def button(message: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The first button of `message` whose action_id starts with `prefix`."""
    return next(
        e
        for b in message.get("blocks", [])
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if str(e.get("action_id", "")).startswith(prefix)
    )


def tracebacks(text: str) -> list[str]:
    return [line[:300] for line in text.splitlines() if "Traceback" in line]


def log_entries(bot: RunningBot) -> list[dict[str, Any]]:
    """The bot's JSON log lines (anything else on stderr would be a bug of its own)."""
    entries = []
    for line in bot.log.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = {"level": "not-json", "message": line}
        entries.append(entry)
    return entries


def metric(bot: RunningBot, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when absent)."""
    _, text = bot.get("/metrics")
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def requests_since(sim: RunningSim, since: int, server: str = "kube") -> list[dict[str, Any]]:
    found = sim.control("GET", f"/sim/v1/requests?server={server}&since={since}")
    return list(found["requests"])


def request_mark(sim: RunningSim) -> int:
    """The newest sequence number in the simulator's request log (any server)."""
    found = sim.control("GET", "/sim/v1/requests")["requests"]
    return max((int(r["seq"]) for r in found), default=0)


def invalid_segments(request: dict[str, Any]) -> list[str]:
    return [s for s in str(request["path"]).split("/")[1:] if not PATH_SEGMENT.fullmatch(s)]


def until(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `predicate` every 0.1 s until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Lab:
    """What one test module starts. `close()` scans it all and stops it all; a secret found,
    a traceback in a bot's log or an invalid name sent to the cluster fails the module."""

    def __init__(self, scan: SecretScan, out: Path) -> None:
        self.scan = scan
        self.out = out
        self.sims: list[RunningSim] = []
        self.bots: list[tuple[RunningBot, set[str]]] = []
        self._secrets: dict[Path, set[str]] = {}
        self._runs = 0

    def sim(self, scenario: str | Path) -> RunningSim:
        path = Path(scenario)
        if not path.is_absolute():
            path = HERE / "scenarios" / path
        sim = start_sim(path, self.out / f"sim{len(self.sims)}")
        self.sims.append(sim)
        self._secrets[sim.out] = configured_secrets(sim)
        return sim

    def bot(
        self, sim: RunningSim, env: dict[str, str] | None = None, name: str = "bot"
    ) -> RunningBot:
        self._secrets[sim.out] |= env_secrets(env)
        bot = start_bot(sim, env, name=f"{name}{len(self.bots)}")
        self.bots.append((bot, self._secrets[sim.out] | env_secrets(env)))
        return bot

    def quiet_bot(
        self, sim: RunningSim, name: str, env: dict[str, str] | None = None
    ) -> RunningBot:
        """One replica with no timed work after its first sweep (no Lease, sweeps and
        housekeeping an hour apart): from then on, what reaches the cluster or Slack is what a
        test caused."""
        quiet = {
            "WINPOD_KUBERNETES__LEADER_ELECTION": "false",
            "WINPOD_SWEEP__INTERVAL": "1h",
            "WINPOD_HOUSEKEEPING_INTERVAL": "1h",
        }
        running = self.bot(sim, {**quiet, **(env or {})}, name=name)
        until(lambda: metric(running, "winpod_sweep_seconds_count") >= 1, 60, "the first sweep")
        return running

    def cli(self, sim: RunningSim, *argv: str, env: dict[str, str] | None = None) -> Run:
        """`winpod ARGV --config <the simulator's>` as a person runs it; its output is scanned
        here and then, and a traceback fails the test at once."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WINPOD_")}
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-m", "bot", *argv, "--config", str(sim.config)],
            cwd=ROOT,
            env={**clean, **(env or {})},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        run = Run(
            tuple(argv),
            process.returncode,
            process.stdout,
            process.stderr,
            time.monotonic() - started,
        )
        self._runs += 1
        source = f"`winpod {' '.join(argv)}` (run {self._runs})"
        secrets = self._secrets[sim.out] | env_secrets(env)
        hits = self.scan.scan("CLI output", source, run.stdout + run.stderr, secrets)
        assert not hits, hits
        assert not tracebacks(run.stdout + run.stderr), run
        return run

    def close(self) -> None:
        problems: list[str] = []
        for bot, secrets in self.bots:
            bot.stop()
            source = f"bot log {bot.log_path.name}"
            problems += self.scan.scan("bot log", source, bot.log, secrets)
            found = [f"{source}: {line}" for line in tracebacks(bot.log)]
            self.scan.tracebacks.extend(found)
            problems += found
        for sim in self.sims:
            if sim.process.poll() is None:
                recorded = sim.control("GET", "/sim/v1/slack/calls")["calls"]
                calls = json.dumps(recorded)
                source = f"Slack calls recorded by {sim.out.name}"
                problems += self.scan.scan("Slack calls", source, calls, self._secrets[sim.out])
                problems += self.scan.scan_markup(source, recorded)
                for server in ("kube", "exec"):
                    for request in requests_since(sim, 0, server):
                        if invalid_segments(request):
                            bad = f"{sim.out.name}: {request['method']} {request['path']!r}"
                            self.scan.bad_paths.append(bad)
                            problems.append(bad)
            sim.stop()
        self.scan.labs_closed += 1
        assert not problems, "\n".join(problems)
