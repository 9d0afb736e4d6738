"""Events: `app_home_opened` publishes the App Home (built in the WorkPool, not the ack)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import home
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        user = str(event["user"])
        services.pool.submit(lambda: home.publish(services, client, user))
