"""`winpod rdp open|close|list` from a terminal (audited as the OS user, confirmed like a
remediation, through the same remediation service); the running bot's leader closes sessions
at expiry."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from bot import render_text
from bot.remediate_cli import TerminalNotifier, confirmed, operator, run_confirmed, service_for
from bot.store import Store
from bot.wiring import build_transports
from config.settings import Settings, format_duration
from handlers import rdp
from handlers.i18n import _


def rdp_command(
    settings: Settings,
    action: str,
    node: str | None,
    ttl: str | None,
    source: str | None,
    yes: bool,
) -> int:
    namespace = settings.kubernetes.namespace
    if action == "list":
        sessions = rdp.sessions(build_transports(settings).cluster, namespace)
        for s in sessions:
            print(
                _("{node} until {time} UTC  from {sources} {connect}").format(
                    node=f"{s.node:<24}",
                    time=f"{s.expires_at:%Y-%m-%d %H:%M}",
                    sources=f"{','.join(s.source_ranges):<22}",
                    connect=s.connect,
                )
            )
        if not sessions:
            print(_("No RDP session is open."))
        return 0
    assert node is not None
    user = operator()
    store = Store(settings.store.url, cluster=settings.cluster)
    try:
        store.migrate(settings.resolve_cluster(None))
        notifier = TerminalNotifier()
        service = service_for(settings, store, notifier)
        if action == "close":
            plan = service.plan("rdp-close", node, {})
            report = run_confirmed(service, notifier, plan, {}, user)
            print(report.summary)
            return 0 if report.ok else 1
        params = {k: v for k, v in (("ttl", ttl), ("from", source), ("requester", user)) if v}
        plan = service.plan("rdp-open", node, params)
        print(
            _("{what}\nExactly what will be created:\n{preview}\n").format(
                what=plan.what, preview=plan.preview
            )
        )
        if not yes and not confirmed(_("Open RDP to {node}?").format(node=node)):
            print(_("Nothing was opened."))
            return 0
        report = run_confirmed(service, notifier, plan, params, user)
        print(render_text.run_report_text(report))
        session = store.get_rdp(plan.target)
        if report.ok and session is not None:
            left = timedelta(seconds=int((session.expires_at - datetime.now(UTC)).total_seconds()))
            print(
                _(
                    "The running winpod bot closes it in {duration}; without one, run "
                    "`winpod rdp close {node}`."
                ).format(duration=format_duration(left), node=node),
                file=sys.stderr,
            )
        return 0 if report.ok else 1
    finally:
        store.close()
