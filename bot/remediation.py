"""The one path every remediation takes, from Slack, the CLI and the sweep alike:
request (plan frozen) → approve / reject → lock → run the approved plan → verify → audit.

The store's compare-and-swap transitions make each step happen once across replicas. The lock
on the target is taken before an action becomes `running`, renewed while it runs and always
released; an approved action that finds its target locked, or the pool full, stays `approved`
and starts when the target frees (no re-approval). What people are told is the caller's
business: the service returns typed replies and tells a `Notifier` what happened, and the
renderers word it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.store import OpenActionExists, PendingAction, Store
from bot.work import WorkPool
from config.settings import Settings
from handlers import rdp, remediations
from handlers.context import Transports
from handlers.errors import OutcomeUnknown, WinpodError
from handlers.i18n import _
from handlers.registry import (
    Outcome,
    Plan,
    Registry,
    RemediationSpec,
    TargetRef,
    Verification,
)

log = logging.getLogger(__name__)
_ENDED_RANK = {"succeeded": 0, "failed": 0, "rejected": 1, "expired": 2}

ReplyKind = Literal[
    "unknown",  # no such action
    "not-approver",
    "approvers-unknown",  # the approver list could not be read: try again
    "already-approved",  # this person approved before; it needs someone else
    "needs-more",  # approval recorded; more approvers needed
    "started",  # approved and running now
    "queued",  # approved; waits for the target's lock or for room in the pool
    "rejected",  # this person rejected it
    "ended",  # it had already ended (ran, failed, rejected, expired) or is running
    "changed",  # the target changed since approval: refused, a fresh request is offered
]


@dataclass(frozen=True)
class Reply:
    """What the service says to the person who acted; `action` as it stands afterwards."""

    kind: ReplyKind
    action: PendingAction | None = None
    detail: str = ""


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the button (offer) and check, and what was diagnosed."""

    offer_id: str | None = None
    check_id: str | None = None
    diagnosed: TargetRef | None = None


@dataclass(frozen=True)
class MessageRef:
    """The Slack message an action is bound to (the one it was opened from), and the thread
    its story goes to (the message's own, or the one it is a reply in)."""

    channel: str
    ts: str
    thread_ts: str


@dataclass(frozen=True)
class RunReport:
    """The end of one run, for the notifier and the CLI."""

    action: PendingAction
    ok: bool
    summary: str
    output: str = ""
    verification: Verification | None = None
    dry_run: bool = False
    error: str = ""
    failure: WinpodError | None = None  # what stopped the run, for a CLI's exit code
    unknown: bool = False  # it started on the target and its result could not be read


class Notifier(Protocol):
    """Told of every state change; the Slack one posts in the action's thread and edits its
    message, the CLI one prints."""

    def requested(self, action: PendingAction, plan: Plan, spec: RemediationSpec) -> None: ...
    def approved(self, action: PendingAction, by: str) -> None: ...
    def rejected(self, action: PendingAction, by: str) -> None: ...
    def queued(self, action: PendingAction, holder: str | None, busy: bool) -> None: ...
    def started(self, action: PendingAction) -> None: ...
    def finished(self, report: RunReport) -> None: ...
    def changed(
        self, action: PendingAction, changes: list[str], fresh_offer: str | None
    ) -> None: ...


class ApproverCheck(Protocol):
    """May this user approve? Raises WinpodError when that cannot be told (Slack down)."""

    def __call__(self, user: str) -> bool: ...


def lock_name(action: PendingAction, spec: RemediationSpec) -> str:
    """One remediation at a time per target and lock scope (node fixes share `target`)."""
    return f"{spec.lock_scope}:{action.target_kind}:{action.target}"


def _holds(holder: str | None, action: PendingAction) -> bool:
    return holder is not None and holder.split("/", 1)[0] == action.id


