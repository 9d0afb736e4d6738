"""`winpod rdp open|close|list` from a terminal (audited as the OS user, confirmed like a
remediation); the running bot's leader closes sessions at expiry."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta

from bot.remediate_cli import confirmed
from bot.store import Store
from bot.wiring import build_transports
from config.settings import Settings, format_duration
from handlers import rdp, remediations


def rdp_command(
    settings: Settings,
    action: str,
    node: str | None,
    ttl: str | None,
    source: str | None,
    yes: bool,
) -> int:
    transports = build_transports(settings)
    namespace = settings.kubernetes.namespace
    if action == "list":
        sessions = rdp.sessions(transports.cluster, namespace)
        for s in sessions:
            print(
                f"{s.node:<24} until {s.expires_at:%Y-%m-%d %H:%M} UTC  from "
                f"{','.join(s.source_ranges):<22} {s.connect}"
            )
        if not sessions:
            print("No RDP session is open.")
        return 0
    assert node is not None
    user = f"cli:{getpass.getuser()}"
    store = Store(settings.store.url)
    try:
        store.migrate()
        if action == "close":
            plan = remediations.plan(transports, settings, "rdp-close", node)
            outcome = remediations.execute(transports, settings, plan)
            store.delete_rdp(node)
            store.audit(user, "rdp-close", {"summary": outcome.summary}, target=node)
            print(outcome.summary)
            return 0
        params = {k: v for k, v in (("ttl", ttl), ("from", source), ("requester", user)) if v}
        plan = remediations.plan(transports, settings, "rdp-open", node, params)
        print(f"{plan.what}\nExactly what will be created:\n{plan.preview}\n")
        if not yes and not confirmed(f"Open RDP to {node}?"):
            print("Nothing was opened.")
            return 0
        outcome = remediations.execute(transports, settings, plan)
        print(outcome.summary)
        # A failed open created and removed a LoadBalancer: that is audited too.
        store.audit(user, "rdp-open", {"ok": outcome.ok, "summary": outcome.summary}, target=node)
        session = next(
            (s for s in rdp.sessions(transports.cluster, namespace) if s.node == node), None
        )
        if outcome.ok and session is not None:
            store.upsert_rdp(node, user, session.expires_at, list(session.source_ranges))
            left = timedelta(seconds=int((session.expires_at - datetime.now(UTC)).total_seconds()))
            print(
                f"The running winpod bot closes it in {format_duration(left)}; "
                f"without one, run `winpod rdp close {node}`.",
                file=sys.stderr,
            )
        return 0 if outcome.ok else 1
    finally:
        store.close()
