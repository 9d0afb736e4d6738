"""WS-Management (WinRM) for every simulated Windows host: NTLM or Basic auth, WinRS shells.

sim/server.py serves this one app over HTTPS on each host's own loopback address; the local
address of a connection tells which host it reached. pywinrm's `Session.run_ps` works unchanged:
Create shell → Command → Receive (until CommandState Done) → Signal terminate → Delete.
What a command does is decided in sim/host_scripts.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
import shutil
import struct
import tempfile
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

import spnego
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from multidict import CIMultiDict
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import BadBindingsError, SpnegoError

from sim.faults import Faults
from sim.host_scripts import CommandOutput, run_command_line
from sim.world import WindowsHost, World

if TYPE_CHECKING:
    from sim.server import Credentials

# The PEM of the certificate the endpoint serves: set by sim/server.py so that NTLM can check
# the client's channel binding token (RFC 5929 tls-server-end-point) as Windows does.
TLS_CERTIFICATE = web.AppKey("tls_certificate", bytes)

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
MS_WSMAN = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
WSMAN_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
CMD_RESOURCE = SHELL + "/cmd"
ANONYMOUS = ADDRESSING + "/role/anonymous"
DONE = SHELL + "/CommandState/Done"
CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

# Codes Windows puts in WSManFault/@Code (WinRM errors, or Win32 87 ERROR_INVALID_PARAMETER).
_SHELL_NOT_FOUND = 2150858843
_ACTION_NOT_SUPPORTED = 2150858754
_INVALID_PARAMETER = 87
# How long after its start command a scheduled task begins to run.
DEFERRED_START_S = 0.2


def _q(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}"


@dataclass
class _Connection:
    """Authentication state of one keep-alive connection: NTLM authenticates connections."""

    ntlm: spnego.ContextProxy | None = None
    user: str | None = None


@dataclass
class _Shell:
    host: str
    commands: dict[str, CommandOutput] = field(default_factory=dict)


@dataclass(frozen=True)
class _Envelope:
    action: str
    message_id: str
    resource_uri: str
    shell_id: str | None
    body: ET.Element


class _Fault(Exception):
    """A SOAP fault answered with HTTP 500, as WinRM does."""

    def __init__(self, subcode: str, reason: str, code: int, message: str) -> None:
        super().__init__(message)
        self.subcode, self.reason, self.code, self.message = subcode, reason, code, message


class WinRMService:
    """The shells of every host and the authentication state of every connection."""

    def __init__(self, world: World, credentials: Credentials) -> None:
        self.world = world
        self.username = credentials.winrm_username
        self.password = credentials.winrm_password
        self.channel_bindings: GssChannelBindings | None = None
        self.shells: dict[str, _Shell] = {}
        self._connections: weakref.WeakKeyDictionary[object, _Connection] = (
            weakref.WeakKeyDictionary()
        )

    # --- HTTP ----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # read it all, even when refusing: the connection lives on
        transport = request.transport
        if transport is None:
            raise web.HTTPServiceUnavailable()
        local_address = transport.get_extra_info("sockname")[0]
        host = self.world.host_by_address(local_address)
        if host is None:
            return web.Response(status=404, text=f"no simulated Windows host at {local_address}")
        if not host.winrm_enabled:
            # switched off through the control API after start-up: the listener is still bound,
            # so drop the connection as a stopped WinRM service would
            transport.abort()
            raise web.HTTPServiceUnavailable()  # never delivered: the socket is gone
        if not host.management_up:
            # The management vNIC is down: nothing answers until it is back (SPEC §16).
            await asyncio.sleep(host.unreachable_until - time.monotonic())
            transport.abort()
            raise web.HTTPServiceUnavailable()  # never delivered: the socket is gone
        connection = self._connections.setdefault(transport, _Connection())
        user = self._authenticate(request, connection)
        if isinstance(user, web.Response):
            return user
        if not body:
            # pywinrm's probe that sets up an authenticated context before encrypting.
            return web.Response(status=200)
        if request.content_type.startswith("multipart/"):
            return web.Response(
                status=400,
                text="encrypted WinRM messages are not simulated: use HTTPS, over which pywinrm "
                "does not encrypt (message_encryption='auto')",
            )
        try:
            envelope = _parse(body)
        except _Fault as fault:
            return _fault_response(fault, "", host)
        try:
            reply = self._dispatch(envelope, host, user)
        except _Fault as fault:
            return _fault_response(fault, envelope.message_id, host)
        self._start_deferred(host)
        if not host.management_up:
            # The command took the management network down under its own connection: the
            # script completed on the host, its answer never arrives.
            transport.abort()
            raise web.HTTPServiceUnavailable()
        return web.Response(body=reply.encode(), headers={"Content-Type": CONTENT_TYPE})

    @staticmethod
    def _start_deferred(host: WindowsHost) -> None:
        """Scheduled tasks a script started run once its command has answered."""
        loop = asyncio.get_running_loop()
        for work in host.deferred:
            loop.call_later(DEFERRED_START_S, work)
        host.deferred.clear()

    # --- authentication --------------------------------------------------------------------
    def _authenticate(self, request: web.Request, connection: _Connection) -> str | web.Response:
        """The user the request runs as, or the 401 that continues or refuses authentication."""
        header = request.headers.get("Authorization")
        if header is None:
            return connection.user if connection.user is not None else _challenge()
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() == "basic":
            user = self._basic_user(token.strip())
            return user if user is not None else _challenge()
        if scheme.lower() in ("ntlm", "negotiate"):
            return self._ntlm_step(scheme, token.strip(), connection)
        return _challenge()

    def _basic_user(self, token: str) -> str | None:
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        domain, _, name = user.rpartition("\\")
        # A local account, written bare or as `.\user`: the same names NTLM accepts.
        if domain not in ("", "."):
            return None
        if name.lower() != self.username.lower() or not secrets.compare_digest(
            password.encode(), self.password.encode()
        ):
            return None
        return name

    def _ntlm_step(self, scheme: str, token: str, connection: _Connection) -> str | web.Response:
        try:
            raw = base64.b64decode(token, validate=True)
        except binascii.Error:
            return _challenge()
        if connection.ntlm is None or _is_ntlm_negotiate(raw):
            connection.ntlm = spnego.server(
                protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm
            )
            connection.user = None
        context = connection.ntlm
        try:
            out = self._accept(context, raw)
        except (SpnegoError, ValueError, LookupError, struct.error):
            # Wrong credentials, or a token pyspnego's parsers cannot read: refused either way.
            connection.ntlm = None
            return _challenge()
        if not context.complete:
            headers = {"WWW-Authenticate": f"{scheme} {base64.b64encode(out or b'').decode()}"}
            return web.Response(status=401, headers=headers)
        connection.ntlm = None
        connection.user = str(context.client_principal or self.username).rpartition("\\")[2]
        return connection.user

    def _accept(self, context: spnego.ContextProxy, token: bytes) -> bytes | None:
        """One NTLM step, checking the channel binding token like WinRM's default
        CbtHardeningLevel "Relaxed": a wrong token fails, a missing one is accepted."""
        try:
            return context.step(token, channel_bindings=self.channel_bindings)
        except BadBindingsError as exc:
            if "not present" not in str(exc):
                raise
            return context.step(token)

    # --- WS-Management ---------------------------------------------------------------------
    def _dispatch(self, envelope: _Envelope, host: WindowsHost, user: str) -> str:
        action = envelope.action
        if envelope.resource_uri != CMD_RESOURCE:
            raise _Fault(
                "w:ActionNotSupported",
                "The action is not supported by the service.",
                _ACTION_NOT_SUPPORTED,
                f"only the WinRS cmd shell ({CMD_RESOURCE}) is simulated",
            )
        if action == TRANSFER + "/Create":
            return self._create(envelope, host, user)
        shell_id, shell = self._shell(envelope, host)
        if action == SHELL + "/Command":
            return self._command(envelope, shell, host)
        if action == SHELL + "/Receive":
            return self._receive(envelope, shell)
        if action == SHELL + "/Signal":
            command_id = envelope.body.get("CommandId", "")
            shell.commands.pop(command_id, None)
            return _reply(SHELL + "/SignalResponse", envelope, "<rsp:SignalResponse/>")
        if action == TRANSFER + "/Delete":
            del self.shells[shell_id]
            return _reply(TRANSFER + "/DeleteResponse", envelope, "")
        raise _Fault(
            "w:ActionNotSupported",
            "The action is not supported by the service.",
            _ACTION_NOT_SUPPORTED,
            f"the action {action} is not simulated",
        )

    def _create(self, envelope: _Envelope, host: WindowsHost, user: str) -> str:
        shell_id = str(uuid.uuid4()).upper()
        self.shells[shell_id] = _Shell(host=host.name)
        body = (
            "<x:ResourceCreated>"
            f"<a:Address>https://{escape(host.address)}/wsman</a:Address>"
            "<a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_RESOURCE}</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{CMD_RESOURCE}</rsp:ResourceUri>"
            f"<rsp:Owner>{escape(user)}</rsp:Owner>"
            "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
            "<rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )
        return _reply(TRANSFER + "/CreateResponse", envelope, body)

    def _shell(self, envelope: _Envelope, host: WindowsHost) -> tuple[str, _Shell]:
        shell_id = envelope.shell_id or ""
        shell = self.shells.get(shell_id)
        if shell is None or shell.host != host.name:
            raise _Fault(
                "w:InvalidSelectors",
                "The WS-Management service cannot process the request because the request "
                "contained invalid selectors for the resource.",
                _SHELL_NOT_FOUND,
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed "
                "because the shell was not found on the server.",
            )
        return shell_id, shell

    def _command(self, envelope: _Envelope, shell: _Shell, host: WindowsHost) -> str:
        command = envelope.body.findtext(_q(SHELL, "Command"), default="").strip()
        arguments = " ".join((a.text or "") for a in envelope.body.findall(_q(SHELL, "Arguments")))
        # The command runs now, as on Windows; Receive only collects its output.
        output = run_command_line(self.world, host, command, arguments)
        command_id = str(uuid.uuid4()).upper()
        shell.commands[command_id] = output
        body = (
            f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
            "</rsp:CommandResponse>"
        )
        return _reply(SHELL + "/CommandResponse", envelope, body)

    def _receive(self, envelope: _Envelope, shell: _Shell) -> str:
        stream = envelope.body.find(_q(SHELL, "DesiredStream"))
        command_id = "" if stream is None else stream.get("CommandId", "")
        output = shell.commands.get(command_id)
        if output is None:
            raise _Fault(
                "w:InvalidParameter",
                "The parameter is incorrect.",
                _INVALID_PARAMETER,
                f"no command {command_id} in this shell",
            )
        command = quoteattr(command_id)
        streams = "".join(
            f'<rsp:Stream Name="{name}" CommandId={command} End="true">'
            f"{base64.b64encode(text.encode(output.encoding, 'replace')).decode()}</rsp:Stream>"
            for name, text in (("stdout", output.stdout), ("stderr", output.stderr))
        )
        body = (
            f"<rsp:ReceiveResponse>{streams}"
            f'<rsp:CommandState CommandId={command} State="{DONE}">'
            f"<rsp:ExitCode>{output.exit_code}</rsp:ExitCode></rsp:CommandState>"
            "</rsp:ReceiveResponse>"
        )
        return _reply(SHELL + "/ReceiveResponse", envelope, body)


def _is_ntlm_negotiate(token: bytes) -> bool:
    """NTLM message type 1 starts a new handshake, even on an authenticated connection."""
    return token[:8] == b"NTLMSSP\x00" and token[8:12] == b"\x01\x00\x00\x00"


def _challenge() -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for scheme in ("Negotiate", "NTLM", 'Basic realm="WSMAN"'):
        headers.add("WWW-Authenticate", scheme)
    return web.Response(status=401, headers=headers)


def _parse(body: bytes) -> _Envelope:
    def bad(message: str) -> _Fault:
        return _Fault(
            "w:SchemaValidationError",
            "The SOAP XML in the message does not match the corresponding XML schema definition.",
            _INVALID_PARAMETER,
            message,
        )

    try:
        # expat (2.4.1+) refuses entity-expansion bombs; the body comes from a client that
        # already authenticated.
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise bad(f"the request is not XML: {exc}") from None
    header = root.find(_q(SOAP, "Header"))
    soap_body = root.find(_q(SOAP, "Body"))
    if root.tag != _q(SOAP, "Envelope") or header is None or soap_body is None:
        raise bad("the request is not a SOAP 1.2 envelope with a Header and a Body")
    action = header.findtext(_q(ADDRESSING, "Action"), default="").strip()
    if not action:
        raise bad("the request has no a:Action")
    selector = next(
        (
            s
            for s in header.iterfind(f"{_q(WSMAN, 'SelectorSet')}/{_q(WSMAN, 'Selector')}")
            if s.get("Name") == "ShellId"
        ),
        None,
    )
    first = next(iter(soap_body), None)
    return _Envelope(
        action=action,
        message_id=header.findtext(_q(ADDRESSING, "MessageID"), default="").strip(),
        resource_uri=header.findtext(_q(WSMAN, "ResourceURI"), default="").strip(),
        shell_id=None if selector is None else (selector.text or "").strip(),
        body=first if first is not None else soap_body,
    )


def _document(action: str, relates_to: str, body: str) -> str:
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xml:lang="en-US" xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" '
        f'xmlns:x="{TRANSFER}" xmlns:w="{WSMAN}" xmlns:rsp="{SHELL}" xmlns:p="{MS_WSMAN}">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>{relates}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


def _reply(action: str, envelope: _Envelope, body: str) -> str:
    """A response echoing the request's MessageID in RelatesTo (pywinrm checks it)."""
    return _document(action, envelope.message_id, body)


