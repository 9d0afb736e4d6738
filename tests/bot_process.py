"""A `winpod serve` process for tests, and signed Slack requests to drive it like Slack does."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sim_process import ROOT, RunningSim


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SlackResponse:
    status: int
    body: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class RunningBot:
    """`winpod serve` over HTTP against a simulator, with helpers that sign like Slack."""

    process: subprocess.Popen[str]
    sim: RunningSim
    port: int
    metrics_port: int
    signing_secret: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> SlackResponse:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        if signature is None:
            base = f"v0:{stamp}:{body}".encode()
            digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
            signature = f"v0={digest}"
        request = urllib.request.Request(
            self.events_url,
            data=body.encode(),
            method="POST",
            headers={
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
                "Content-Type": content_type,
            },
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return SlackResponse(
                    response.status, response.read().decode(), time.monotonic() - started
                )
        except urllib.error.HTTPError as exc:
            return SlackResponse(exc.code, exc.read().decode(), time.monotonic() - started)

    def command(
        self, text: str, *, user: str = "U0OPERATOR", channel: str = "C0OPS", **signing: Any
    ) -> SlackResponse:
        """A `/winpod TEXT` slash command as Slack posts it."""
        body = urllib.parse.urlencode(
            {
                "token": "legacy",
                "team_id": "T0WINPODSIM",
                "team_domain": "sim",
                "channel_id": channel,
                "channel_name": "ops",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/winpod",
                "text": text,
                "api_app_id": "A0WINPOD",
                "response_url": self.sim.control(
                    "POST", "/sim/v1/slack/response_url", {"channel": channel, "user": user}
                )["response_url"],
                "trigger_id": "1.2.3",
            }
        )
        return self.post(body, **signing)

    def click(
        self, message: dict[str, Any], action_prefix: str, *, user: str, channel: str = "C0OPS"
    ) -> SlackResponse:
        """Press the first button whose action_id starts with `action_prefix` in `message`."""
        thread = {"thread_ts": message["thread_ts"]} if message.get("thread_ts") else {}
        where = {
            "response_url": "http://127.0.0.1:9/unused",
            "container": {
                "type": "message",
                "channel_id": channel,
                "message_ts": message["ts"],
                **thread,
            },
            "channel": {"id": channel},
            "message": {"ts": message["ts"], "blocks": message.get("blocks", []), **thread},
        }
        return self._press(message.get("blocks", []), action_prefix, user, where)

    def click_in_home(
        self, view: dict[str, Any], action_prefix: str, *, user: str
    ) -> SlackResponse:
        """Press a button of a published App Home, as Slack sends it: a view, no channel."""
        where = {"container": {"type": "view", "view_id": view["id"]}, "view": view}
        return self._press(view.get("blocks", []), action_prefix, user, where)

    def _press(
        self, blocks: list[Any], action_prefix: str, user: str, where: dict[str, Any]
    ) -> SlackResponse:
        element = next(
            e
            for b in blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if str(e.get("action_id", "")).startswith(action_prefix)
        )
        payload = {
            "type": "block_actions",
            "user": {"id": user, "name": user.lower()},
            "team": {"id": "T0WINPODSIM"},
            "api_app_id": "A0WINPOD",
            "token": "legacy",
            "trigger_id": "1.2.3",
            **where,
            "actions": [
                {
                    "type": "button",
                    "block_id": "b",
                    "action_id": element["action_id"],
                    "value": element.get("value", ""),
                }
            ],
        }
        return self.post(urllib.parse.urlencode({"payload": json.dumps(payload)}))

    def messages(self, channel: str = "C0OPS") -> list[dict[str, Any]]:
        return list(
            self.sim.control("GET", f"/sim/v1/slack/messages?channel={channel}")["messages"]
        )

    def ephemeral(self, channel: str = "C0OPS") -> list[dict[str, Any]]:
        return list(
            self.sim.control("GET", f"/sim/v1/slack/messages?channel={channel}")["ephemeral"]
        )

    def wait_for(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_bot(
    sim: RunningSim,
    env: dict[str, str] | None = None,
    name: str = "bot",
    config_path: Path | None = None,
) -> RunningBot:
    """Start `winpod serve` on the simulator's winpod.yaml, or on `config_path` (whose Slack is
    this simulator's), plus `env` overrides."""
    config_path = config_path or sim.config
    config = yaml.safe_load(config_path.read_text())
    port, metrics_port = free_port(), free_port()
    log_path = sim.out / f"{name}.log"
    extra = env or {}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--config",
                str(config_path),
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
            env={**os.environ, "PYTHONUNBUFFERED": "1", **extra},
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("winpod ready"):
        process.kill()
        process.communicate(timeout=10)
        raise RuntimeError(f"winpod serve did not start:\n{log_path.read_text()}")
    return RunningBot(
        process, sim, port, metrics_port, str(config["slack"]["signing_secret"]), log_path, extra
    )
