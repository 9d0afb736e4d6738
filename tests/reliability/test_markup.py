"""Outside text never becomes Slack markup: event messages, node annotations and what people
type carry `<!channel>`, a mention and a fake "Re-approve here" link, and reach Slack escaped or
inside a code block they cannot leave. The lab scans every Slack call of the run for such markup
(`live_markup`); the tests here make sure the canaries were posted at all."""

from __future__ import annotations

import json

import pytest
from bot_process import RunningBot
from reliability_kit import Lab, ack_text, live_markup, request_mark, requests_since, until
from sim_process import RunningSim

pytestmark = pytest.mark.wire

CHANNEL = "C0MARKUP"
USER = "U0MARKUPUSER"


@pytest.fixture(scope="module")
def sim(lab: Lab) -> RunningSim:
    return lab.sim("markup_cluster.yaml")


@pytest.fixture(scope="module")
def bot(lab: Lab, sim: RunningSim) -> RunningBot:
    return lab.quiet_bot(sim, "markup")


def posted(bot: RunningBot, reference: str) -> str:
    """`/winpod diagnose REFERENCE`, then every text of its finished message."""
    assert bot.command(f"diagnose {reference}", user=USER, channel=CHANNEL).status == 200
    message = until(
        lambda: next(
            (m for m in bot.messages(CHANNEL) if m.get("edited") and reference in m["text"]),
            None,
        ),
        60,
        f"the diagnosis of {reference}",
    )
    return "\n".join(
        [message["text"]]
        + [str(b.get("text", {}).get("text", "")) for b in message["blocks"]]
        + [str(e.get("text", "")) for b in message["blocks"] for e in b.get("elements", [])]
    )


def test_an_event_message_with_markup_is_shown_escaped(bot: RunningBot) -> None:
    text = posted(bot, "web/canary-0")
    assert (
        "&lt;!channel&gt; &lt;@U0EVIL&gt; &lt;https://evil.example/approve|Re-approve here&gt;"
        in (text)
    )
    assert live_markup(text) == []


def test_an_annotation_with_markup_is_shown_escaped(bot: RunningBot) -> None:
    text = posted(bot, "jobs/worker-0")
    assert "annotation '&lt;!channel&gt; &lt;https://evil.example/approve|Re-approve here&gt;'" in (
        text
    )
    assert live_markup(text) == []


def test_a_refusal_quoting_what_was_typed_is_escaped(bot: RunningBot) -> None:
    assert (
        bot.command("rdp open akswin000040 from=<!channel>", user=USER, channel=CHANNEL).status
        == 200
    )
    told = until(
        lambda: [e["text"] for e in bot.ephemeral(CHANNEL) if "refused" in e["text"]],
        30,
        "the refusal",
    )
    assert "'&lt;!channel&gt;' is not a CIDR" in told[-1]
    assert live_markup(told[-1]) == []


def test_what_was_typed_cannot_break_out_of_the_audit_code_block(bot: RunningBot) -> None:
    breakout = "from=```<!channel><https://evil.example/approve|Re-approve>```"
    before = len(bot.ephemeral(CHANNEL))
    command = bot.command(f"rdp open akswin000040 {breakout}", user=USER, channel=CHANNEL)
    assert command.status == 200
    until(lambda: len(bot.ephemeral(CHANNEL)) > before, 30, "the refusal of the breakout")
    audit = ack_text(bot.command("audit 5", user=USER, channel=CHANNEL))
    assert "&lt;!channel&gt;" in audit  # the typed command is in the audit log, escaped
    assert audit.startswith("```") and audit.endswith("```")
    assert audit.count("```") == 2  # the typed fences did not close the block
    assert live_markup(audit) == []


def test_a_kube_dns_pod_ip_with_a_zone_id_never_reaches_a_probe(lab: Lab, sim: RunningSim) -> None:
    mark = request_mark(sim)
    run = lab.cli(sim, "diagnose", "web/dns-0", "--output", "json")
    assert run.returncode == 1, run.stderr  # the stale-policy DNS error, found by asking kube-dns
    probes = requests_since(sim, mark, "exec")
    assert probes, "the diagnosis probed DNS in the pod"
    sent = json.dumps(probes)
    assert "Stop-Computer" not in sent and "fe80" not in sent
    dns = next(f for f in run.json()["findings"] if f["check"] == "dns-after-reboot")
    assert dns["severity"] == "error", dns
    assert any("10.244." in line for line in dns["evidence"])  # a real CoreDNS pod was asked
