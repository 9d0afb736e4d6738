"""`/winpod …`: acknowledge at once, then run slow work on the bounded pool."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import home, render_slack, render_text
from bot.clusters import cluster_statuses
from bot.commands import Parsed, UsageError
from bot.services import BotServices
from bot.slack_text import Mrkdwn, code, code_block, escape, mention
from bot.sweeper import ProgressMessage, Sweeper, sweep_text
from config.settings import ConfigError, UnknownCluster
from handlers import engine, rdp, remediations
from handlers.errors import BadInput, WinpodError
from handlers.i18n import _
from handlers.model import Diagnosis, Target
from handlers.registry import TargetKind, TargetRef

log = logging.getLogger(__name__)
Handler = Callable[[BotServices, Ack, WebClient, dict[str, Any], Parsed], str]


def register(app: App, services: BotServices) -> None:
    app.command("/winpod")(winpod_command(services))


def winpod_command(services: BotServices) -> Callable[..., None]:
    def handle(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        started = time.monotonic()
        outcome, name = "refused", "unknown"
        try:
            allowed = services.settings.slack.allowed_channels
            if allowed and command.get("channel_id") not in allowed:
                ack(
                    text=_(
                        ":no_entry: winpod is not enabled in this channel; ask an admin to add "
                        "it to slack.allowed_channels."
                    )
                )
                return
            try:
                subcommand, args = services.commands.parse(str(command.get("text") or ""))
            except UsageError as exc:
                outcome = "usage-error"
                ack(text=render_slack.usage_error(exc.problem, exc.right_form))
                return
            name = subcommand.name
            try:
                chosen = services.in_cluster(args.get("cluster"))
            except UnknownCluster as exc:
                outcome = "usage-error"
                ack(text=render_slack.usage_error(str(exc), f"/winpod {subcommand.usage}"))
                return
            except ConfigError as exc:  # the cluster's own sections do not validate
                outcome = "usage-error"
                ack(text=render_slack.usage_error(str(exc), "/winpod clusters"))
                return
            outcome = HANDLERS[name](chosen, ack, client, command, args)
        finally:
            services.metrics.ack_seconds.observe(time.monotonic() - started)
            services.metrics.commands.labels(name, outcome).inc()

    return handle


def _help(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    rows = [(f"/winpod {s.usage}", s.description, s.example) for s in services.commands.all()]
    text, blocks = render_slack.help_message(rows)
    ack(text=text, blocks=blocks)
    return "ok"


def _explain(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    spec = services.checks.get(args["check"])
    if spec is None:
        known = ", ".join(s.id for s in services.checks.all())
        ack(
            text=render_slack.usage_error(
                f"unknown check {args['check']!r} (known: {known})", "/winpod explain CHECK_ID"
            )
        )
        return "usage-error"
    ack(text=code_block(render_text.explain_text(spec)))
    return "ok"


def _diagnose(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    request_id = uuid.uuid4().hex[:12]
    channel, user = str(command["channel_id"]), str(command["user_id"])
    kind = "Pod" if "pod" in args else "Node"
    reference = args.get("pod") or args["node"]
    text = f"{command.get('command')} {command.get('text')}"

    def job() -> None:
        # Audited here, not before the ack: a burst of commands would queue on the database.
        services.store.audit(user, "command", {"text": text, "channel": channel}, target=reference)
        run_diagnosis(services, client, channel, user, kind, reference, request_id)

    admission = services.pool.submit(job)
    services.metrics.queue_depth.set(services.pool.in_flight)
    log.info(
        "command accepted",
        extra={
            "request_id": request_id,
            "user": user,
            "target": reference,
            "queued": admission.queued_behind,
        },
    )
    if not admission.accepted:
        ack(text=_(":hourglass: winpod is busy with other diagnoses; try again in a minute."))
        return "busy"
    if admission.queued_behind:
        ack(text=render_slack.queued_note(admission.queued_behind))
        return "queued"
    ack()
    return "accepted"


def _clusters(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    channel, user = str(command["channel_id"]), str(command["user_id"])

    def job() -> None:
        statuses = cluster_statuses(
            services.settings, lambda name: services.in_cluster(name).transports
        )
        try:
            client.chat_postMessage(
                channel=channel, text=code_block(render_text.clusters_text(statuses))
            )
        except SlackApiError as exc:
            _log_slack_error(services, "posting the clusters", exc, None)  # i18n: log

    if not services.pool.submit(job).accepted:
        ack(text=_(":hourglass: winpod is busy; try again in a minute."))
        return "busy"
    services.store.audit(user, "command", {"text": "/winpod clusters", "channel": channel})
    ack()
    return "accepted"


def _audit(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    entries = services.store.audit_log(int(args["last"]))
    # audit entries hold what people typed and what nodes said: inside a block they cannot close
    ack(text=code_block(render_text.audit_text(entries)[-2900:]))
    return "ok"


def _sweep(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    channel, user = str(command["channel_id"]), str(command["user_id"])
    services.store.audit(user, "command", {"text": "/winpod sweep", "channel": channel})
    admission = services.pool.submit(lambda: run_sweep(services, client, channel, user))
    if not admission.accepted:
        ack(text=_(":hourglass: winpod is busy; try the sweep again in a minute."))
        return "busy"
    ack()
    return "accepted"


def run_sweep(services: BotServices, client: WebClient, channel: str, user: str) -> None:
    """On demand: one message edited as probes finish, then the summary (always, when asked)."""
    try:
        posted = client.chat_postMessage(
            channel=channel,
            text=render_slack.in_cluster(
                _(":mag: Sweeping the Windows nodes…"), services.named_cluster
            ),
        )
        ts = str(posted["ts"])
        report = Sweeper(services, client).run(
            commit=True, progress=ProgressMessage(client, channel, ts)
        )
        if report is None:
            client.chat_update(
                channel=channel,
                ts=ts,
                text=_(
                    ":hourglass: A sweep is already running; its alerts will "
                    "arrive in the alert channel."
                ),
            )
            return
        home.record_sweep(services.store, report)
        summary = render_slack.in_cluster(sweep_text(report), services.named_cluster)
        client.chat_update(channel=channel, ts=ts, text=escape(summary))
    except WinpodError as exc:
        _tell_user(
            services,
            client,
            channel,
            user,
            Mrkdwn(_(":x: the sweep stopped: {error}")).format(error=exc),
        )
    except SlackApiError as exc:
        _log_slack_error(services, "posting the sweep", exc, None)  # i18n: log


def _rdp(
    services: BotServices, ack: Ack, client: WebClient, command: dict[str, Any], args: Parsed
) -> str:
    channel, user = str(command["channel_id"]), str(command["user_id"])
    if args["action"] == "list":
        found = rdp.sessions(services.transports.cluster, services.settings.kubernetes.namespace)
        lines = [
            Mrkdwn(_("• {node} until {time} UTC from {ranges} — {connect}")).format(
                node=code(s.node),
                time=f"{s.expires_at:%H:%M}",
                ranges=", ".join(s.source_ranges),
                connect=s.connect,
            )
            for s in found
        ]
        ack(text=Mrkdwn("\n").join(lines) or _("No RDP session is open."))
        return "ok"
    services.store.audit(
        user,
        "command",
        {"text": f"/winpod {command.get('text')}", "channel": channel},
        target=args["node"],
    )
    job = (
        (lambda: request_rdp(services, client, channel, user, args))
        if (args["action"] == "open")
        else (lambda: close_rdp(services, client, channel, user, args["node"]))
    )
    admission = services.pool.submit(job)
    if not admission.accepted:
        ack(text=_(":hourglass: winpod is busy; try again in a minute."))
        return "busy"
    ack()
    return "accepted"


def request_rdp(
    services: BotServices, client: WebClient, channel: str, user: str, args: Parsed
) -> None:
    """Check the request at once (clear refusals), then post it for approval."""
    node = args["node"]
    params = {
        k: v
        for k, v in (("ttl", args.get("ttl")), ("from", args.get("from")), ("requester", user))
        if v
    }
    registry = services.checks
    try:
        plan = remediations.plan(
            services.transports, services.settings, "rdp-open", node, params, registry
        )
    except WinpodError as exc:
        refusal = Mrkdwn(_(":no_entry: RDP to {node} refused: {why}")).format(
            node=code(node), why=exc
        )
        _tell_user(services, client, channel, user, refusal)
        return
    offer = services.store.save_offer("rdp-open", plan.target, params, "rdp", "high")
    text, blocks = render_slack.rdp_request_message(
        user,
        plan.what,
        node,
        offer,
        registry.remediation_spec("rdp-open").impact(node),
        services.named_cluster,
    )
    try:
        client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        _log_slack_error(services, "posting the RDP request", exc, None)  # i18n: log


def close_rdp(services: BotServices, client: WebClient, channel: str, user: str, node: str) -> None:
    """Closing only removes access, so it needs no approval; it runs through the remediation
    service (audited, locked like any other) and is announced."""
    assert services.approvals is not None
    service = services.approvals.service
    session = services.store.get_rdp(node)
    try:
        action = service.request("rdp-close", node, {}, user)
        service.approve_as_operator(action, user)
        reply = service.start(action.id, inline=True)
    except WinpodError as exc:
        failure = Mrkdwn(_(":x: closing RDP to {node} failed: {why}")).format(
            node=code(node), why=exc
        )
        _tell_user(services, client, channel, user, failure)
        return
    result = (reply.action.result if reply.action else None) or {}
    if not result.get("ok"):
        why = result.get("error") or result.get("summary") or reply.kind
        failure = Mrkdwn(_(":x: closing RDP to {node} failed: {why}")).format(
            node=code(node), why=str(why)
        )
        _tell_user(services, client, channel, user, failure)
        return
    summary = str(result.get("summary"))
    try:
        client.chat_postMessage(
            channel=channel,
            text=Mrkdwn(_(":lock: {person}: {summary}")).format(
                person=mention(user), summary=summary
            ),
        )
        if session is not None and session.channel and session.thread_ts:
            client.chat_postMessage(
                channel=session.channel,
                thread_ts=session.thread_ts,
                text=Mrkdwn(_(":lock: {person} closed RDP to {node}.")).format(
                    person=mention(user), node=code(node)
                ),
            )
    except SlackApiError as exc:
        _log_slack_error(services, "announcing the RDP close", exc, None)  # i18n: log


HANDLERS: dict[str, Handler] = {
    "rdp": _rdp,
    "sweep": _sweep,
    "audit": _audit,
    "help": _help,
    "explain": _explain,
    "clusters": _clusters,
    "diagnose": _diagnose,
    "node": _diagnose,
}


def run_diagnosis(
    services: BotServices,
    client: WebClient,
    channel: str,
    user: str,
    kind: str,
    reference: str,
    request_id: str,
) -> None:
    """Post "Diagnosing …", run the checks, then edit that message into the findings."""
    posted: dict[str, str] = {}

    def on_target(target: Target) -> None:
        text, blocks = render_slack.progress_message(
            target.ref, target.node, services.named_cluster
        )
        response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        posted["ts"] = str(response["ts"])

    settings, transports = services.settings, services.transports
    try:
        if kind == "Pod":
            diagnosis = engine.diagnose_pod(transports, settings, reference, on_target=on_target)
        else:
            diagnosis = engine.diagnose_node(transports, settings, reference, on_target=on_target)
    except BadInput as exc:
        _tell_user(services, client, channel, user, Mrkdwn(":x: {}").format(exc))
        return
    except WinpodError as exc:
        text, blocks = render_slack.error_message(str(exc))  # the transports counted it
        if "ts" in posted:
            client.chat_update(channel=channel, ts=posted["ts"], text=text, blocks=blocks)
        else:
            _tell_user(services, client, channel, user, Mrkdwn(text))  # escaped by the renderer
        return
    except (SlackApiError, OSError) as exc:
        _log_slack_error(services, "posting progress", exc, request_id)
        return
    services.metrics.observe_diagnosis(diagnosis)
    offers = save_offers(services, diagnosis)
    targets = {rid: target for rid, target in offers}
    text, blocks = render_slack.diagnosis_message(
        diagnosis,
        offers,
        remediations.impact_texts(targets),
        services.named_cluster,
    )
    try:
        client.chat_update(channel=channel, ts=posted["ts"], text=text, blocks=blocks)
    except (SlackApiError, OSError) as exc:
        _log_slack_error(services, "posting the result", exc, request_id)  # i18n: log
        return
    log.info(
        "diagnosis posted",
        extra={
            "request_id": request_id,
            "target": reference,
            "errors": sum(f.severity == "error" for f in diagnosis.findings),
        },
    )


def save_offers(services: BotServices, diagnosis: Diagnosis) -> dict[tuple[str, str], str]:
    """Store what each remediation button means; the button carries only the short id."""
    offers: dict[tuple[str, str], str] = {}
    for finding in diagnosis.findings:
        for ref in finding.remediations:
            if (ref.id, ref.target) not in offers:
                offers[(ref.id, ref.target)] = services.store.save_offer(
                    ref.id,
                    ref.target,
                    {},
                    finding.check,
                    ref.risk,
                    diagnosed_ref(diagnosis).to_json(),
                )
    return offers


def diagnosed_ref(diagnosis: Diagnosis) -> TargetRef:
    """What a diagnosis looked at, as the remediation service re-checks it."""
    target = diagnosis.target
    kind = TargetKind.POD if target.kind == "Pod" else TargetKind.NODE
    return TargetRef(kind, target.ref)


def _tell_user(
    services: BotServices, client: WebClient, channel: str, user: str, text: Mrkdwn
) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except (SlackApiError, OSError) as exc:
        _log_slack_error(services, "telling the user", exc, None)  # i18n: log


def _log_slack_error(
    services: BotServices, what: str, exc: SlackApiError | OSError, request_id: str | None
) -> None:
    """A post that Slack refused, or that never got there after the client's retries: logged
    and counted, so a result that was promised and not delivered never goes unnoticed."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") or f"http_{exc.response.status_code}"
    else:
        error = type(exc).__name__
    services.metrics.error("slack", str(error))
    log.error("Slack call failed while %s: %s", what, error, extra={"request_id": request_id})
