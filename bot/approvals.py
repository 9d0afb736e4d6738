"""The approval flow: a button click opens or advances a pending action; policy decides; the
winner of one atomic store update runs it exactly once; everything is audited."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import render_actions
from bot.render_actions import Block, code, people
from bot.services import BotServices
from bot.store import OpenActionExists, PendingAction
from config.settings import format_duration
from handlers import rdp, remediations
from handlers.errors import WinpodError

log = logging.getLogger(__name__)
LOCK_TTL = timedelta(minutes=15)  # longer than any remediation; frees itself if winpod dies
GROUP_CACHE_S = 300.0
_ENDED_RANK = {"succeeded": 0, "failed": 0, "rejected": 1, "expired": 2}


@dataclass(frozen=True)
class Click:
    """One button press, as the flow needs it (from a Slack interaction payload)."""

    user: str
    channel: str
    message_ts: str
    blocks: list[Block]


class Approvers:
    """Who may approve: user ids, and members of user groups (resolved, cached briefly)."""

    def __init__(self, configured: list[str], client: WebClient) -> None:
        self._configured = configured
        self._client = client
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        if not self._configured:
            return "none configured (approvals.approvers)"
        return ", ".join(
            f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in self._configured
        )

    def allows(self, user: str) -> bool:
        if user in self._configured:
            return True
        return any(user in self._members(g) for g in self._configured if g.startswith("S"))

    def _members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group)
            if cached and time.monotonic() - cached[0] < GROUP_CACHE_S:
                return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=group)
            members = frozenset(str(u) for u in response.get("users") or [])
        except SlackApiError as exc:
            log.error("cannot resolve user group %s: %s", group, exc.response.get("error"))
            members = frozenset()
        with self._lock:
            self._groups[group] = (time.monotonic(), members)
        return members


class ApprovalFlow:
    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.approvers = Approvers(list(services.settings.approvals.approvers), client)

    # --- policy -----------------------------------------------------------------------
    def needed(self, risk: str) -> int:
        return 2 if risk in self.services.settings.approvals.two_person else 1

    # --- clicks -----------------------------------------------------------------------
    def remediation_clicked(self, click: Click, offer_id: str) -> None:
        store = self.services.store
        offer = store.get_offer(offer_id)
        if offer is None:
            self._tell(click, ":warning: This button no longer works; run the diagnosis again.")
            return
        store.audit(
            click.user,
            "click",
            {"remediation": offer.remediation, "offer": offer_id},
            target=offer.target,
        )
        if not self.approvers.allows(click.user):
            store.audit(
                click.user,
                "refused",
                {"reason": "not an approver", "remediation": offer.remediation},
                target=offer.target,
            )
            self._tell(
                click,
                f":no_entry: Only approvers can approve *{offer.remediation}*. "
                f"Approvers: {self.approvers.describe()}.",
            )
            return
        store.expire_due(datetime.now(UTC))
        spent = self._ended_action(offer_id, offer.remediation, offer.target)
        if spent is not None:
            # A button carries one action: a stale message (expired, rejected, finished) must
            # not silently open another; a fresh diagnosis offers a fresh button.
            store.audit(
                click.user,
                "refused",
                {"reason": f"already {spent.status}", "remediation": offer.remediation},
                action_id=spent.id,
                target=offer.target,
            )
            self._tell(click, self._why_not(spent))
            if spent.status == "expired":  # nothing else shows the expiry on the message
                self._edit(click.blocks, offer_id, spent)
            return
        action = store.find_open_action(offer.remediation, offer.target)
        if action is None:
            action = self._open(
                click,
                offer_id,
                offer.remediation,
                offer.target,
                {**offer.params, "check": offer.check, "offer": offer_id},
                offer.risk,
            )
            if action is None:
                return
        self._approve(click, offer_id, action)

    def _ended_action(
        self, offer_id: str, remediation: str, target: str, other_than: str | None = None
    ) -> PendingAction | None:
        """An action opened from this button (offer) that has ended, if any; one that ran or
        was rejected first, since withdrawn duplicates end as expired."""
        ended = [
            a
            for a in self.services.store.list_actions(
                remediation=remediation, target=target, limit=100
            )
            if a.params.get("offer") == offer_id and not a.is_open and a.id != other_than
        ]
        return min(ended, key=lambda a: _ENDED_RANK.get(a.status, 3), default=None)

    def approve_clicked(self, click: Click, action_id: str) -> None:
        action = self.services.store.get_action(action_id)
        if action is None:
            self._tell(click, ":warning: Unknown action.")
            return
        if not self.approvers.allows(click.user):
            self._tell(
                click,
                f":no_entry: Only approvers can approve. Approvers: {self.approvers.describe()}.",
            )
            return
        self._approve(click, str(action.params.get("offer", "")), action)

    def reject_clicked(self, click: Click, action_id: str) -> None:
        store = self.services.store
        action = store.get_action(action_id)
        if action is None:
            self._tell(click, ":warning: Unknown action.")
            return
        if not self.approvers.allows(click.user):
            self._tell(click, ":no_entry: Only approvers can reject.")
            return
        if not store.transition(
            action.id, ("pending", "approved"), "rejected", rejected_by=click.user
        ):
            self._tell(click, self._why_not(store.get_action(action.id) or action))
            return
        store.audit(
            click.user,
            "rejection",
            {"remediation": action.remediation},
            action_id=action.id,
            target=action.target,
        )
        done = store.get_action(action.id) or action
        self._post_thread(
            done,
            f":no_entry_sign: <@{click.user}> rejected *{done.remediation}* "
            f"on `{done.target}`; nothing ran.",
        )
        self._edit(click.blocks, str(done.params.get("offer", "")), done)

    # --- steps ------------------------------------------------------------------------
    def _open(
        self,
        click: Click,
        offer_id: str,
        remediation: str,
        target: str,
        params: dict[str, Any],
        risk: str,
    ) -> PendingAction | None:
        store, settings = self.services.store, self.services.settings
        try:
            plan = remediations.plan(
                self.services.transports, settings, remediation, target, _text_params(params)
            )
        except WinpodError as exc:
            store.audit(
                click.user,
                "refused",
                {"reason": str(exc), "remediation": remediation},
                target=target,
            )
            self._tell(click, f":no_entry: *{remediation}* on `{target}` cannot run: {exc}")
            return None
        # An RDP request was typed by someone; for a remediation button the clicker asks.
        requester = str(params.get("requester") or click.user)
        try:
            action = store.create_action(
                remediation,
                target,
                {**params, "what": plan.what},
                risk,
                requester,
                expires_at=datetime.now(UTC) + settings.approvals.expire_after,
                channel=click.channel,
                message_ts=click.message_ts,
                thread_ts=click.message_ts,
            )
        except OpenActionExists as exc:
            return exc.action
        store.audit(
            click.user,
            "request",
            {"remediation": remediation, "what": plan.what, "preview": plan.preview[:4000]},
            action_id=action.id,
            target=target,
        )
        needed = self.needed(risk)
        spec = remediations.get_spec(remediation)
        self._post_thread(
            action,
            (
                f":memo: <@{requester}> asked for *{remediation}* on `{target}` ({risk} risk): "
                f"{spec.does(target)}.\nIt needs {needed} approver(s); it expires in "
                f"{format_duration(settings.approvals.expire_after)}.\n"
                f"Exactly what will run:\n{code(plan.preview)}"
            ),
        )
        return action

    def _approve(self, click: Click, offer_id: str, action: PendingAction) -> None:
        store = self.services.store
        if action.status not in ("pending", "approved"):
            self._tell(click, self._why_not(action))
            return
        if action.expires_at <= datetime.now(UTC):
            store.expire_due(datetime.now(UTC))
            self._tell(click, self._why_not(store.get_action(action.id) or action))
            return
        spent = self._ended_action(
            str(action.params.get("offer", "")), action.remediation, action.target, action.id
        )
        if spent is not None:
            # Clicks raced: one opened this action from a button whose action ended meanwhile.
            # Two actions on one target are never open together, so that one ended before this
            # one was created and every approval of this one sees it here: it never runs.
            store.transition(
                action.id,
                ("pending", "approved"),
                "expired",
                {"summary": "withdrawn: its button had already carried an action"},
            )
            self._tell(click, self._why_not(spent))
            return
        needed = self.needed(action.risk)
        if click.user in action.approvals:
            store.audit(
                click.user,
                "refused",
                {"reason": "already approved"},
                action_id=action.id,
                target=action.target,
            )
            self._tell(
                click,
                f":raised_hand: You already approved *{action.remediation}*; "
                + ("it needs a second, different approver." if needed > 1 else "it is on its way."),
            )
            return
        action = store.add_approval(action.id, click.user)
        store.audit(
            click.user,
            "approval",
            {"approvals": list(action.approvals)},
            action_id=action.id,
            target=action.target,
        )
        if len(set(action.approvals)) < needed:
            self._post_thread(
                action,
                f":ballot_box_with_check: <@{click.user}> approved "
                f"({len(action.approvals)}/{needed}); it needs a second approver.",
            )
            self._tell(click, f"Approved. *{action.remediation}* needs a second approver.")
            self._edit(click.blocks, offer_id, action)
            return
        store.transition(action.id, "pending", "approved")
        if not store.transition(action.id, "approved", "running"):
            # Another click (or replica) won and runs it.
            self._tell(click, self._why_not(store.get_action(action.id) or action))
            return
        if not store.acquire_lock(_lock_name(action.target), action.id, LOCK_TTL):
            store.transition(action.id, "running", "approved")
            holder = store.lock_holder(_lock_name(action.target))
            self._tell(
                click,
                f":hourglass: Another remediation ({holder}) is running on "
                f"`{action.target}`; approve again when it has finished.",
            )
            return
        running = store.get_action(action.id) or action
        self._post_thread(
            running,
            f":gear: Approved by {people(running.approvals)}; running "
            f"*{running.remediation}* on `{running.target}`…",
        )
        self._edit(click.blocks, offer_id, running)
        self.services.pool.submit(lambda: self.execute(running, offer_id, click.blocks))

    def execute(self, action: PendingAction, offer_id: str, blocks: list[Block]) -> None:
        """Run, verify, record and announce one action that this replica won."""
        store, settings = self.services.store, self.services.settings
        transports = self.services.transports
        metrics = self.services.metrics
        try:
            plan = remediations.plan(
                transports, settings, action.remediation, action.target, _text_params(action.params)
            )
            if settings.dry_run:
                result = {
                    "summary": "dry run: nothing ran",
                    "dry_run": True,
                    "preview": plan.preview[:4000],
                }
                store.audit("winpod", "dry-run", result, action_id=action.id, target=action.target)
                store.transition(action.id, "running", "succeeded", result)
                self._post_thread(
                    action,
                    ":test_tube: *Dry run* (dry_run: true): this is "
                    f"exactly what would run, and nothing did:\n{code(plan.preview)}",
                )
                metrics.remediations.labels(action.remediation, "dry-run").inc()
                return
            outcome = remediations.execute(transports, settings, plan)
            store.audit(
                "winpod",
                "execution",
                {"ok": outcome.ok, "summary": outcome.summary, "output": outcome.output[:4000]},
                action_id=action.id,
                target=action.target,
            )
            verification = remediations.verify(
                transports, settings, plan, action.params.get("diagnosed"), self.services.checks
            )
            fixed = {True: "fixed", False: "still failing", None: "not verified"}[
                verification.fixed
            ]
            ok = outcome.ok and verification.fixed is not False
            result = {
                "summary": f"{outcome.summary.splitlines()[0]}; {fixed}",
                "ok": outcome.ok,
                "verification": verification.summary,
            }
            store.audit(
                "winpod",
                "result",
                {**result, "evidence": list(verification.evidence)},
                action_id=action.id,
                target=action.target,
            )
            store.transition(action.id, "running", "succeeded" if ok else "failed", result)
            if ok and action.remediation == "rdp-open":
                record_rdp(self.services, action, plan)
            metrics.remediations.labels(action.remediation, "succeeded" if ok else "failed").inc()
            evidence = "\n".join(f"• {line}" for line in verification.evidence[:5])
            self._post_thread(
                action,
                (
                    f"{':large_green_circle:' if ok else ':red_circle:'} *{action.remediation}* on "
                    f"`{action.target}`: {outcome.summary}\n"
                    + (f"{code(outcome.output)}\n" if outcome.output else "")
                    + f"*Verification — {fixed}:* {verification.summary}"
                    + (f"\n{evidence}" if evidence else "")
                ),
            )
        except WinpodError as exc:
            store.audit(
                "winpod",
                "result",
                {"ok": False, "error": str(exc)},
                action_id=action.id,
                target=action.target,
            )
            store.transition(action.id, "running", "failed", {"summary": str(exc), "ok": False})
            metrics.remediations.labels(action.remediation, "failed").inc()
            self._post_thread(
                action, f":red_circle: *{action.remediation}* on `{action.target}` failed: {exc}"
            )
        finally:
            store.release_lock(_lock_name(action.target), action.id)
            final = store.get_action(action.id) or action
            self._edit(blocks, offer_id, final)

    # --- Slack I/O --------------------------------------------------------------------
    def _why_not(self, action: PendingAction) -> str:
        return {
            "running": f":gear: *{action.remediation}* is already running.",
            "succeeded": f"*{action.remediation}* already ran (succeeded); nothing to do.",
            "failed": f"*{action.remediation}* already ran and failed; diagnose again to retry.",
            "rejected": f"*{action.remediation}* was rejected by <@{action.rejected_by}>.",
            "expired": f":alarm_clock: *{action.remediation}* expired before it was approved; "
            "diagnose again to ask anew.",
        }.get(action.status, f"*{action.remediation}* is {action.status}.")

    def _tell(self, click: Click, text: str) -> None:
        self._safely(
            lambda: self.client.chat_postEphemeral(
                channel=click.channel, user=click.user, text=text
            )
        )

    def _post_thread(self, action: PendingAction, text: str) -> None:
        if action.channel and action.thread_ts:
            channel, thread = action.channel, action.thread_ts
            self._safely(
                lambda: self.client.chat_postMessage(channel=channel, thread_ts=thread, text=text)
            )

    def _edit(self, blocks: list[Block], offer_id: str, action: PendingAction) -> None:
        if not (action.channel and action.message_ts and blocks):
            return
        edited = render_actions.with_action_status(
            blocks, offer_id, action, self.needed(action.risk)
        )
        text = render_actions.status_line(action, self.needed(action.risk))
        channel, ts = action.channel, action.message_ts
        self._safely(
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=edited)
        )

    def _safely(self, call: Callable[[], object]) -> None:
        try:
            call()
        except SlackApiError as exc:
            self.services.metrics.errors.labels("slack", str(exc.response.get("error"))).inc()
            log.error("Slack call failed: %s", exc.response.get("error"))


def _text_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}


def record_rdp(services: BotServices, action: PendingAction, plan: remediations.Plan) -> None:
    """Remember an open RDP session (who, until when, where to announce its end) so the
    leader's persisted teardown job closes it on time, restarts included."""
    session = next(
        (
            s
            for s in rdp.sessions(
                services.transports.cluster, services.settings.kubernetes.namespace
            )
            if s.node == action.target
        ),
        None,
    )
    if session is None:
        return
    services.store.upsert_rdp(
        action.target,
        action.requester,
        session.expires_at,
        list(plan.data.get("ranges", [])),
        channel=action.channel,
        thread_ts=action.thread_ts,
    )
    services.store.audit(
        action.requester,
        "rdp-open",
        {"summary": f"open until {session.expires_at:%H:%M} UTC", "address": session.address},
        action_id=action.id,
        target=action.target,
    )


def fail_orphaned_actions(services: BotServices) -> list[PendingAction]:
    """At start-up: an action still `running` whose lock is gone was cut off by a crash or
    restart. It ends as failed with a message; it is never re-run by itself."""
    store = services.store
    orphaned = []
    for action in store.list_actions("running", limit=500):
        if store.lock_holder(_lock_name(action.target)) == action.id:
            continue  # its runner (perhaps another replica) still holds the lock: leave it
        result = {
            "summary": "outcome unknown: winpod stopped while it ran; check the target "
            "and diagnose again",
            "ok": False,
        }
        if store.transition(action.id, "running", "failed", result):
            store.audit("winpod", "result", result, action_id=action.id, target=action.target)
            orphaned.append(action)
    return orphaned


def _lock_name(target: str) -> str:
    return f"target:{target}"
