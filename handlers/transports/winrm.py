"""The real node-PowerShell adapter over pywinrm (WinRM over HTTPS, NTLM by default)."""

from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import requests
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError

from config.settings import WinRMSettings
from handlers.errors import BadInput, Refused, TimedOut, Unreachable
from handlers.transports import CommandResult

SessionKey = tuple[str, int, int]  # endpoint, operation and read timeouts


class SessionCache:
    """Authenticated pywinrm sessions kept per host for reuse: NTLM authenticates a keep-alive
    connection, so a reused session skips the TLS handshake, pywinrm's unauthenticated first
    request and the NTLM round trip. A session is lent to one caller at a time (a second
    caller on the same host gets a session of its own); at most `per_host` idle sessions per
    host and `hosts` hosts are kept, none idle longer than `idle_s`. A session whose script
    failed is dropped, never lent again."""

    def __init__(
        self,
        hosts: int = 64,
        per_host: int = 4,
        idle_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hosts, self._per_host, self._idle_s, self._clock = hosts, per_host, idle_s, clock
        self._idle: OrderedDict[SessionKey, list[tuple[float, winrm.Session]]] = OrderedDict()
        self._lock = threading.Lock()

    def lend(self, key: SessionKey, build: Callable[[], winrm.Session]) -> winrm.Session:
        now = self._clock()
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                since, session = idle.pop()
                if now - since <= self._idle_s:
                    return session
                _close(session)
        return build()

    def give_back(self, key: SessionKey, session: winrm.Session) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            self._idle.move_to_end(key)
            if len(idle) >= self._per_host:
                _close(session)
            else:
                idle.append((self._clock(), session))
            while len(self._idle) > self._hosts:
                _, dropped = self._idle.popitem(last=False)
                for _, old in dropped:
                    _close(old)

    def idle(self, key: SessionKey) -> int:
        with self._lock:
            return len(self._idle.get(key, []))

    def __len__(self) -> int:
        """Idle sessions kept, over every host."""
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())


def _close(session: winrm.Session) -> None:
    session.protocol.transport.close_session()


class WinRMShell:
    """`NodeShell` over pywinrm, certificate validation on by default; authenticated sessions
    are reused per host (`SessionCache`)."""

    def __init__(self, settings: WinRMSettings) -> None:
        if settings.username is None or settings.password is None:
            raise BadInput(
                "WinRM credentials are not configured: set WINPOD_WINRM__USERNAME and "
                "WINPOD_WINRM__PASSWORD"
            )
        self._settings = settings
        self.sessions = SessionCache()

    def run_script(self, address: str, script: str, timeout_s: float) -> CommandResult:
        settings = self._settings
        assert settings.username is not None and settings.password is not None
        operation = max(1, min(settings.operation_timeout_s, int(timeout_s)))
        read = max(operation + 1, min(settings.read_timeout_s, int(timeout_s) + 5))
        options: dict[str, object] = {
            "transport": settings.transport,
            "server_cert_validation": "validate" if settings.verify else "ignore",
            "operation_timeout_sec": operation,
            "read_timeout_sec": read,
        }
        if settings.ca_bundle:
            options["ca_trust_path"] = settings.ca_bundle
        endpoint = f"{settings.scheme}://{address}:{settings.port}/wsman"
        where = f"WinRM on {address}:{settings.port}"
        key = (endpoint, operation, read)

        def build() -> winrm.Session:
            assert settings.username is not None and settings.password is not None
            session = winrm.Session(
                endpoint,
                auth=(settings.username.get_secret_value(), settings.password.get_secret_value()),
                **options,
            )
            _read_proxy_environment_once(session)
            return session

        try:
            session = self.sessions.lend(key, build)
            response = _run_ps_keeping_session(session, script)
            self.sessions.give_back(key, session)
        except InvalidCredentialsError:
            raise Refused(f"{where} refused the configured credentials") from None
        except requests.exceptions.SSLError:
            raise Refused(
                f"{where}: the node's certificate is not trusted (set winrm.ca_bundle)"
            ) from None
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout):
            raise TimedOut(f"{where} did not answer within {read} s") from None
        except requests.exceptions.ConnectionError:
            raise Unreachable(f"cannot connect to {where}") from None
        except (WinRMTransportError, WinRMError) as exc:
            code = getattr(exc, "code", None)
            raise Unreachable(f"{where} failed ({code or type(exc).__name__})") from None
        return CommandResult(
            response.std_out.decode("utf-8", "replace"),
            response.std_err.decode("utf-8", "replace"),
            int(response.status_code),
        )


def _run_ps_keeping_session(session: winrm.Session, script: str) -> winrm.Response:
    """`Session.run_ps`, except that closing the shell keeps the HTTP session (and its
    authenticated connection) for the next script: pywinrm's own closes it every time."""
    encoded = base64.b64encode(script.encode("utf_16_le")).decode("ascii")
    protocol = session.protocol
    shell_id = protocol.open_shell()
    try:
        command_id = protocol.run_command(shell_id, f"powershell -encodedcommand {encoded}")
        response = winrm.Response(protocol.get_command_output(shell_id, command_id))
        protocol.cleanup_command(shell_id, command_id)
    finally:
        protocol.close_shell(shell_id, close_session=False)
    if response.std_err:
        response.std_err = session._clean_error_msg(response.std_err)
    return response


def _read_proxy_environment_once(session: winrm.Session) -> None:
    """pywinrm settles the proxy for this one endpoint when it builds its requests session,
    and requests would then read the proxy environment again for every message: seven per
    script, each a scan of all of os.environ (hundreds of variables in a pod with service
    links), about a fifth of the bot's CPU per script in the benchmarks. Build the session now
    and keep what it settled."""
    session.protocol.transport.build_session().trust_env = False
