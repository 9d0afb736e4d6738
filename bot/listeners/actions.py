"""Button clicks: remediation buttons, Approve and Reject — acknowledged first, then handled."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals import ApprovalFlow, Click
from bot.services import BotServices


def register(app: App, services: BotServices, flow: ApprovalFlow) -> None:
    app.action(re.compile(r"^remediate:"))(button(services, flow.remediation_clicked))
    app.action(re.compile(r"^approve:"))(button(services, flow.approve_clicked))
    app.action(re.compile(r"^reject:"))(button(services, flow.reject_clicked))


def button(services: BotServices, handle: Callable[[Click, str], None]) -> Callable[..., None]:
    def on_click(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = Click(
            user=str(body["user"]["id"]),
            channel=str(
                (body.get("container") or {}).get("channel_id")
                or (body.get("channel") or {}).get("id")
            ),
            message_ts=str(
                (body.get("container") or {}).get("message_ts")
                or (body.get("message") or {}).get("ts")
            ),
            blocks=list((body.get("message") or {}).get("blocks") or []),
            thread_ts=(body.get("container") or {}).get("thread_ts")
            or (body.get("message") or {}).get("thread_ts"),
        )
        value = str(body["actions"][0].get("value") or "")
        if not services.pool.submit(lambda: handle(click, value)).accepted:
            try:
                client.chat_postEphemeral(
                    channel=click.channel,
                    user=click.user,
                    text=":hourglass: winpod is busy; press it again in a minute. Nothing changed.",
                )
            except SlackApiError as exc:
                services.metrics.errors.labels("slack", str(exc.response.get("error"))).inc()

    return on_click
