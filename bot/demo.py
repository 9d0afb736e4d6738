"""`winpod demo`: the whole story on the embedded simulated cluster, as a Slack user sees it.

It starts the simulator on the seed scenario and the real bot (`winpod serve`, Socket Mode)
against it; the simulated Slack delivers the commands and button presses a person would make.
`--interactive` lets a person type `/winpod …` and press buttons by number instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from bot.demo_view import Button, draw
from bot.slack_text import code, mention
from handlers.i18n import _

OPS, ALERTS = "C0OPS", "C0ALERTS"
ONCALL, ALICE, BOB = "U0ONCALL", "U0APPROVER1", "U0APPROVER2"


class DemoError(Exception):
    """The demo could not go on (the simulator or the bot did not answer as expected)."""


class Stage:
    """The simulator and the bot as child processes, and the simulated Slack's control API."""

    def __init__(self, out: Path, locale: str = "en") -> None:
        self.out = out
        self.processes: list[subprocess.Popen[str]] = []
        scenario = resources.files("sim") / "scenarios" / "seed.yaml"
        self._spawn(
            [sys.executable, "-m", "sim", "--scenario", str(scenario), "--out", str(out)],
            "sim ready",
            out / "sim.log",
        )
        self.urls = json.loads((out / "sim.json").read_text())
        env = {
            "WINPOD_SLACK__APP_TOKEN": self.urls["slack_app_token"],
            "WINPOD_SWEEP__INTERVAL": "3s",
            # as on a managed cluster: node scripts through the Kubernetes API alone (the
            # simulated hosts answer WinRM too; the Hyper-V host's script still uses it)
            "WINPOD_NODE__TRANSPORT": "hostprocess",
            "WINPOD_LOCALE": locale,
        }
        self._spawn(
            [
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--config",
                str(out / "winpod.yaml"),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--metrics-port",
                "0",
            ],
            "winpod ready",
            out / "bot.log",
            env,
        )
        self.wait(
            lambda: self.control("GET", "/sim/v1/slack/socket_mode")["connected"],
            _("the bot to connect to Slack"),
        )

    def _spawn(
        self, argv: list[str], ready: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        with log.open("w") as stderr:
            process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, **(env or {})},
            )
        self.processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(ready):
            raise DemoError(
                _("{program} did not start: {log}").format(
                    program=argv[2], log=log.read_text()[-2000:]
                )
            )

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the simulator on loopback
            self.urls["control"] + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise DemoError(_("gave up waiting for {what}").format(what=what))

    def messages(self, channel: str) -> list[dict[str, Any]]:
        return list(self.control("GET", f"/sim/v1/slack/messages?channel={channel}")["messages"])

    def command(self, text: str, user: str = ONCALL, channel: str = OPS) -> str:
        sent = self.control(
            "POST",
            "/sim/v1/slack/socket_mode/envelopes",
            {
                "type": "slash_commands",
                "payload": {"text": text, "user_id": user, "channel_id": channel},
            },
        )
        return str((sent.get("ack_payload") or {}).get("text") or "")

    def click(self, button: Button, user: str) -> None:
        self.control(
            "POST",
            "/sim/v1/slack/socket_mode/envelopes",
            {
                "type": "interactive",
                "payload": {
                    "user": {"id": user},
                    "container": {"channel_id": button.channel, "message_ts": button.message_ts},
                    "actions": [
                        {
                            "type": "button",
                            "action_id": button.action_id,
                            "value": button.value,
                            "block_id": "demo",
                        }
                    ],
                },
            },
        )

    def ephemeral_for(self, user: str, channel: str = OPS) -> list[str]:
        data = self.control("GET", f"/sim/v1/slack/messages?channel={channel}")
        return [str(e.get("text")) for e in data["ephemeral"] if e.get("user") == user]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


