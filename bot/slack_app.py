"""The Bolt app factory: no module-level app or clients; listeners registered by kind."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.approvals import ApprovalFlow
from bot.listeners import actions, commands, events
from bot.services import BotServices
from config.settings import ConfigError, Settings
from handlers.i18n import N_, _


def web_client(settings: Settings) -> WebClient:
    """A Web API client on `slack.api_url` that retries 429s (honouring Retry-After) and 5xx."""
    token = settings.slack.bot_token
    if token is None:
        raise ConfigError(_("slack.bot_token is not set (WINPOD_SLACK__BOT_TOKEN)"))
    return WebClient(
        token=token.get_secret_value(),
        base_url=settings.slack.api_url,
        timeout=int(settings.slack.timeout.total_seconds()),
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=settings.slack.rate_limit_retries),
            ServerErrorRetryHandler(max_retry_count=settings.slack.error_retries),
            ConnectionErrorRetryHandler(max_retry_count=settings.slack.error_retries),
        ],
    )


def create_app(services: BotServices) -> App:
    settings = services.settings
    secret = settings.slack.signing_secret
    if secret is None:
        raise ConfigError(_("slack.signing_secret is not set (WINPOD_SLACK__SIGNING_SECRET)"))
    app = App(
        client=web_client(settings),
        signing_secret=secret.get_secret_value(),
        token_verification_enabled=False,  # no auth.test at start-up: /readyz reports Slack
        request_verification_enabled=True,
        # Every listener acks at once and hands slow work to the WorkPool, so the answer can go
        # out as the listener returns: without this Bolt runs it on a second thread pool and
        # polls for the ack every 10 ms, which under a burst of commands costs more than the ack.
        process_before_response=True,
        logger=logging.getLogger("winpod.slack"),
    )
    app.use(gate(services))
    services.approvals = ApprovalFlow(services, app.client)
    commands.register(app, services)
    actions.register(app, services, services.approvals)
    events.register(app, services)
    return app


CHANNEL_REFUSAL = N_(
    ":no_entry: winpod is not enabled in this channel; ask an admin to add it to "
    "slack.allowed_channels."
)  # translated where it is said, with _()


def gate(services: BotServices) -> Callable[..., Any]:
    """Refuse, before any listener, requests from another workspace or for another app (when
    `slack.team_id` / `slack.api_app_id` are set) and button clicks outside
    `slack.allowed_channels` (slash commands answer that refusal in their own listener)."""
    slack = services.settings.slack

    def middleware(body: dict[str, Any], client: WebClient, next: Callable[[], Any]) -> Any:
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        if slack.team_id and team != slack.team_id:
            return BoltResponse(status=403, body="")
        if slack.api_app_id and body.get("api_app_id") != slack.api_app_id:
            return BoltResponse(status=403, body="")
        if slack.allowed_channels and body.get("type") == "block_actions":
            channel = (body.get("container") or {}).get("channel_id") or (
                body.get("channel") or {}
            ).get("id")
            if channel not in slack.allowed_channels:
                user = str((body.get("user") or {}).get("id") or "")
                if channel and user:
                    services.pool.submit(
                        lambda: _tell(client, str(channel), user, _(CHANNEL_REFUSAL))
                    )
                return BoltResponse(status=200, body="")
        return next()

    return middleware


def _tell(client: WebClient, channel: str, user: str, text: str) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except (SlackApiError, OSError):
        log = logging.getLogger(__name__)
        log.warning("could not tell %s why the click was refused", user)
