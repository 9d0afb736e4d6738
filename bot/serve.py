"""`winpod serve`: the Slack app over HTTP (waitress) or Socket Mode, plus health and metrics."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_normalized_headers, extract_content_type, parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.response import SocketModeResponse
from waitress.server import create_server

from bot.commands import default_commands
from bot.health import HealthApp
from bot.metrics import Metrics
from bot.runtime import Runtime, fail_cut_off_actions
from bot.services import BotServices
from bot.slack_app import create_app
from bot.store import Store
from bot.wiring import build_transports
from bot.work import WorkPool
from config.settings import Settings
from handlers.checks import default_registry
from handlers.errors import WinpodError

log = logging.getLogger(__name__)
# Slack's requests are a few KB; anything near this is no Slack request and is refused before a
# byte of it is read or a signature is checked (waitress alone would buffer up to 1 GiB).
MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 32  # Slack's payloads nest about 10 deep; json.loads fails near 1,000
HEALTH_BODY_BYTES = 1 << 10  # /healthz, /readyz and /metrics take no body at all
# A Socket Mode envelope holds one request without URL-encoding: half the HTTP limit.
MAX_FRAME_BYTES = MAX_BODY_BYTES // 2


def build_services(settings: Settings) -> BotServices:
    """The home cluster's services (its Lease elects the leader); the other clusters' are
    built from them on first use (`BotServices.in_cluster`)."""
    # Rows from before the store knew clusters become the default cluster's (migration 0003).
    store = Store(settings.store.url, cluster=settings.resolve_cluster(None))
    store.migrate(settings.resolve_cluster(None))
    metrics = Metrics()
    home = settings.home_cluster
    home_settings = settings.for_cluster(home)
    return BotServices(
        settings=home_settings,
        transports=build_transports(
            home_settings, lambda peer, kind: metrics.error(peer, kind, home)
        ),
        store=store.scoped(home),
        cluster=home,
        pool=WorkPool(settings.work.workers, settings.work.queue_limit),
        metrics=metrics,
        commands=default_commands(),
        checks=default_registry(),
    )


class SlackEvents(SlackRequestHandler):
    """Bolt's WSGI adapter behind a stricter gate: what Slack never sends gets a 4xx where Bolt
    would raise (a 500 and a traceback). A request whose timestamp is no number of seconds, or
    whose signature does not verify, gets 401; a signed body that is not UTF-8, JSON that does not
    parse, a `payload` that is no JSON object, or one missing the fields Bolt's routing indexes
    blindly gets 400."""

    def __init__(self, app: App, signing_secret: str) -> None:
        super().__init__(app)
        self._verifier = SignatureVerifier(signing_secret)

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        headers = request.get_headers()
        normalized = build_normalized_headers(headers)
        try:
            body = request.get_body()
        except UnicodeDecodeError:
            return _json_response(400, "malformed request body")  # i18n: to Slack
        stamp = (normalized.get("x-slack-request-timestamp") or [""])[0]
        signature = (normalized.get("x-slack-signature") or [""])[0]
        # int() of anything else raises inside the verifier; 12 digits outlast any real clock
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return _json_response(401, "invalid request")
        if not self._verifier.is_valid(body, stamp, signature):
            return _json_response(401, "invalid request")
        try:
            parsed: object = parse_body(body, extract_content_type(normalized))
        except (ValueError, RecursionError):  # JSONDecodeError; nesting beyond the C parser's
            parsed = None
        if not isinstance(parsed, dict) or _depth(parsed) > MAX_JSON_DEPTH:
            return _json_response(400, "malformed request body")  # i18n: to Slack
        if not _routable(parsed):
            return _json_response(400, "malformed request body")  # i18n: to Slack
        return self.app.dispatch(
            BoltRequest(body=body, query=request.query_string, headers=headers)
        )


def _json_response(status: int, error: str) -> BoltResponse:
    return BoltResponse(
        status=status,
        body=json.dumps({"error": error}),
        headers={"content-type": "application/json"},
    )


def _depth(value: object) -> int:
    """How deeply `value` nests lists and objects, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if level + 1 > MAX_JSON_DEPTH:
                    return level + 1
                deepest = max(deepest, level + 1)
                stack.append((child, level + 1))
    return deepest


# Objects Slack sends in interactions, which Bolt and the listeners read with `.get()`.
_OBJECTS = ("container", "channel", "message", "team", "enterprise", "state")
_TEXTS = ("type", "team_id", "api_app_id", "channel_id", "user_id", "trigger_id", "response_url")


def _routable(body: dict[str, Any]) -> bool:
    """The parts of Slack's payloads that Bolt's matchers and winpod's listeners read without
    looking: an `event` or `view` has a type, `actions` are objects with an action_id and a text
    value, an interaction names its user, a slash command its user and channel; the objects an
    interaction carries are objects and its ids are strings, whatever else they hold."""
    for key in ("event", "view"):
        if key in body and not (
            isinstance(body[key], dict) and isinstance(body[key].get("type"), str)
        ):
            return False
    if any(body.get(k) is not None and not isinstance(body[k], dict) for k in _OBJECTS):
        return False
    if any(k in body and not isinstance(body[k], str) for k in (*_TEXTS, "command", "text")):
        return False
    message = body.get("message") or {}
    if not isinstance(message.get("blocks"), list | None) or not isinstance(
        message.get("ts"), str | None
    ):
        return False
    container = body.get("container") or {}
    if any(not isinstance(container.get(k), str | None) for k in ("channel_id", "message_ts")):
        return False
    if not isinstance((body.get("channel") or {}).get("id"), str | None):
        return False
    actions = body.get("actions", [{"action_id": ""}])
    if not isinstance(actions, list) or not actions:
        return False
    if not all(
        isinstance(a, dict)
        and isinstance(a.get("action_id"), str)
        and isinstance(a.get("value"), str | None)
        for a in actions
    ):
        return False
    if "actions" in body or "view" in body or "user" in body:
        user = body.get("user")
        if not (isinstance(user, dict) and isinstance(user.get("id"), str)):
            return False
    if "command" in body:
        return all(isinstance(body.get(k), str) and body[k] for k in ("user_id", "channel_id"))
    return True


