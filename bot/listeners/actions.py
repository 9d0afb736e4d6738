"""Button clicks: remediation buttons, Approve and Reject (in messages and in the App Home) —
acknowledged first, then handled."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import home
from bot.approvals import ApprovalFlow, Click
from bot.services import BotServices
from handlers.i18n import _


def register(app: App, services: BotServices, flow: ApprovalFlow) -> None:
    app.action(re.compile(r"^remediate:"))(button(services, flow.remediation_clicked))
    app.action(re.compile(r"^approve:"))(button(services, flow.approve_clicked))
    app.action(re.compile(r"^reject:"))(button(services, flow.reject_clicked))


def button(services: BotServices, handle: Callable[[Click, str], None]) -> Callable[..., None]:
    def on_click(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = _click(body)
        value = str(body["actions"][0].get("value") or "")

        def run() -> None:
            handle(click, value)
            if click.view_id:
                home.publish(services, client, click.user)

        if not services.pool.submit(run).accepted:
            busy = _(":hourglass: winpod is busy; press it again in a minute. Nothing changed.")
            try:
                if click.view_id:
                    client.chat_postMessage(channel=click.user, text=busy)
                else:
                    client.chat_postEphemeral(channel=click.channel, user=click.user, text=busy)
            except SlackApiError as exc:
                services.metrics.error("slack", str(exc.response.get("error")))

    return on_click


def _click(body: dict[str, Any]) -> Click:
    """A press on a message (channel, message) or in the App Home (view, no channel)."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    user = str(body["user"]["id"])
    if container.get("type") == "view" or (body.get("view") and not message):
        view_id = container.get("view_id") or (body.get("view") or {}).get("id") or "home"
        return Click(user=user, channel="", message_ts="", blocks=[], view_id=str(view_id))
    return Click(
        user=user,
        channel=str(container.get("channel_id") or (body.get("channel") or {}).get("id")),
        message_ts=str(container.get("message_ts") or message.get("ts")),
        blocks=list(message.get("blocks") or []),
        thread_ts=container.get("thread_ts") or message.get("thread_ts"),
    )
