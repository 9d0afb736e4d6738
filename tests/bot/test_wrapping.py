"""Terminal wrapping in every language winpod speaks (bot/wrapping.py)."""

from __future__ import annotations

import textwrap

from bot.wrapping import display_width, wrap

CHINESE = (
    "重启后 DNS Service IP 的 HNS 负载均衡策略已过期：经 10.0.0.10 的查询失败，而直接问 "
    "kube-dns Pod 能得到应答。请重置 HNS 策略（或重启 kube-proxy），也可以按 Pod 绕过，"
    "或在节点上多跑一个 Pod 来规避。"
)


def test_english_wraps_exactly_as_textwrap_does() -> None:
    text = "After a reboot the HNS load-balancer policy for the DNS Service IP is stale " * 3
    expected = textwrap.wrap(
        text,
        40,
        initial_indent="  ",
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    assert wrap(text, 40, "  ", "    ") == expected
    assert wrap(text, 40, keep_words=False) == textwrap.wrap(text, 40)


def test_a_chinese_paragraph_is_broken_within_the_width_in_columns() -> None:
    lines = wrap(CHINESE, 40, "  ", "  ")

    assert len(lines) > 3  # textwrap gave one line of about 150 columns
    assert all(display_width(line) <= 40 for line in lines)
    assert "".join(line.strip() for line in lines).replace(" ", "") == CHINESE.replace(" ", "")


def test_words_and_spaces_between_them_survive_inside_chinese_text() -> None:
    lines = wrap(CHINESE, 40)

    joined = " ".join(lines)
    assert "kube-dns" in joined and "kube-proxy" in joined and "10.0.0.10" in joined
    assert all(not line.startswith(("，", "。", "：", "）")) for line in lines)


def test_nothing_to_wrap_is_no_line() -> None:
    assert wrap("", 40) == [] and wrap("   ", 40) == []
    assert display_width("节点ab") == 6
