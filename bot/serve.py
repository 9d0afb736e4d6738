"""`winpod serve`: the Slack app over HTTP (waitress) or Socket Mode, plus health and metrics."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_normalized_headers, extract_content_type, parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from waitress.server import create_server

from bot.approvals import fail_orphaned_actions
from bot.commands import default_commands
from bot.health import HealthApp
from bot.metrics import Metrics
from bot.runtime import Runtime
from bot.services import BotServices
from bot.slack_app import create_app
from bot.store import Store
from bot.wiring import build_transports
from bot.work import WorkPool
from config.settings import Settings
from handlers.checks import default_registry
from handlers.errors import WinpodError

log = logging.getLogger(__name__)
WORKERS = 16  # diagnoses at once; each spends most of its time waiting on the network
QUEUE_LIMIT = 200


def build_services(settings: Settings) -> BotServices:
    store = Store(settings.store.url)
    store.migrate()
    return BotServices(
        settings=settings,
        transports=build_transports(settings),
        store=store,
        pool=WorkPool(WORKERS, QUEUE_LIMIT),
        metrics=Metrics(),
        commands=default_commands(),
        checks=default_registry(),
    )


class SlackEvents(SlackRequestHandler):
    """Bolt's WSGI adapter, except that a body Slack never sends (not UTF-8, JSON that does not
    parse, a `payload` that is no JSON object) gets 400: Bolt's own parser would raise, a 500."""

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        headers = request.get_headers()
        try:
            body = request.get_body()
            content_type = extract_content_type(build_normalized_headers(headers))
            parsed: object = parse_body(body, content_type)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
            parsed = None
        if not isinstance(parsed, dict):
            return BoltResponse(
                status=400,
                body='{"error": "malformed request body"}',
                headers={"content-type": "application/json"},
            )
        return self.app.dispatch(
            BoltRequest(body=body, query=request.query_string, headers=headers)
        )


class Server:
    """Owns the listening servers; `stop()` closes them and lets running jobs finish."""

    def __init__(self, settings: Settings, host: str, port: int, metrics_port: int) -> None:
        self.settings = settings
        self.services = build_services(settings)
        self.app = create_app(self.services)
        for action in fail_orphaned_actions(self.services):
            log.warning(
                "action %s (%s on %s) was cut off by a restart; marked failed",
                action.id,
                action.remediation,
                action.target,
            )
        self.runtime = Runtime(self.services, self.app.client)
        self.runtime.reconcile_rdp()  # a restart never leaves an expired RDP session open
        self.health = HealthApp(
            self.services.metrics,
            {
                "kubernetes": self._cluster_problem,
                "slack": self._slack_problem,
            },
        )
        self.health.extra["leader"] = lambda: self.runtime.is_leader
        self._servers: list[Any] = []
        self._socket_mode: SocketModeHandler | None = None
        self._threads: list[threading.Thread] = []
        self._metrics_server = self._listen(self.health, host, metrics_port, threads=2)
        app_token = settings.slack.app_token
        if app_token is not None:
            self._socket_mode = SocketModeHandler(self.app, app_token.get_secret_value())
            self.slack_port = None
        else:
            slack = self._listen(SlackEvents(self.app), host, port, threads=16)
            self.slack_port = int(slack.effective_port)
        self.metrics_port = int(self._metrics_server.effective_port)

    def _listen(self, wsgi_app: Any, host: str, port: int, threads: int) -> Any:
        server = create_server(
            wsgi_app,
            host=host,
            port=port,
            threads=threads,
            map={},
            clear_untrusted_proxy_headers=True,
            ident="winpod",
        )
        self._servers.append(server)
        return server

    def _cluster_problem(self) -> str | None:
        try:
            self.services.transports.cluster.list("Namespace", label_selector="winpod.io/ping")
        except WinpodError as exc:
            return str(exc)
        return None

    def _slack_problem(self) -> str | None:
        try:
            self.app.client.auth_test()
        except SlackApiError as exc:
            return f"Slack refused auth.test: {exc.response.get('error')}"
        except OSError as exc:
            return f"Slack unreachable: {type(exc).__name__}"
        return None

    def start(self) -> None:
        for server in self._servers:
            thread = threading.Thread(target=server.run, name="http", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._socket_mode is not None:
            self._socket_mode.connect()  # type: ignore[no-untyped-call]
        self.runtime.start()
        mode = "Socket Mode" if self._socket_mode else f"HTTP on port {self.slack_port}"
        log.info(
            "winpod serving Slack (%s); health and metrics on port %s", mode, self.metrics_port
        )

    def stop(self) -> None:
        self.runtime.stop()
        if self._socket_mode is not None:
            self._socket_mode.close()  # type: ignore[no-untyped-call]
        for server in self._servers:
            server.close()
        self.services.pool.shutdown(wait=True)
        self.services.store.close()


def serve(settings: Settings, host: str, port: int, metrics_port: int) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = Server(settings, host, port, metrics_port)
    server.start()
    print(
        f"winpod ready: slack={'socket-mode' if server.slack_port is None else server.slack_port}"
        f" metrics={server.metrics_port}",
        flush=True,
    )
    stop.wait()
    log.info("stopping: letting running diagnoses finish")
    server.stop()
    return 0
