"""zh-CN over the wire: a diagnosis, an approval request and a sweep alert as the simulated
Slack records them, from a bot started with `WINPOD_LOCALE=zh-CN`, say no English sentence in
the text winpod words itself (ids, commands, mentions and code spans excepted), and
`winpod demo --locale zh-CN` runs the whole story."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from bot_process import RunningBot, start_bot
from english import english_runs
from sim_process import ROOT, RunningSim, start_sim

pytestmark = pytest.mark.wire

OPS, ALERTS = "C0OPS", "C0ALERTS"
APPROVER = "U0APPROVER1"
Message = dict[str, Any]
FINDING_MARKERS = (":red_circle:", ":warning:", ":information_source:", ":white_check_mark:")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(ROOT / "sim/scenarios/seed.yaml", tmp_path_factory.mktemp("zh"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bot(sim: RunningSim) -> Iterator[RunningBot]:
    running = start_bot(sim, {"WINPOD_LOCALE": "zh-CN", "WINPOD_SWEEP__INTERVAL": "3s"}, "zh")
    yield running
    running.stop()


def winpod_texts(message: Message) -> list[str]:
    """The texts of a message that winpod words: header, intro, findings, the titles of the
    checks that found nothing, buttons and their dialogs, status and request sections; not a
    finding's evidence, which quotes the cluster (event messages, script output)."""
    texts = []
    after_finding = False
    for block in message.get("blocks", []):
        text = str((block.get("text") or {}).get("text", ""))
        if block["type"] == "section" and text.startswith(FINDING_MARKERS):
            after_finding = True
            texts.append(text)
            continue
        if block["type"] == "context":
            if after_finding:  # the finding's evidence and links
                after_finding = False
                continue
            texts.extend(str(e.get("text", "")) for e in block["elements"])
        elif block["type"] == "actions":
            for element in block["elements"]:
                texts.append(element["text"]["text"])
                confirm = element.get("confirm") or {}
                texts.extend(
                    str(p.get("text", "")) for p in confirm.values() if isinstance(p, dict)
                )
        else:
            texts.append(text)
        after_finding = after_finding and block["type"] == "section"
    return texts


def sweeps_done(bot: RunningBot) -> int:
    _, text = bot.get("/metrics")
    match = re.search(r"^winpod_sweep_seconds_count (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def assert_chinese(texts: list[str]) -> None:
    found = [(text, runs) for text in texts if (runs := english_runs(text))]
    assert not found, found
    assert any(re.search(r"[\u4e00-\u9fff]", text) for text in texts), texts


def test_the_english_finder_finds_english() -> None:
    assert english_runs("approved by someone, nothing ran yet") == [
        "approved by someone, nothing ran yet"
    ]
    assert english_runs("已批准 `kube-proxy restart on the node` <@U0X> :white_check_mark:") == []


def diagnose(bot: RunningBot, reference: str) -> Message:
    before = {m["ts"] for m in bot.messages(OPS)}
    assert bot.command(f"diagnose {reference}", channel=OPS).status == 200
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next(
            (m for m in bot.messages(OPS) if m["ts"] not in before and m.get("edited")), None
        ),
        what=f"the diagnosis of {reference}",
    )


def test_a_diagnosis_an_approval_request_and_a_sweep_alert_in_chinese(
    bot: RunningBot, sim: RunningSim
) -> None:
    diagnosis = diagnose(bot, "shop/api-0")
    assert "个错误" in diagnosis["text"]
    stuck = diagnose(bot, "web/iis-0")  # image-os-mismatch: title, summary, not-applicable notes
    assert "容器镜像的 Windows 版本与节点不匹配" in str(stuck["blocks"])
    assert_chinese(winpod_texts(stuck))
    assert "诊断耗时" in diagnosis["blocks"][1]["elements"][0]["text"]
    assert_chinese(winpod_texts(diagnosis))

    assert bot.click(diagnosis, "remediate:hns-reset", user=APPROVER, channel=OPS).status == 200
    request = bot.wait_for(
        lambda: [
            r
            for m in bot.messages(OPS)
            if m["ts"] == diagnosis["ts"]
            for r in m.get("replies") or []
            if "申请执行" in r.get("text", "")
        ],
        what="the approval request in the thread",
    )[0]
    assert "*会改变状态的命令：*" in str(request.get("blocks"))
    assert_chinese([request["text"], *winpod_texts(request)])
    status = next(m for m in bot.messages(OPS) if m["ts"] == diagnosis["ts"])
    assert_chinese(winpod_texts(status))  # the status line and the Approve / Reject buttons

    bot.wait_for(lambda: sweeps_done(bot) >= 1, what="the first sweep (every boot seen once)")
    alerts_before = len(bot.messages(ALERTS))
    sim.control("POST", "/sim/v1/hosts/akswin000000/reboot")
    alert = bot.wait_for(lambda: bot.messages(ALERTS)[alerts_before:], what="the alert")[0]
    headline = alert["text"].split(" — ")[0]
    assert "重启后" in headline
    intro = alert["blocks"][1]["elements"][0]["text"]
    assert "巡检发现" in intro
    assert "重启于" in intro
    assert_chinese([headline, *winpod_texts(alert)])


DIAGNOSE = (sys.executable, "-m", "bot", "diagnose", "web/iis-0", "--config")


def test_cli_text_output_in_chinese(sim: RunningSim) -> None:
    shown = subprocess.run(
        [*DIAGNOSE, str(sim.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WINPOD_LOCALE": "zh-CN"},
        check=False,
    )
    assert shown.returncode == 1, shown.stderr
    assert "✖ 错误" in shown.stdout
    assert re.search(r"\d+ 个错误，\d+ 个警告", shown.stdout)
    as_json = subprocess.run(
        [*DIAGNOSE, str(sim.config), "--locale", "zh-CN", "--output", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert '"findings"' in as_json.stdout  # JSON keys stay as SPEC §3 has them


def test_explain_in_chinese() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "explain", "image-os-mismatch", "--locale", "zh-CN"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    cause = shown.stdout.split("原因：", 1)[1].split("winpod 检查的信号：", 1)[0]
    assert "ContainerCreating" in cause  # the id stays; the sentence around it is Chinese
    assert not english_runs(cause), cause
    fixes = shown.stdout.split("解决方法：", 1)[1].split("参考资料：", 1)[0]
    assert not english_runs(fixes), fixes


def test_the_demo_runs_in_chinese() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--locale", "zh-CN"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "已批准（1/2）" in shown.stdout
    assert "验证结果" in shown.stdout
    assert "DNS 已恢复正常" in shown.stdout