class RemediationService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        transports: Transports,
        registry: Registry,
        pool: WorkPool | None,
        notifier: Notifier,
        may_approve: ApproverCheck,
    ) -> None:
        self.store = store
        self.settings = settings
        self.transports = transports
        self.registry = registry
        self.pool = pool
        self.notifier = notifier
        self.may_approve = may_approve
        self.on_result: Callable[[str, str], None] = lambda remediation, result: None

    # --- policy -----------------------------------------------------------------------
    def needed(self, action: PendingAction) -> int:
        spec = self.registry.remediation_spec(action.remediation)
        if not spec.needs_approval:
            return 0
        return 2 if action.risk in self.settings.approvals.two_person else 1

    def _lock(self, action: PendingAction) -> str:
        return lock_name(action, self.registry.remediation_spec(action.remediation))

    def _mine(self, action_id: str) -> PendingAction | None:
        """The action if it acts in this service's cluster: one cluster's service never
        decides on or runs another's (the store's locks and transports are this cluster's)."""
        action = self.store.get_action(action_id)
        return action if action is not None and action.cluster == self.store.cluster else None

    # --- request ----------------------------------------------------------------------
    def plan(self, remediation_id: str, target: str, params: Mapping[str, str]) -> Plan:
        """Plan without opening anything (dry-run, and what the CLI shows before asking)."""
        return remediations.plan(
            self.transports, self.settings, remediation_id, target, params, self.registry
        )

    def request(
        self,
        remediation_id: str,
        target: str,
        params: Mapping[str, str],
        requester: str,
        origin: Origin = Origin(),
        message: MessageRef | None = None,
        plan: Plan | None = None,
    ) -> PendingAction:
        """Open an action with its plan frozen; the open action on the same remediation and
        target is returned instead when there is one. Raises WinpodError when the remediation
        cannot be planned (the reason is for the requester)."""
        spec = self.registry.remediation_spec(remediation_id)
        the_plan = plan or self.plan(remediation_id, target, params)
        self.store.expire_due(datetime.now(UTC))
        try:
            action = self.store.create_action(
                spec.id,
                the_plan.target,
                dict(params),
                spec.risk,
                requester,
                expires_at=datetime.now(UTC) + self.settings.approvals.expire_after,
                channel=message.channel if message else None,
                message_ts=message.ts if message else None,
                thread_ts=message.thread_ts if message else None,
                target_kind=spec.target_kind.value,
                plan=the_plan.to_json(),
                offer_id=origin.offer_id,
                check_id=origin.check_id,
                diagnosed=origin.diagnosed.to_json() if origin.diagnosed else None,
            )
        except OpenActionExists as exc:
            return exc.action
        self.store.audit(
            requester,
            "request",
            {"remediation": spec.id, "what": the_plan.what, "preview": the_plan.preview[:4000]},
            action_id=action.id,
            target=action.target,
        )
        self.notifier.requested(action, the_plan, spec)
        return action

    # --- decisions --------------------------------------------------------------------
    def _for_approver(self, action_id: str, user: str) -> PendingAction | Reply:
        """The action, when `user` may decide on it; else the reply that says why not."""
        action = self._mine(action_id)
        if action is None:
            return Reply("unknown")
        try:
            allowed = self.may_approve(user)
        except WinpodError as exc:
            return Reply("approvers-unknown", action, str(exc))
        if not allowed:
            self.store.audit(
                user,
                "refused",
                {"reason": _("not an approver"), "remediation": action.remediation},
                action_id=action.id,
                target=action.target,
            )
            return Reply("not-approver", action)
        return action

    def approve(self, action_id: str, user: str) -> Reply:
        """Record `user`'s approval under the policy; start the action once it has enough."""
        store = self.store
        found = self._for_approver(action_id, user)
        if isinstance(found, Reply):
            return found
        store.expire_due(datetime.now(UTC))
        action = store.get_action(action_id) or found
        if action.status == "approved":
            return self.start(action.id)  # already approved: this click only nudges it
        if action.status != "pending":
            return Reply("ended", action)
        if action.expires_at <= datetime.now(UTC):
            store.transition(action.id, "pending", "expired")
            return Reply("ended", store.get_action(action.id) or action)
        spent = self.spent_sibling(action)
        if spent is not None:
            # Clicks raced: this action was opened from a button whose action ended meanwhile.
            # Two actions on one target are never open together, so that one ended before this
            # one was created, and every approval of this one sees it here: it never runs.
            store.transition(
                action.id,
                "pending",
                "expired",
                {"summary": _("withdrawn: its button had already carried an action")},
            )
            return Reply("ended", spent)
        if user in action.approvals:
            store.audit(
                user,
                "refused",
                {"reason": "already approved"},
                action_id=action.id,
                target=action.target,
            )
            return Reply("already-approved", action)
        action = store.add_approval(action.id, user)
        store.audit(
            user,
            "approval",
            {"approvals": list(action.approvals)},
            action_id=action.id,
            target=action.target,
        )
        if len(set(action.approvals)) < self.needed(action):
            self.notifier.approved(action, user)
            return Reply("needs-more", action)
        if not store.transition(action.id, "pending", "approved"):
            # Rejected, expired, or approved by a concurrent click that starts it.
            return Reply("ended", store.get_action(action.id) or action)
        return self.start(action.id)  # "running, approved by …" or "queued" says the rest

    def spent_sibling(self, action: PendingAction) -> PendingAction | None:
        """An ended action from the button `action` came from (see `spent_from`)."""
        if action.offer_id is None:
            return None
        return self.spent_from(action.offer_id, action.remediation, action.target, action.id)

    def spent_from(
        self, offer_id: str, remediation: str, target: str, other_than: str | None = None
    ) -> PendingAction | None:
        """Another action from the same button (offer) that has ended: a button carries one
        action, so a stale message (ran, rejected, expired) never silently opens another.
        One that ran or was rejected is named first, since withdrawn duplicates end expired."""
        ended = [
            a
            for a in self.store.list_actions(remediation=remediation, target=target, limit=100)
            if a.offer_id == offer_id and not a.is_open and a.id != other_than
        ]
        return min(ended, key=lambda a: _ENDED_RANK.get(a.status, 3), default=None)

    def approve_as_operator(self, action: PendingAction, user: str) -> PendingAction:
        """The CLI (someone with the cluster's credentials at a terminal, who confirmed) and
        remediations that need no approval: approved in one step, audited as such."""
        store = self.store
        approved = store.add_approval(action.id, user)
        store.audit(
            user,
            "approval",
            {"approvals": list(approved.approvals), "confirmed": "operator"},
            action_id=action.id,
            target=action.target,
        )
        store.transition(action.id, "pending", "approved")
        return store.get_action(action.id) or approved

    def reject(self, action_id: str, user: str) -> Reply:
        store = self.store
        found = self._for_approver(action_id, user)
        if isinstance(found, Reply):
            return found
        action = found
        # Only before it runs: a running action's result must never be lost to a late Reject.
        if not store.transition(action.id, ("pending", "approved"), "rejected", rejected_by=user):
            return Reply("ended", store.get_action(action.id) or action)
        store.audit(
            user,
            "rejection",
            {"remediation": action.remediation},
            action_id=action.id,
            target=action.target,
        )
        done = store.get_action(action.id) or action
        self.notifier.rejected(done, user)
        return Reply("rejected", done)

    # --- running ----------------------------------------------------------------------
    def start(self, action_id: str, inline: bool = False) -> Reply:
        """Start an approved action: lock first, then `running`, then the work (in the pool,
        or here when `inline`). A held lock or a full pool leave it `approved`, queued."""
        store = self.store
        action = self._mine(action_id)
        if action is None:
            return Reply("unknown")
        if action.status != "approved":
            return Reply("ended", action)
        holder = f"{action.id}/{uuid.uuid4().hex[:8]}"
        lock = self._lock(action)
        if not store.acquire_lock(lock, holder, self.settings.approvals.lock_ttl):
            current = store.lock_holder(lock)
            if _holds(current, action):  # another click or replica is starting this very one
                return Reply("ended", store.get_action(action.id) or action)
            self.notifier.queued(action, current, busy=False)
            return Reply("queued", action, current or "")
        if not store.transition(action.id, "approved", "running"):
            store.release_lock(lock, holder)
            return Reply("ended", store.get_action(action.id) or action)
        running = store.get_action(action.id) or action
        if inline or self.pool is None:
            self._execute(running, holder)
            return Reply("started", store.get_action(action.id) or running)
        if not self.pool.submit(lambda: self._execute(running, holder)).accepted:
            # Back in the queue, lock freed: nothing ran, and the next chance starts it.
            store.transition(action.id, "running", "approved")
            store.release_lock(lock, holder)
            queued = store.get_action(action.id) or action
            self.notifier.queued(queued, None, busy=True)
            return Reply("queued", queued, "busy")
        return Reply("started", running)

    def start_queued(self, target_kind: str | None = None, target: str | None = None) -> None:
        """Start approved actions that wait (for one target, or all): after a run ends, and
        from housekeeping for those queued on another replica or behind a full pool."""
        for action in reversed(self.store.list_actions("approved", limit=200)):
            if target is not None and (action.target, action.target_kind) != (
                target,
                target_kind,
            ):
                continue
            try:
                self.start(action.id)
            except WinpodError as exc:
                log.error("could not start queued action %s: %s", action.id, exc)

    def _execute(self, action: PendingAction, holder: str) -> None:
        """Run the approved plan, verify, audit, end the action, then free the target (in
        that order: a running action never stands without its lock)."""
        lock = self._lock(action)
        stop_renewing = self._keep_lock(lock, holder)
        try:
            try:
                self.notifier.started(action)
                report = self._run(action)
            except Exception as exc:  # never leave an action running, whatever happened
                log.exception("remediation %s failed unexpectedly", action.id)
                report = RunReport(action, False, f"failed: {type(exc).__name__}", error=str(exc))
            self._end(report)
        finally:
            stop_renewing()
            self.store.release_lock(lock, holder)
        self.start_queued(action.target_kind, action.target)

    def _keep_lock(self, lock: str, holder: str) -> Callable[[], None]:
        """Renew the lock every third of its TTL until told to stop."""
        ttl = self.settings.approvals.lock_ttl
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(ttl.total_seconds() / 3):
                try:
                    self.store.acquire_lock(lock, holder, ttl)
                except WinpodError as exc:
                    log.error("could not renew lock %s: %s", lock, exc)

        threading.Thread(target=renew, name=f"lock-{lock}", daemon=True).start()
        return stop.set

    def _run(self, action: PendingAction) -> RunReport:
        store, settings = self.store, self.settings
        if action.plan is None:
            return RunReport(
                action, False, _("refused: it was requested by an older winpod without a plan")
            )
        approved = Plan.from_json(action.plan)
        try:
            fresh = self.plan(action.remediation, action.target, _text(action.params))
        except WinpodError as exc:
            return RunReport(
                action,
                False,
                _("refused: the target cannot be planned now: {error}").format(error=exc),
            )
        changes = approved.differences(fresh)
        if changes:
            return self._refuse_changed(action, changes)
        if settings.dry_run:
            store.audit(
                "winpod",
                "dry-run",
                {"summary": _("dry run: nothing ran"), "preview": approved.preview[:4000]},
                action_id=action.id,
                target=action.target,
            )
            return RunReport(
                action, True, _("dry run: nothing ran"), approved.preview, dry_run=True
            )
        try:
            outcome = remediations.execute(self.transports, settings, approved, self.registry)
        except OutcomeUnknown as exc:
            # Neither success nor failure: what is known is said, and nothing claims more.
            return RunReport(action, False, str(exc), error=str(exc), failure=exc, unknown=True)
        except WinpodError as exc:
            return RunReport(action, False, f"failed: {exc}", error=str(exc), failure=exc)
        store.audit(
            "winpod",
            "execution",
            {"ok": outcome.ok, "summary": outcome.summary, "output": outcome.output[:4000]},
            action_id=action.id,
            target=action.target,
        )
        diagnosed = TargetRef.from_json(action.diagnosed) if action.diagnosed else None
        try:
            verification = remediations.verify(
                self.transports, settings, approved, diagnosed, self.registry
            )
        except WinpodError as exc:
            verification = Verification(None, _("could not verify: {error}").format(error=exc))
        self._record_rdp(action, approved, outcome)
        return RunReport(
            action,
            outcome.ok and verification.fixed is not False,
            outcome.summary,
            outcome.output,
            verification,
        )

    def _refuse_changed(self, action: PendingAction, changes: list[str]) -> RunReport:
        """The target is not what the approvers saw: nothing runs; a fresh button is offered."""
        fresh_offer = None
        if action.offer_id is not None:
            offer = self.store.get_offer(action.offer_id)
            if offer is not None:
                fresh_offer = self.store.save_offer(
                    offer.remediation,
                    offer.target,
                    offer.params,
                    offer.check,
                    offer.risk,
                    offer.diagnosed,
                )
        self.notifier.changed(action, changes, fresh_offer)
        return RunReport(
            action,
            False,
            _(
                "refused: the target changed since it was approved ({changes}); nothing ran — "
                "request it again"
            ).format(changes=", ".join(changes)),
        )

    def _record_rdp(self, action: PendingAction, plan: Plan, outcome: Outcome) -> None:
        """What winpod must remember of an RDP open or close: the session, for its teardown at
        expiry; and an audit line under the requester's name (a failed open created and
        removed a LoadBalancer: that is audited too)."""
        if action.remediation == "rdp-open":
            session = None
            if outcome.ok:
                namespace = self.settings.kubernetes.namespace
                session = next(
                    (
                        s
                        for s in rdp.sessions(self.transports.cluster, namespace)
                        if s.node == action.target
                    ),
                    None,
                )
            detail: dict[str, object] = {"ok": outcome.ok, "summary": outcome.summary}
            if session is not None:
                self.store.upsert_rdp(
                    action.target,
                    action.requester,
                    session.expires_at,
                    list(plan.data.get("ranges", [])),
                    channel=action.channel,
                    thread_ts=action.thread_ts,
                )
                detail = {
                    "ok": True,
                    "summary": f"open until {session.expires_at:%H:%M} UTC",
                    "address": session.address,
                }
            self.store.audit(
                action.requester, "rdp-open", detail, action_id=action.id, target=action.target
            )
        elif action.remediation == "rdp-close" and outcome.ok:
            self.store.delete_rdp(action.target)
            self.store.audit(
                action.requester,
                "rdp-close",
                {"summary": outcome.summary},
                action_id=action.id,
                target=action.target,
            )

    def _end(self, report: RunReport) -> None:
        action = report.action
        verification = report.verification
        fixed = (
            _("not verified")
            if verification is None or verification.fixed is None
            else (_("fixed") if verification.fixed else _("still failing"))
        )
        summary = report.summary.splitlines()[0] if report.summary else ""
        result = {
            "summary": summary if report.dry_run or verification is None else f"{summary}; {fixed}",
            "ok": report.ok,
        }
        if verification is not None:
            result["verification"] = verification.summary
        if report.dry_run:
            result["dry_run"] = True
        if report.error:
            result["error"] = report.error
        if report.unknown:
            result["outcome"] = "unknown"
        self.store.audit(
            "winpod",
            "result",
            {
                **result,
                **({"error": report.error} if report.error else {}),
                "evidence": list(verification.evidence) if verification else [],
            },
            action_id=action.id,
            target=action.target,
        )
        self.store.transition(action.id, "running", "succeeded" if report.ok else "failed", result)
        outcome = "dry-run" if report.dry_run else ("succeeded" if report.ok else "failed")
        if report.unknown:
            outcome = "unknown"
        self.on_result(action.remediation, outcome)
        final = self.store.get_action(action.id) or action
        self.notifier.finished(
            RunReport(
                final,
                report.ok,
                report.summary,
                report.output,
                verification,
                report.dry_run,
                report.error,
                report.failure,
                report.unknown,
            )
        )

    # --- restarts ---------------------------------------------------------------------
    def fail_orphaned(self) -> list[PendingAction]:
        """An action still `running` whose lock is gone was cut off by a crash or restart. It
        ends as failed with "outcome unknown"; it is never re-run by itself."""
        store = self.store
        orphaned = []
        for action in store.list_actions("running", limit=500):
            if _holds(store.lock_holder(self._lock(action)), action):
                continue  # its runner (perhaps another replica) still holds the lock
            result = {
                "summary": _(
                    "outcome unknown: winpod stopped while it ran; check the target and "
                    "diagnose again"
                ),
                "ok": False,
            }
            if store.transition(action.id, "running", "failed", result):
                store.audit("winpod", "result", result, action_id=action.id, target=action.target)
                orphaned.append(action)
        return orphaned


def _text(params: Mapping[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}
