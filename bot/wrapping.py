"""Paragraphs wrapped for a terminal in any of winpod's languages.

`textwrap` breaks lines at spaces only and counts characters, so a Chinese paragraph (no spaces,
each character two columns wide) came out as one line of twice the width. Text with no wide
character is wrapped by `textwrap` exactly as before; text with some is broken between wide
characters as well as at spaces, counting display columns, and a line never starts with closing
punctuation (，。 and the like stay with the word before them).
"""

from __future__ import annotations

import textwrap
import unicodedata

# Punctuation that closes a phrase: never the first character of a line (kinsoku shori).
NO_LINE_START = frozenset("，。、；：！？）」』】》〉”’…—,.;:!?)]}")


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal: two for each wide (CJK) character."""
    return sum(2 if _wide(char) else 1 for char in text)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(piece, whether a space came before it): each wide character alone, other runs of
    non-space characters whole (names, images and manifests never break)."""
    tokens: list[tuple[str, bool]] = []
    word, word_spaced, spaced = "", False, False
    for char in text:
        if char.isspace():
            if word:
                tokens.append((word, word_spaced))
                word = ""
            spaced = True
        elif _wide(char):
            if word:
                tokens.append((word, word_spaced))
                word = ""
            tokens.append((char, spaced))
            spaced = False
        else:
            if not word:
                word_spaced, spaced = spaced, False
            word += char
    if word:
        tokens.append((word, word_spaced))
    return tokens


def wrap(
    text: str,
    width: int,
    initial_indent: str = "",
    subsequent_indent: str = "",
    keep_words: bool = True,
) -> list[str]:
    """`text` as lines of at most `width` columns (a single unbreakable piece may exceed it),
    indents included; [] for blank text, as `textwrap.wrap`. `keep_words`: English is broken at
    spaces only (names, images, manifests survive), else as textwrap does by default."""
    if not any(_wide(char) for char in text):
        return textwrap.wrap(
            text,
            width,
            initial_indent=initial_indent,
            subsequent_indent=subsequent_indent,
            break_on_hyphens=not keep_words,
            break_long_words=not keep_words,
        )
    lines: list[str] = []
    line, used, empty = initial_indent, display_width(initial_indent), True
    for piece, spaced in _tokens(text):
        joined = (" " if spaced and not empty else "") + piece
        fits = used + display_width(joined) <= width
        if fits or empty or piece[0] in NO_LINE_START:
            line, used, empty = line + joined, used + display_width(joined), False
            continue
        lines.append(line)
        line = subsequent_indent + piece
        used, empty = display_width(line), False
    if not empty:
        lines.append(line)
    return lines
