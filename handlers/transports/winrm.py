"""The real node-PowerShell adapter over pywinrm (WinRM over HTTPS, NTLM by default).

Scripts run as `powershell.exe -NoLogo -NoProfile -NonInteractive -EncodedCommand …`; their
output is decoded in the code page the script chose and stderr is freed of CLIXML. A connection
lost once the command was sent is `ChannelLost`: the script may have run (callers that change
a node run detached, see handlers/detached.py)."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import requests
import winrm
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMTransportError,
)
from winrm.protocol import Protocol

from config.settings import WinRMSettings
from handlers.errors import BadInput, ChannelLost, Refused, TimedOut, Unreachable, WinpodError
from handlers.i18n import _
from handlers.node_scripts import for_the_wire
from handlers.transports import CommandResult, NodeTarget, powershell_output

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
                _host, dropped = self._idle.popitem(last=False)
                for _since, old in dropped:
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
                _(
                    "WinRM credentials are not configured: set WINPOD_WINRM__USERNAME and "
                    "WINPOD_WINRM__PASSWORD"
                )
            )
        self._settings = settings
        self.sessions = SessionCache()

    detached = False

    def describe(self, target: NodeTarget) -> str:
        return _("over WinRM to {address}").format(
            address=f"{target.address}:{self._settings.port}"
        )

    def run_script(self, target: NodeTarget, script: str, timeout_s: float) -> CommandResult:
        settings = self._settings
        address = target.address
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
        where = _("WinRM on {address}").format(address=f"{address}:{settings.port}")
        key = (endpoint, operation, read)
        encoded = base64.b64encode(for_the_wire(script).encode("utf-16-le")).decode("ascii")

        def build() -> winrm.Session:
            assert settings.username is not None and settings.password is not None
            session = winrm.Session(
                endpoint,
                auth=(settings.username.get_secret_value(), settings.password.get_secret_value()),
                **options,
            )
            _read_proxy_environment_once(session)
            return session

        session = self.sessions.lend(key, build)
        try:
            shell_id = session.protocol.open_shell()
        except _WIRE_ERRORS as exc:
            _close_silently(session)  # never lent again
            raise _nothing_ran(exc, where, read) from None
        protocol = session.protocol
        try:
            command_id = protocol.run_command(shell_id, "powershell.exe", [*_FLAGS, encoded])
            stdout, stderr, exit_code = protocol.get_command_output(shell_id, command_id)
        except _WIRE_ERRORS as exc:
            _close_silently(session)  # never lent again
            raise ChannelLost(
                _(
                    "{where}: the connection was lost after the script started ({error}); it may "
                    "have run"
                ).format(where=where, error=type(exc).__name__)
            ) from None
        if _close_quietly(protocol, shell_id, command_id):
            self.sessions.give_back(key, session)
        else:
            _close_silently(session)
        return CommandResult(
            powershell_output.decode(stdout, script),
            powershell_output.strip_clixml(powershell_output.decode(stderr, script)),
            int(exit_code),
        )


_WIRE_ERRORS = (requests.exceptions.RequestException, WinRMError, WinRMTransportError)
# No profile scripts, no prompts: a node's profile must not change what winpod's scripts do.
_FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")


def _nothing_ran(exc: BaseException, where: str, read: int) -> WinpodError:
    """Errors before the command was sent: nothing ran on the node."""
    if isinstance(exc, InvalidCredentialsError):
        return Refused(_("{where} refused the configured credentials").format(where=where))
    if isinstance(exc, requests.exceptions.SSLError):
        return Refused(
            _("{where}: the node's certificate is not trusted (set winrm.ca_bundle)").format(
                where=where
            )
        )
    if isinstance(exc, requests.exceptions.ReadTimeout | requests.exceptions.ConnectTimeout):
        return TimedOut(
            _("{where} did not answer within {seconds} s").format(where=where, seconds=read)
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Unreachable(_("cannot connect to {where}").format(where=where))
    code = getattr(exc, "code", None)
    return Unreachable(
        _("{where} failed ({error})").format(where=where, error=code or type(exc).__name__)
    )


def _close_quietly(protocol: Protocol, shell_id: str, command_id: str) -> bool:
    """The result is in hand: a failure to clean up the shell changes nothing about it, but
    the session is then not kept. The HTTP session (its authenticated connection) stays open
    for the next script (pywinrm's own `run_ps` closes it every time)."""
    try:
        protocol.cleanup_command(shell_id, command_id)
        protocol.close_shell(shell_id, close_session=False)
    except _WIRE_ERRORS:
        return False
    return True


def _close_silently(session: winrm.Session) -> None:
    """Throw a broken session away; closing it may fail too, and that changes nothing."""
    with contextlib.suppress(Exception):
        _close(session)


def _read_proxy_environment_once(session: winrm.Session) -> None:
    """pywinrm settles the proxy for this one endpoint when it builds its requests session,
    and requests would then read the proxy environment again for every message: seven per
    script, each a scan of all of os.environ (hundreds of variables in a pod with service
    links), about a fifth of the bot's CPU per script in the benchmarks. Build the session now
    and keep what it settled."""
    session.protocol.transport.build_session().trust_env = False
