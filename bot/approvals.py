"""Remediation buttons in Slack: clicks go to the remediation service; its replies go back to
the clicker, its state changes to the action's thread and to the message it is bound to.

An action is bound to the message it was opened from. A click on another message showing the
same remediation (a sweep alert and a diagnosis, say) advances the same action, and only that
other message's own status and buttons change: no message ever receives another's blocks.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import render_actions
from bot.remediation import MessageRef, Origin, RemediationService, Reply, RunReport
from bot.render_actions import Block
from bot.services import BotServices
from bot.slack_text import Mrkdwn, mention
from bot.store import PendingAction
from config.settings import ConfigError, format_duration
from handlers.errors import Unreachable, WinpodError
from handlers.i18n import _
from handlers.registry import Plan, RemediationSpec, TargetRef

log = logging.getLogger(__name__)
GROUP_CACHE_S = 300.0


@dataclass(frozen=True)
class Click:
    """One button press, as the flow needs it (from a Slack interaction payload). A press in
    the App Home has a `view_id` and no channel or message: its replies go to the user's DM."""

    user: str
    channel: str
    message_ts: str
    blocks: list[Block]
    thread_ts: str | None = None  # set when the clicked message is itself a thread reply
    view_id: str | None = None

    @property
    def message(self) -> MessageRef:
        return MessageRef(self.channel, self.message_ts, self.thread_ts or self.message_ts)


class Approvers:
    """Who may approve: user ids, and members of user groups (resolved, cached briefly). A
    group that cannot be resolved is not cached: the question is asked again next time."""

    def __init__(self, configured: list[str], client: WebClient) -> None:
        self._configured = configured
        self._client = client
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def describe(self) -> Mrkdwn:
        """The approvers as Slack shows them: configured ids only (validated), never text."""
        if not self._configured:
            return Mrkdwn("none configured (approvals.approvers)")
        return Mrkdwn(", ").join(_approver(a) for a in self._configured)

    def __call__(self, user: str) -> bool:
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
            error = exc.response.get("error")
            log.error("cannot resolve user group %s: %s", group, error)
            raise Unreachable(
                _("Slack did not list user group {group}: {error}").format(group=group, error=error)
            ) from exc
        except OSError as exc:
            log.error("cannot resolve user group %s: %s", group, type(exc).__name__)
            raise Unreachable(
                _("Slack did not answer for user group {group}").format(group=group)
            ) from exc
        with self._lock:
            self._groups[group] = (time.monotonic(), members)
        return members


def _approver(configured: str) -> Mrkdwn:
    if configured.startswith("S") and configured.isascii() and configured.isalnum():
        return Mrkdwn(f"<!subteam^{configured}>")
    return mention(configured)


