"""Button clicks: remediation buttons, Approve and Reject — acknowledged first, then handled."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.approvals import ApprovalFlow, Click
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    flow = ApprovalFlow(services, app.client)
    app.action(re.compile(r"^remediate:"))(button(services, flow.remediation_clicked))
    app.action(re.compile(r"^approve:"))(button(services, flow.approve_clicked))
    app.action(re.compile(r"^reject:"))(button(services, flow.reject_clicked))


def button(services: BotServices, handle: Callable[[Click, str], None]) -> Callable[..., None]:
    def on_click(ack: Ack, body: dict[str, Any]) -> None:
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
        )
        value = str(body["actions"][0].get("value") or "")
        services.pool.submit(lambda: handle(click, value))

    return on_click
