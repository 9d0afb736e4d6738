"""What the zh-CN tests call an untranslated English sentence."""

from __future__ import annotations

import re


def english_runs(text: str) -> list[str]:
    """Runs of four or more English words outside code, mentions, links and emoji."""
    text = re.sub(r"```.*?```|`[^`]*`|<[^>]*>|:[a-z0-9_+-]+:|https?://\S+", " ", text, flags=re.S)
    runs, run = [], []
    for token in text.split():
        if re.fullmatch(r"[(\"']?[A-Za-z][a-z]+(?:'[a-z]+)?[,.;:!?)\"']*", token):
            run.append(token)
            continue
        if len(run) >= 4:
            runs.append(" ".join(run))
        run = []
    if len(run) >= 4:
        runs.append(" ".join(run))
    return runs