class SlackNotifier:
    """The service's state changes in Slack: a post in the action's thread, and its bound
    message edited from what that message shows now (fetched, never another message's)."""

    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.service: RemediationService | None = None  # set once the service exists

    def _needed(self, action: PendingAction) -> int:
        assert self.service is not None
        return self.service.needed(action)

    def requested(self, action: PendingAction, plan: Plan, spec: RemediationSpec) -> None:
        """The request in its thread, what approvers judge first; then the full script as a
        file beside it (or, if Slack takes no file, whole in code blocks)."""
        expires = format_duration(self.services.settings.approvals.expire_after)
        cluster = (
            self.services.cluster
            if self.services.settings.many_clusters
            else self.services.transports.cluster.context
        )
        text, blocks = render_actions.request_message(
            action, plan, spec, self._needed(action), expires, cluster
        )
        self.post(action, text, blocks)
        if plan.kind != "instructions" and action.channel and action.thread_ts:
            self._attach_script(action.channel, action.thread_ts, plan)

    def _attach_script(self, channel: str, thread_ts: str, plan: Plan) -> None:
        filename, title = render_actions.script_file(plan)
        try:
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=plan.preview,
                filename=filename,
                title=title,
                initial_comment=render_actions.script_attached_text(plan),
            )
            return
        except SlackApiError as exc:
            self._count(exc)
        except (SlackClientError, OSError) as exc:  # the upload URL refused the bytes
            self.services.metrics.error("slack", "upload_failed")
            log.error("Slack file upload failed: %s", type(exc).__name__)
        for text in render_actions.script_inline_texts(plan):
            post = functools.partial(
                self.client.chat_postMessage, channel=channel, thread_ts=thread_ts, text=text
            )
            self._safely(post)

    def approved(self, action: PendingAction, by: str) -> None:
        self.post(action, render_actions.approved_text(action, by, self._needed(action)))
        self.edit_bound(action)

    def rejected(self, action: PendingAction, by: str) -> None:
        self.post(action, render_actions.rejected_text(action, by))
        self.edit_bound(action)

    def queued(self, action: PendingAction, holder: str | None, busy: bool) -> None:
        self.post(action, render_actions.queued_text(action, holder, busy))
        self.edit_bound(action)

    def started(self, action: PendingAction) -> None:
        self.post(action, render_actions.started_text(action))
        self.edit_bound(action)

    def finished(self, report: RunReport) -> None:
        self.post(report.action, render_actions.finished_text(report))
        self.edit_bound(report.action)

    def changed(self, action: PendingAction, changes: list[str], fresh_offer: str | None) -> None:
        self.post(action, render_actions.changed_text(action, changes, fresh_offer is not None))
        if fresh_offer is not None and action.channel and action.thread_ts:
            blocks = render_actions.fresh_request_blocks(action, fresh_offer)
            self._safely(
                lambda: self.client.chat_postMessage(
                    channel=str(action.channel),
                    thread_ts=action.thread_ts,
                    text=f"Request {action.remediation} again",
                    blocks=blocks,
                )
            )

    def expired(self, action: PendingAction) -> None:
        self.post(action, render_actions.expired_text(action))
        self.edit_bound(action)

    def cut_off(self, action: PendingAction) -> None:
        self.post(action, render_actions.cut_off_text(action))
        self.edit_bound(action)

    # --- Slack I/O ----------------------------------------------------------------------
    def post(self, action: PendingAction, text: Mrkdwn, blocks: list[Block] | None = None) -> None:
        if action.channel and action.thread_ts:
            channel, thread = action.channel, action.thread_ts
            self._safely(
                lambda: self.client.chat_postMessage(
                    channel=channel, thread_ts=thread, text=text, blocks=blocks
                )
            )

    def edit_bound(self, action: PendingAction) -> None:
        """Show the action's status on the message it is bound to."""
        if not (action.channel and action.message_ts and action.offer_id):
            return
        blocks = self._current_blocks(action.channel, action.message_ts, action.thread_ts)
        if blocks is not None:
            self.edit(action.channel, action.message_ts, blocks, action.offer_id, action)

    def edit(
        self,
        channel: str,
        ts: str,
        blocks: list[Block],
        offer_id: str,
        action: PendingAction,
    ) -> None:
        """`message` (whose blocks are `blocks`) with `action`'s status under its button."""
        needed = self._needed(action)
        edited = render_actions.with_action_status(blocks, offer_id, action, needed)
        text = render_actions.status_line(action, needed)
        self._safely(
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=edited)
        )

    def _current_blocks(self, channel: str, ts: str, thread_ts: str | None) -> list[Block] | None:
        """The message's blocks as Slack shows them now (a reply is read from its thread)."""
        try:
            if thread_ts and thread_ts != ts:
                response = self.client.conversations_replies(channel=channel, ts=thread_ts)
            else:
                response = self.client.conversations_history(
                    channel=channel, latest=ts, inclusive=True, limit=1
                )
        except SlackApiError as exc:
            self._count(exc)
            return None
        for message in response.get("messages") or []:
            if message.get("ts") == ts:
                return list(message.get("blocks") or [])
        return None

    def _safely(self, call: Callable[[], object]) -> None:
        try:
            call()
        except SlackApiError as exc:
            self._count(exc)

    def _count(self, exc: SlackApiError) -> None:
        self.services.metrics.error("slack", str(exc.response.get("error")))
        log.error("Slack call failed: %s", exc.response.get("error"))


def build_service(
    services: BotServices, client: WebClient
) -> tuple[RemediationService, SlackNotifier, Approvers]:
    """The remediation service as the Slack app and the leader's jobs use it."""
    notifier = SlackNotifier(services, client)
    approvers = Approvers(list(services.settings.approvals.approvers), client)
    service = RemediationService(
        services.store,
        services.settings,
        services.transports,
        services.checks,
        services.pool,
        notifier,
        approvers,
    )
    service.on_result = lambda remediation, outcome: services.metrics.remediations.labels(
        remediation, outcome
    ).inc()
    notifier.service = service
    return service, notifier, approvers


