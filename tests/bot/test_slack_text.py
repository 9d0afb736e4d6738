"""`Mrkdwn`: outside strings enter Slack text escaped, or inside a code block they cannot leave."""

from __future__ import annotations

import pytest

from bot.slack_text import Mrkdwn, code, code_block, escape, mention

CANARIES = [
    "<!channel>",
    "<!here|here>",
    "<@U0EVIL>",
    "<https://evil.example/approve|Re-approve here>",
    "a & b > c",
]


@pytest.mark.parametrize("outside", CANARIES)
def test_formatting_escapes_every_outside_value(outside: str) -> None:
    text = Mrkdwn(":x: {} failed: {reason}").format(outside, reason=outside)
    assert isinstance(text, Mrkdwn)
    assert "<" not in text.replace("&lt;", "") and ">" not in text.replace("&gt;", "")
    assert text.count("&lt;") == 2 * outside.count("<")


def test_adding_and_joining_escape_the_plain_part_and_keep_the_markup() -> None:
    text = Mrkdwn("*bold* ") + "<!channel>"
    assert text == "*bold* &lt;!channel&gt;"
    assert isinstance(text, Mrkdwn)
    joined = Mrkdwn("\n").join(["<@U0EVIL>", Mrkdwn("*ok*")])
    assert joined == "&lt;@U0EVIL&gt;\n*ok*"


def test_escaping_is_done_once() -> None:
    once = escape("a & <b>")
    assert escape(once) == once == "a &amp; &lt;b&gt;"
    assert Mrkdwn("{}").format(once) == once


def test_plain_str_built_around_slack_text_is_no_slack_text() -> None:
    # an f-string or str + Mrkdwn gives a plain str, which the posting helpers (typed Mrkdwn)
    # do not take: mypy refuses it
    assert type(f"{escape('x')}") is str
    assert type("x" + escape("y")) is str
    assert type(escape("abc")[:2]) is str


@pytest.mark.parametrize(
    "outside", ["```<!channel>```", "``` <!channel>", "x```\n*evil*\n```", "````````"]
)
def test_nothing_inside_a_code_block_can_close_it(outside: str) -> None:
    block = code_block(f"from {outside} to")
    assert block.startswith("```\n") and block.endswith("\n```")
    assert block.count("```") == 2
    assert "<!" not in block


def test_inline_code_cannot_be_ended_early() -> None:
    assert code("a`b <!x>") == "`a'b &lt;!x&gt;`"


@pytest.mark.parametrize(
    ("user_id", "shown"),
    [
        ("U0APPROVER1", "<@U0APPROVER1>"),
        ("W123", "<@W123>"),
        ("!channel", "!channel"),
        ("U1> <!here", "U1&gt; &lt;!here"),
    ],
)
def test_a_mention_is_only_made_of_a_user_id(user_id: str, shown: str) -> None:
    assert mention(user_id) == shown