class Story:
    def __init__(self, stage: Stage, colour: bool) -> None:
        self.stage, self.colour = stage, colour
        self.buttons: dict[int, Button] = {}

    def say(self, text: str) -> None:
        print(f"\n\033[1;34m▶ {text}\033[0m" if self.colour else f"\n▶ {text}", flush=True)

    def show(self, message: dict[str, Any], channel: str) -> None:
        name = "#ops" if channel == OPS else "#winpod-alerts" if channel == ALERTS else channel
        lines, buttons = draw(message, channel, 1, self.colour)
        self.buttons = {b.number: b for b in buttons}
        print(f"  ┌─ {name} · winpod")
        for line in lines:
            print(f"  │{line}")
        print("  └─", flush=True)

    def headline(self, message: dict[str, Any]) -> None:
        """The header and the error titles only, for a quick tour."""
        header = next(
            (b["text"]["text"] for b in message.get("blocks", []) if b.get("type") == "header"),
            message.get("text", ""),
        )
        print(f"    {header}")
        for block in message.get("blocks", []):
            text = str((block.get("text") or {}).get("text", ""))
            if block.get("type") == "section" and text.startswith(":red_circle:"):
                title = text.split("\n", maxsplit=1)[0]
                print("      ● " + title.replace(":red_circle: ", "").replace("*", ""))

    def type_command(self, text: str, user: str = ONCALL) -> str:
        print(f"  @{user.lower()} › /winpod {text}", flush=True)
        return self.stage.command(text, user)

    def press(self, action_id: str, user: str, channel: str = OPS) -> None:
        """Press the shown button with this action id (its label is in the reader's language)."""
        button = next(b for b in self.buttons.values() if b.action_id == action_id)
        print(
            "  "
            + _("@{user} presses [{number}] {label}").format(
                user=user.lower(), number=button.number, label=button.label
            ),
            flush=True,
        )
        self.stage.click(button, user)

    def result_of(self, channel: str, count_before: int, what: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            messages = self.stage.messages(channel)
            if len(messages) > count_before and messages[-1].get("edited"):
                return messages[-1]
            return None

        return dict(self.stage.wait(done, what))

    def thread_says(self, channel: str, ts: str, text: str, what: str) -> dict[str, Any]:
        """The message once a reply in its thread contains `text`."""

        def said() -> dict[str, Any] | None:
            for message in self.stage.messages(channel):
                replies = message.get("replies") or []
                if message["ts"] == ts and any(text in r.get("text", "") for r in replies):
                    return message
            return None

        return dict(self.stage.wait(said, what))


def run_story(stage: Stage, colour: bool) -> None:
    story = Story(stage, colour)
    story.say(
        _(
            "winpod reaches the Windows nodes through the Kubernetes API alone: each node "
            "script runs in a short-lived HostProcess pod on the node (node.transport: "
            "hostprocess)."
        )
    )
    story.say(
        _(
            "The simulated cluster also answers WinRM: node.transport: winrm sends the same "
            "scripts over WS-Management, and the Hyper-V host (no Kubernetes node) is reached "
            "only that way."
        )
    )
    story.say(_("An SRE on call asks what is wrong with a pod stuck in ContainerCreating."))
    before = len(stage.messages(OPS))
    story.type_command("diagnose web/iis-0")
    story.show(story.result_of(OPS, before, _diagnosis_of("web/iis-0")), OPS)

    story.say(_("The other seed problems, each found by its own check (headlines only):"))
    for reference in ("web/legacy-0", "jobs/worker-0", "web/nginx-7c5d", "web/report-0"):
        before = len(stage.messages(OPS))
        story.type_command(f"diagnose {reference}")
        story.headline(story.result_of(OPS, before, _diagnosis_of(reference)))

    story.say(_("Another team reports that DNS fails in shop/api-0 since its node rebooted."))
    before = len(stage.messages(OPS))
    story.type_command("diagnose shop/api-0")
    message = story.result_of(OPS, before, _diagnosis_of("shop/api-0"))
    story.show(message, OPS)

    story.say(_("hns-reset is high risk: it needs two approvers. Alice approves first…"))
    story.press("remediate:hns-reset", ALICE)
    message = story.thread_says(OPS, message["ts"], _first_approval(ALICE), _("the first approval"))
    story.show(message, OPS)
    story.say(
        _(
            "…Alice cannot be the second approver too; Bob is, and the fix runs in a HostProcess "
            "pod on the node (it outlives kubelet's restart), then is verified."
        )
    )
    told = len(stage.ephemeral_for(ALICE))
    story.press("remediate:hns-reset", ALICE)
    stage.wait(lambda: len(stage.ephemeral_for(ALICE)) > told, _("Alice's refusal"))
    print("  " + _("(only Alice sees) {text}").format(text=stage.ephemeral_for(ALICE)[-1]))
    story.press("remediate:hns-reset", BOB)
    verification = _("*Verification — {verdict}:* {summary}").split("{verdict}")[0]
    message = story.thread_says(OPS, message["ts"], verification, _("the result of hns-reset"))
    story.show(message, OPS)
    stats = stage.control("GET", "/sim/v1/stats")
    said = _(
        "(simulator) HostProcess pods so far: {pods}; WinRM requests: {winrm} (the Hyper-V "
        "host's, for jobs/worker-0)"
    )
    print("  " + said.format(pods=stats["hostprocess_pods"], winrm=stats["winrm"]), flush=True)

    story.say(_("A Windows node reboots at night. The next sweep notices before anyone else does."))
    alerts_before = len(stage.messages(ALERTS))
    print("  " + _("(simulator) {node} reboots").format(node="akswin000000"), flush=True)
    stage.control("POST", "/sim/v1/hosts/akswin000000/reboot")
    alert = stage.wait(lambda: stage.messages(ALERTS)[alerts_before:], _("the sweep alert"))[0]
    story.show(alert, ALERTS)
    story.say(_("kube-proxy-restart needs one approver; Bob presses it from the alert."))
    story.press("remediate:kube-proxy-restart", BOB, ALERTS)
    all_clear = _(":white_check_mark: DNS works again on {node}.").format(node=code("akswin000000"))
    alert = story.thread_says(ALERTS, alert["ts"], all_clear, _("the fix and the all-clear"))
    story.show(alert, ALERTS)

    story.say(_("The SRE wants to look at a node over RDP for a few minutes."))
    before = len(stage.messages(OPS))
    story.type_command("rdp open akswin000001 ttl=10m")
    request = stage.wait(lambda: stage.messages(OPS)[before:], _("the RDP request"))[0]
    story.show(request, OPS)
    story.press("remediate:rdp-open", ALICE)
    story.thread_says(OPS, request["ts"], _first_approval(ALICE), _("the first RDP approval"))
    story.press("remediate:rdp-open", BOB)
    request = story.thread_says(OPS, request["ts"], "mstsc.exe", _("the RDP address"))
    story.show(request, OPS)
    before = len(stage.messages(OPS))
    story.type_command("rdp close akswin000001")
    closed = stage.wait(lambda: stage.messages(OPS)[before:], _("the RDP close"))[0]
    story.show(closed, OPS)

    story.say(_("Everything above is in the audit log."))
    print(story.type_command("audit 12").replace("```", ""))


def _diagnosis_of(pod: str) -> str:
    return _("the diagnosis of {pod}").format(pod=pod)


def _first_approval(user: str) -> str:
    """What the thread says after the first of two approvals (as the bot words it)."""
    return _(
        ":ballot_box_with_check: {person} approved ({count}/{needed}); it needs a second approver."
    ).format(person=mention(user), count=1, needed=2)


def interactive(stage: Stage, colour: bool) -> None:
    story = Story(stage, colour)
    print(
        _(
            "Type /winpod … (as @oncall), `click N [alice|bob|oncall]`, `show`, or `quit`.\n"
            "Alice (U0APPROVER1) and Bob (U0APPROVER2) are approvers; alerts go to "
            "#winpod-alerts; `reboot NODE` reboots a simulated node."
        )
    )
    users = {"alice": ALICE, "bob": BOB, "oncall": ONCALL}
    while True:
        try:
            line = input("winpod-demo> ").strip()
        except EOFError:
            return
        if line in ("quit", "exit"):
            return
        if line.startswith("/winpod"):
            before = {c: len(stage.messages(c)) for c in (OPS, ALERTS)}
            reply = story.type_command(line[len("/winpod") :].strip())
            if reply:
                print("  " + _("(only you see) {text}").format(text=reply))
            time.sleep(2)
            _show_new(story, before)
        elif line.startswith("click"):
            parts = line.split()
            try:
                button = story.buttons[int(parts[1])]
            except (IndexError, ValueError, KeyError):
                print("  " + _("usage: click N [alice|bob|oncall] — N from the last message shown"))
                continue
            user = users.get(parts[2] if len(parts) > 2 else "alice", ALICE)
            stage.click(button, user)
            time.sleep(2)
            story.show(
                next(m for m in stage.messages(button.channel) if m["ts"] == button.message_ts),
                button.channel,
            )
        elif line.startswith("reboot "):
            print(stage.control("POST", f"/sim/v1/hosts/{line.split()[1]}/reboot"))
        elif line == "show":
            for channel in (OPS, ALERTS):
                for message in stage.messages(channel)[-3:]:
                    story.show(message, channel)
        elif line:
            print("  /winpod …, click N [user], reboot NODE, show, quit")  # i18n: commands


def _show_new(story: Story, before: dict[str, int]) -> None:
    for channel, count in before.items():
        for message in story.stage.messages(channel)[count:]:
            story.show(message, channel)


def run_demo(colour: bool, interactive_mode: bool = False, locale: str = "en") -> int:
    with tempfile.TemporaryDirectory(prefix="winpod-demo-") as tmp:
        print(
            _("Starting the simulated Windows cluster (seed scenario) and the winpod bot…"),
            flush=True,
        )
        stage = Stage(Path(tmp), locale)
        try:
            if interactive_mode:
                interactive(stage, colour)
            else:
                run_story(stage, colour)
                print(
                    "\n"
                    + _(
                        "The demo is over: every seed problem, a fix approved by two people, a "
                        "sweep alert fixed from its buttons, and RDP opened and closed."
                    )
                )
        except DemoError as exc:
            log = (Path(tmp) / "bot.log").read_text()[-3000:]
            print(
                "winpod demo: " + _("{error}\n--- bot log ---\n{log}").format(error=exc, log=log),
                file=sys.stderr,
            )
            return 3
        finally:
            stage.stop()
    return 0