class ApprovalFlow:
    """The three buttons: a remediation button (request, and approve as the clicker), Approve
    and Reject."""

    def __init__(self, services: BotServices, client: WebClient) -> None:
        self.services = services
        self.client = client
        self.service, self.notifier, self.approvers = build_service(services, client)

    def sibling(self, services: BotServices) -> ApprovalFlow:
        """The flow of another cluster's services, on the same Slack client."""
        return ApprovalFlow(services, self.client)

    def _of(self, cluster: str) -> ApprovalFlow | None:
        """The flow of another cluster (a button acts only where its offer or action
        belongs); None when winpod no longer serves that cluster."""
        try:
            return self.services.in_cluster(cluster).approvals
        except ConfigError:
            return None

    def _elsewhere(
        self, click: Click, cluster: str, handle: Callable[[ApprovalFlow], None]
    ) -> bool:
        """True when the click is about another cluster's offer or action: handed to that
        cluster's flow, or answered "unknown" when winpod no longer serves it."""
        if cluster == self.services.cluster:
            return False
        flow = self._of(cluster)
        if flow is None:
            self._reply(click, Reply("unknown"))
        else:
            handle(flow)
        return True

    def remediation_clicked(self, click: Click, offer_id: str) -> None:
        offer = self.services.store.get_offer(offer_id)
        if offer is None:
            self._reply(click, Reply("unknown"))
            return
        if self._elsewhere(
            click, offer.cluster, lambda flow: flow.remediation_clicked(click, offer_id)
        ):
            return
        store, service = self.services.store, self.service
        store.audit(
            click.user,
            "click",
            {"remediation": offer.remediation, "offer": offer_id},
            target=offer.target,
        )
        spent = service.spent_from(offer_id, offer.remediation, offer.target)
        if spent is not None:
            # A button carries one action: a stale message (expired, rejected, finished) must
            # not silently open another; a fresh diagnosis offers a fresh button.
            self._reply(click, Reply("ended", spent))
            self._show_on_click(click, offer_id, spent)
            return
        try:
            allowed = service.may_approve(click.user)
        except Unreachable as exc:
            self._reply(click, Reply("approvers-unknown", None, str(exc)))
            return
        if not allowed:
            store.audit(
                click.user,
                "refused",
                {"reason": _("not an approver"), "remediation": offer.remediation},
                target=offer.target,
            )
            self._tell(
                click,
                render_actions.not_approver_text(offer.remediation, self.approvers.describe()),
            )
            return
        action = store.find_open_action(offer.remediation, offer.target)
        if action is None:
            requester = str(offer.params.get("requester") or click.user)
            origin = Origin(
                offer_id,
                offer.check,
                TargetRef.from_json(offer.diagnosed) if offer.diagnosed else None,
            )
            try:
                action = service.request(
                    offer.remediation,
                    offer.target,
                    {k: str(v) for k, v in offer.params.items()},
                    requester,
                    origin,
                    click.message,
                )
            except WinpodError as exc:
                store.audit(
                    click.user,
                    "refused",
                    {"reason": str(exc), "remediation": offer.remediation},
                    target=offer.target,
                )
                self._tell(
                    click, render_actions.cannot_run_text(offer.remediation, offer.target, str(exc))
                )
                return
        self._after(click, offer_id, action, service.approve(action.id, click.user))

    def approve_clicked(self, click: Click, action_id: str) -> None:
        action = self.services.store.get_action(action_id)
        if action is None:
            self._reply(click, Reply("unknown"))
            return
        if self._elsewhere(
            click, action.cluster, lambda flow: flow.approve_clicked(click, action_id)
        ):
            return
        self._after(
            click, action.offer_id or "", action, self.service.approve(action_id, click.user)
        )

    def reject_clicked(self, click: Click, action_id: str) -> None:
        action = self.services.store.get_action(action_id)
        if action is None:
            self._reply(click, Reply("unknown"))
            return
        if self._elsewhere(
            click, action.cluster, lambda flow: flow.reject_clicked(click, action_id)
        ):
            return
        self._after(
            click, action.offer_id or "", action, self.service.reject(action_id, click.user)
        )

    # --- replies ------------------------------------------------------------------------
    def _after(self, click: Click, offer_id: str, action: PendingAction, reply: Reply) -> None:
        self._reply(click, reply)
        now = reply.action or self.services.store.get_action(action.id) or action
        self._show_on_click(click, offer_id, now)

    def _show_on_click(self, click: Click, offer_id: str, action: PendingAction) -> None:
        """A click on a message other than the action's own: show the status there too, from
        that message's own blocks. The bound message is the notifier's to edit."""
        bound = (action.channel, action.message_ts) == (click.channel, click.message_ts)
        if bound and action.status not in ("expired",):
            return
        if offer_id and click.blocks:
            self.notifier.edit(click.channel, click.message_ts, click.blocks, offer_id, action)

    def _reply(self, click: Click, reply: Reply) -> None:
        needed = self.service.needed(reply.action) if reply.action else 1
        text = render_actions.reply_text(reply, self.approvers.describe(), needed)
        if text:
            self._tell(click, text)

    def _tell(self, click: Click, text: Mrkdwn) -> None:
        if click.view_id:  # no channel to whisper in: the app's DM with the user
            self.notifier._safely(
                lambda: self.client.chat_postMessage(channel=click.user, text=text)
            )
            return
        self.notifier._safely(
            lambda: self.client.chat_postEphemeral(
                channel=click.channel, user=click.user, text=text
            )
        )