def _fault_response(fault: _Fault, relates_to: str, host: WindowsHost) -> web.Response:
    body = (
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value>"
        f"<s:Subcode><s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{WSMAN_FAULT}" Code="{fault.code}" '
        f"Machine={quoteattr(host.name)}><f:Message>{escape(fault.message)}</f:Message>"
        "</f:WSManFault></s:Detail></s:Fault>"
    )
    text = _document(ADDRESSING + "/fault", relates_to, body)
    return web.Response(status=500, body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _channel_bindings(certificate_pem: bytes) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point: the certificate's hash with its signature's algorithm,
    SHA-256 for MD5 and SHA-1 — what requests-ntlm sends."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(Encoding.DER))
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


def _write_ntlm_accounts(username: str, password: str) -> Path:
    """pyspnego's NTLM acceptor reads accounts only from the file named by NTLM_USER_FILE
    (`DOMAIN:USER:PASSWORD` per line): one private file for this simulator process."""
    if ":" in username or ":" in password or "\n" in username + password:
        raise ValueError("WinRM user name and password cannot contain ':' or newlines")
    directory = Path(tempfile.mkdtemp(prefix="winpod-sim-ntlm-"))
    path = directory / "accounts"
    path.touch(mode=0o600)
    path.write_text(f":{username}:{password}\n.:{username}:{password}\n", encoding="utf-8")
    os.environ["NTLM_USER_FILE"] = str(path)
    return directory


def build_app(world: World, faults: Faults, credentials: Credentials) -> web.Application:
    """POST /wsman for every host; server.py binds it to each host's address."""
    service = WinRMService(world, credentials)
    accounts = _write_ntlm_accounts(credentials.winrm_username, credentials.winrm_password)
    app = web.Application(middlewares=[faults.middleware("winrm")])
    app.router.add_post("/wsman", service.handle)

    async def load_certificate(app: web.Application) -> None:
        pem = app.get(TLS_CERTIFICATE)
        service.channel_bindings = None if pem is None else _channel_bindings(pem)

    async def remove_accounts(_: web.Application) -> None:
        shutil.rmtree(accounts, ignore_errors=True)

    app.on_startup.append(load_certificate)
    app.on_cleanup.append(remove_accounts)
    return app