class BoundedBody:
    """WSGI middleware: a body longer than `limit` gets 413 before any of it is read, and one
    whose Content-Length is no number gets 400 (the server in front also enforces the limit,
    chunked bodies included: waitress's `max_request_body_size`)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not (length.isascii() and length.isdigit()):
            return _plain(start_response, "400 Bad Request", "malformed Content-Length")
        if int(length) > self.limit:
            return _plain(
                start_response,
                "413 Request Entity Too Large",  # i18n: HTTP status
                f"request body over {self.limit} bytes",  # i18n: to the sender, not a reader
            )
        return self.app(environ, start_response)


def _plain(start_response: Any, status: str, error: str) -> list[bytes]:
    body = json.dumps({"error": error}).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class AcksFirst:
    """WSGI middleware: queued work waits while a Slack request is being answered (HTTP)."""

    def __init__(self, app: Any, pool: WorkPool) -> None:
        self.app = app
        self.pool = pool

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.pool.answering():
            return self.app(environ, start_response)


class AcksFirstSocketMode(SocketModeHandler):
    """Socket Mode: queued work waits while a request is answered, as `AcksFirst` over HTTP."""

    def __init__(self, app: App, app_token: str, pool: WorkPool) -> None:
        self.pool = pool
        # 64 KiB reads: slack_sdk recurses once per read while a frame is incomplete.
        super().__init__(app, app_token, receive_buffer_size=1 << 16)
        enqueue = self.client.enqueue_message

        def bounded(message: str) -> None:
            """A frame over the limit is dropped unparsed, as HTTP bodies get 413."""
            if len(message) > MAX_FRAME_BYTES:
                log.warning(
                    "dropped a Socket Mode frame of %d bytes (limit %d)",
                    len(message),
                    MAX_FRAME_BYTES,
                )
                return
            enqueue(message)

        # slack_sdk offers no limit of its own and builds its client inside this constructor
        self.client.enqueue_message = bounded  # type: ignore[method-assign]

    def handle(self, client: Any, req: Any) -> None:
        payload = req.payload
        if (
            not isinstance(payload, dict)
            or _depth(payload) > MAX_JSON_DEPTH
            or not _routable(payload)
        ):
            # what gets 400 over HTTP: acknowledged, so Slack does not resend it, and dropped
            log.warning("dropped a malformed Socket Mode %s envelope", req.type)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        with self.pool.answering():
            super().handle(client, req)


class Server:
    """Owns the listening servers; `stop()` closes them and lets running jobs finish."""

    def __init__(self, settings: Settings, host: str, port: int, metrics_port: int) -> None:
        self.settings = settings
        self.services = build_services(settings)
        self.app = create_app(self.services)
        assert self.services.approvals is not None
        fail_cut_off_actions(self.services.approvals)
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
        self._socket_mode: AcksFirstSocketMode | None = None
        self._threads: list[threading.Thread] = []
        self._metrics_server = self._listen(
            self.health, host, metrics_port, threads=2, max_body=HEALTH_BODY_BYTES
        )
        app_token = settings.slack.app_token
        if app_token is not None:
            self._socket_mode = AcksFirstSocketMode(
                self.app, app_token.get_secret_value(), self.services.pool
            )
            self.slack_port = None
        else:
            secret = settings.slack.signing_secret
            assert secret is not None  # create_app refuses to build the app without it
            events = SlackEvents(self.app, secret.get_secret_value())
            slack = self._listen(
                AcksFirst(events, self.services.pool),
                host,
                port,
                threads=16,
                max_body=MAX_BODY_BYTES,
            )
            self.slack_port = int(slack.effective_port)
        self.metrics_port = int(self._metrics_server.effective_port)

    def _listen(self, wsgi_app: Any, host: str, port: int, threads: int, max_body: int) -> Any:
        server = create_server(
            BoundedBody(wsgi_app, max_body),
            host=host,
            port=port,
            threads=threads,
            map={},
            max_request_body_size=max_body,
            # Bodies stay in memory (≤ 1 MiB × connection_limit 100): waitress would spill those
            # over 512 KB to /tmp, a 64 Mi emptyDir in deploy/, which unauthenticated uploads
            # could fill until the pod is evicted. A client that stalls is dropped after 30 s.
            inbuf_overflow=max_body + 1,
            channel_timeout=30,
            clear_untrusted_proxy_headers=True,
            ident="winpod",
        )
        self._servers.append(server)
        return server

    def _cluster_problem(self) -> str | None:
        # Nodes, which winpod may list anyway: a selector that matches none keeps it cheap, and
        # readiness needs no RBAC of its own (deploy/ grants nothing on namespaces).
        try:
            self.services.transports.cluster.list("Node", label_selector="winpod.io/ping")
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
