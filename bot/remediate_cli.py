"""`winpod remediate` and `winpod audit` from a terminal: the same remediation service as Slack,
with the confirmed operator as the approver, and the same audit log."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Mapping

from bot import render_text
from bot.remediation import RemediationService, RunReport
from bot.store import PendingAction, Store
from bot.wiring import build_transports
from config.settings import Settings
from handlers.errors import BadInput, WinpodError
from handlers.i18n import _
from handlers.registry import Plan, RemediationSpec, default_registry


class TerminalNotifier:
    """What a person at the terminal sees of the service's steps."""

    def __init__(self) -> None:
        self.report: RunReport | None = None
        self.holder: str | None = None

    def requested(self, action: PendingAction, plan: Plan, spec: RemediationSpec) -> None:
        del action, plan, spec  # shown before the confirmation already

    def approved(self, action: PendingAction, by: str) -> None:
        del action, by

    def rejected(self, action: PendingAction, by: str) -> None:
        del action, by

    def queued(self, action: PendingAction, holder: str | None, busy: bool) -> None:
        del action, busy
        self.holder = holder

    def started(self, action: PendingAction) -> None:
        print(f"Running {action.remediation} on {action.target}…")

    def finished(self, report: RunReport) -> None:
        self.report = report

    def changed(self, action: PendingAction, changes: list[str], fresh_offer: str | None) -> None:
        del action, changes, fresh_offer  # the report says it


def operator() -> str:
    return f"cli:{getpass.getuser()}"


def service_for(settings: Settings, store: Store, notifier: TerminalNotifier) -> RemediationService:
    return RemediationService(
        store,
        settings,
        build_transports(settings),
        default_registry(),
        None,  # runs here, in the foreground
        notifier,
        lambda user: True,  # whoever holds the cluster's credentials and confirmed
    )


def run_confirmed(
    service: RemediationService,
    notifier: TerminalNotifier,
    plan: Plan,
    params: Mapping[str, str],
    user: str,
) -> RunReport:
    """Open the action with the plan that was shown, approve it as the operator, run it here.
    Raises WinpodError (exit 3) when another remediation holds the target."""
    action = service.request(plan.remediation, plan.target, params, user, plan=plan)
    if action.requester != user or action.status != "pending":
        raise WinpodError(
            f"{plan.remediation} on {plan.target} is already {action.status} "
            f"(requested by {action.requester}); nothing ran"
        )
    service.approve_as_operator(action, user)
    reply = service.start(action.id, inline=True)
    if reply.kind == "queued":
        # A terminal cannot wait in a queue: withdraw it, so that no bot runs it later.
        service.store.transition(
            action.id,
            "approved",
            "expired",
            {"summary": _("withdrawn: another remediation was running on the target")},
        )
        raise WinpodError(
            _(
                "another remediation ({holder}) is running on {target}; try again when it has "
                "finished"
            ).format(holder=notifier.holder or _("unknown"), target=plan.target)
        )
    report = notifier.report
    if report is None:
        raise WinpodError(
            _("{remediation} on {target} did not run ({kind})").format(
                remediation=plan.remediation, target=plan.target, kind=reply.kind
            )
        )
    if report.failure is not None:
        raise report.failure  # audited and ended already; the exit code says what kind
    return report


def remediate(
    settings: Settings, remediation_id: str, target: str, dry_run: bool, yes: bool
) -> int:
    spec = default_registry().remediation_spec(remediation_id)  # fails before any connection
    user = operator()
    store = Store(settings.store.url, cluster=settings.cluster)
    try:
        store.migrate(settings.resolve_cluster(None))
        notifier = TerminalNotifier()
        service = service_for(settings, store, notifier)
        plan = service.plan(remediation_id, target, {})
        print(
            _("{remediation} on {target} ({risk} risk): {does}").format(
                remediation=spec.id,
                target=plan.target,
                risk=_(spec.risk),
                does=spec.does(plan.target),
            )
        )
        print(_("Impact: {impact}").format(impact=spec.impact(plan.target)))
        print(_("Plan: {what}").format(what=plan.what))
        print(
            _("Exactly what will run ({kind}):\n{preview}\n").format(
                kind=plan.kind, preview=plan.preview
            )
        )
        if dry_run or settings.dry_run:
            store.audit(user, "dry-run", {"remediation": spec.id, "what": plan.what}, target=target)
            print(_("Dry run: nothing ran."))
            return 0
        if not yes and not confirmed(
            _("Run {remediation} on {target}?").format(remediation=spec.id, target=plan.target)
        ):
            store.audit(
                user,
                "refused",
                {"remediation": spec.id, "reason": _("not confirmed")},
                target=target,
            )
            print(_("Nothing ran."))
            return 0
        report = run_confirmed(service, notifier, plan, {}, user)
        print(render_text.run_report_text(report))
        return 0 if report.ok else 1
    finally:
        store.close()


def confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInput(_("refusing to run without confirmation: no terminal to ask on; pass --yes"))
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def audit(settings: Settings, last: int) -> int:
    if last < 1:
        raise BadInput(_("--last must be at least 1"))
    store = Store(settings.store.url, cluster=settings.cluster)
    try:
        store.migrate(settings.resolve_cluster(None))
        print(render_text.audit_text(store.audit_log(last)))
    finally:
        store.close()
    return 0
