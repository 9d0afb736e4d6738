"""Slack mrkdwn as a type: text winpod writes is markup, everything else enters escaped.

Slack reads `&`, `<` and `>` as control characters (`<!channel>`, `<@U123>`, `<https://x|label>`),
so a string from the cluster, a node, a pod or a person must reach a message escaped, or inside a
code block it cannot leave. `Mrkdwn` is a `str` that holds only such text: adding a plain `str` to
it, formatting or joining with it (`+`, `format`, `join`) escapes the plain one, and
`Mrkdwn(...)` itself is kept for text winpod wrote (templates and emoji), never for a value that
came from outside. Anything else (an f-string, `str + Mrkdwn`) is a plain `str` again, which the
functions that post (typed `Mrkdwn`) do not take.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import SupportsIndex

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
ZERO_WIDTH_SPACE = "\u200b"


def escape(value: object) -> Mrkdwn:
    """`value` as Slack text: a `Mrkdwn` stays as it is, anything else is escaped."""
    if isinstance(value, Mrkdwn):
        return value
    return Mrkdwn(str(value).translate(_ESCAPES))


class Mrkdwn(str):
    """Text that is safe to post as mrkdwn. Build it from a template winpod wrote:
    `Mrkdwn(":x: {} failed on `{}`").format(reason, node)` escapes `reason` and `node`."""

    __slots__ = ()

    def __add__(self, other: str) -> Mrkdwn:
        return Mrkdwn(str.__add__(self, escape(other)))

    def format(self, *args: object, **kwargs: object) -> Mrkdwn:
        return Mrkdwn(
            str.format(
                self,
                *(escape(a) for a in args),
                **{k: escape(v) for k, v in kwargs.items()},
            )
        )

    def join(self, parts: Iterable[str]) -> Mrkdwn:
        return Mrkdwn(str.join(self, (escape(p) for p in parts)))

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        # a slice may split `&amp;`: it is plain text again until escaped or wrapped
        return str.__getitem__(self, key)


def code(value: object) -> Mrkdwn:
    """`value` as inline code: escaped, and no backtick inside to end it early."""
    text = str(value).replace("`", "'").replace("\n", " ")
    return Mrkdwn("`{}`").format(text)


def code_block(value: object) -> Mrkdwn:
    """`value` in a ``` block that nothing inside can close: escaped, and every run of three
    backticks broken by a zero-width space."""
    text = str(value)
    while "```" in text:
        text = text.replace("```", "``" + ZERO_WIDTH_SPACE + "`")
    return Mrkdwn("```\n{}\n```").format(text)


def mention(user_id: str) -> Mrkdwn:
    """A mention of a Slack user id (U…/W…); anything else is shown as text, not a mention."""
    if user_id.isascii() and user_id.isalnum() and user_id[:1] in ("U", "W"):
        return Mrkdwn(f"<@{user_id}>")
    return escape(user_id)
