"""`winpod sweep` from a terminal: report only; boots are recorded and alerts sent by the bot."""

from __future__ import annotations

import json
import sys

from bot.store import Store
from bot.sweeper import sweep_text
from bot.wiring import build_transports
from config.settings import Settings
from handlers import sweep as sweeping


def sweep(settings: Settings, output: str) -> int:
    store = Store(settings.store.url, cluster=settings.cluster)
    try:
        store.migrate(settings.resolve_cluster(None))
        known = store.known_boots()
        open_alerts = {a.node for a in store.open_alerts()}
    finally:
        store.close()

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rprobed {done}/{total} nodes…", end="", file=sys.stderr, flush=True)

    report = sweeping.sweep(build_transports(settings), settings, known, open_alerts, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if output == "json":
        print(json.dumps({"cluster": settings.cluster, **report.to_json()}, indent=2))
    else:
        print(sweep_text(report))
    return 1 if any(f.severity == "error" for f in report.findings) else 0
