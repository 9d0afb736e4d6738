"""What a command run in a simulated Windows pod prints (pod exec), Windows-style.

`run_in_pod` understands the handful of commands the bot's probes and remediations use (see
`sim/README.md`, "Pod exec"); anything else fails with `not simulated: …` and exit code 1.
Network behaviour comes from `sim.network`; this module only parses and prints.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim import network
from sim.network import Adapter, Outcome
from sim.world import Obj, World

CRLF = "\r\n"
SA_DIR = r"C:\var\run\secrets\kubernetes.io\serviceaccount"
SA_FILES = ("token", "namespace", "ca.crt")
NSLOOKUP_RETRIES = 4  # "DNS request timed out." lines after the server lines, as Windows prints
_FAKE_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    + "\n".join(
        base64.b64encode(hashlib.sha512(f"sim-ca-{i}".encode()).digest()).decode()[:64]
        for i in range(6)
    )
    + "\n-----END CERTIFICATE-----\n"
)


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int


class _NotSimulated(Exception):
    """The command (or one statement of a PowerShell script) is outside what the sim models."""


def _lines(lines: Sequence[str]) -> str:
    return "".join(line + CRLF for line in lines)


def _not_simulated(text: str) -> ExecResult:
    return ExecResult("", f"not simulated: {text}{CRLF}", 1)


def run_in_pod(world: World, pod: Obj, container: str, argv: list[str]) -> ExecResult:
    """Run `argv` in `container` of `pod`. Unknown commands fail with "not simulated"."""
    if network.pod_ip(pod) is None:
        # The kubelet has no running container to exec into (the API layer normally refuses
        # before getting here): what `kubectl exec` shows for a Pending pod.
        return ExecResult(
            "", f'unable to upgrade connection: container not found ("{container}"){CRLF}', 1
        )
    shown = " ".join(str(arg) for arg in argv)
    if network.is_linux_pod(world, pod) or not argv:
        return _not_simulated(shown)
    try:
        return _Pod(world, pod).run([str(arg) for arg in argv])
    except _NotSimulated:
        return _not_simulated(shown)


def _program(word: str) -> str:
    """`C:\\Windows\\System32\\NSLOOKUP.EXE` -> `nslookup`."""
    name = re.split(r"[\\/]", word)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def _sa_file(path: str) -> str | None:
    """The ServiceAccount file a path names (`token`, …), None for paths outside that folder."""
    text = path.strip().strip("'\"").replace("/", "\\").lower()
    folder = SA_DIR.lower()
    if text.startswith("\\var\\"):
        text = "c:" + text
    if not text.startswith(folder + "\\"):
        return None
    return text[len(folder) + 1 :]


def _sa_path(name: str) -> str:
    return f"{SA_DIR}\\{name}"


def _fake_token(pod: Obj) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = meta.get("namespace") or "default"
    account = spec.get("serviceAccountName") or "default"
    claims = {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": account,
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = base64.urlsafe_b64encode(
        b"".join(hashlib.sha512(f"{meta.get('uid')}-{part}".encode()).digest() for part in range(4))
    )
    return (
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InNpbSJ9."
        + payload.decode().rstrip("=")
        + "."
        + signature.decode().rstrip("=")
    )


class _Pod:
    """One exec: the pod, its adapter, and the native programs Windows containers carry."""

    def __init__(self, world: World, pod: Obj) -> None:
        self.world = world
        self.pod = pod

    @property
    def adapter(self) -> Adapter:
        net = network.adapter(self.world, self.pod)
        if net is None:  # run_in_pod only gets here for pods with an IP
            raise _NotSimulated
        return net

    def run(self, argv: list[str]) -> ExecResult:
        program = _program(argv[0])
        if program == "cmd":
            return self.cmd(argv[1:])
        if program == "nslookup":
            return self.nslookup(argv[1:])
        if program == "ipconfig":
            return self.ipconfig(argv[1:])
        if program in ("powershell", "pwsh"):
            return _powershell(self, program, argv[1:])
        raise _NotSimulated

    def sa_content(self, name: str) -> str | None:
        """The file's content, or None when the pod cannot read it."""
        if not network.token_readable(self.world, self.pod) or name not in SA_FILES:
            return None
        if name == "token":
            return _fake_token(self.pod)
        if name == "namespace":
            return str((self.pod.get("metadata") or {}).get("namespace") or "default")
        return _FAKE_CA

    # --- cmd.exe ------------------------------------------------------------------------------
    def cmd(self, args: list[str]) -> ExecResult:
        index = 0
        while index < len(args) and args[index].lower() in ("/d", "/q", "/s", "/a", "/u"):
            index += 1
        if index >= len(args) or args[index].lower() != "/c":
            raise _NotSimulated
        rest = args[index + 1 :]
        # One argument is the whole command line; several are joined the way the container
        # runtime builds a Windows command line (quoting arguments that contain blanks).
        line = (
            rest[0]
            if len(rest) == 1
            else " ".join(f'"{a}"' if not a or any(c in a for c in " \t") else a for a in rest)
        )
        line = line.strip()
        if any(c in line for c in "&|<>^%"):
            raise _NotSimulated
        words = _cmd_words(line)
        if not words:
            return ExecResult("", "", 0)
        verb = _program(words[0])
        if verb == "echo":
            text = line[len(words[0]) :].removeprefix(" ")
            return ExecResult((text if text.strip() else "ECHO is on.") + CRLF, "", 0)
        if verb == "exit":
            code = [w for w in words[1:] if w.lower() != "/b"]
            if not code:
                return ExecResult("", "", 0)
            if len(code) == 1 and _is_number(code[0]) and not code[0].startswith("-"):
                return ExecResult("", "", int(code[0]))
            raise _NotSimulated
        if verb == "type" and len(words) == 2:
            return self.type_file(words[1])
        return self.run(words)

    def type_file(self, path: str) -> ExecResult:
        name = _sa_file(path)
        if name is None:
            raise _NotSimulated
        content = self.sa_content(name)
        if content is not None:
            return ExecResult(content.replace("\n", CRLF) if name == "ca.crt" else content, "", 0)
        if network.token_mounted(self.pod) and name not in SA_FILES:
            return ExecResult("", "The system cannot find the file specified." + CRLF, 1)
        # No folder without the mount; below build 17074 (moby#28401) the symlink's target is
        # out of reach through the volume mount.
        return ExecResult("", "The system cannot find the path specified." + CRLF, 1)

    # --- nslookup.exe -------------------------------------------------------------------------
    def nslookup(self, args: list[str]) -> ExecResult:
        name: str | None = None
        server: str | None = None
        timeout = 2
        for arg in args:
            if arg.startswith("-") and len(arg) > 1:
                key, _, value = arg[1:].lower().partition("=")
                if key == "timeout" and _is_number(value) and int(value) > 0:
                    timeout = int(value)
                elif (key in ("type", "q", "querytype") and value == "a") or (
                    key == "retry" and _is_number(value)
                ):
                    continue
                else:
                    raise _NotSimulated
            elif name is None:
                name = arg
            elif server is None:
                server = arg
            else:
                raise _NotSimulated
        if not name or (server is not None and not network.is_ip(server)):
            raise _NotSimulated  # interactive mode, or a server given by name
        net = self.adapter
        servers = [server] if server else list(net.dns_servers[:1])
        if not servers:
            return ExecResult("", _lines(["*** Default servers are not available"]), 1)
        return self._nslookup(name, servers[0], timeout, net)

    def _nslookup(self, name: str, server: str, timeout: int, net: Adapter) -> ExecResult:
        timed_out = ["DNS request timed out.", f"    timeout was {timeout} seconds."]
        out: list[str] = []
        err: list[str] = []
        ptr = network.reverse(self.world, self.pod, server, server)
        if ptr.outcome is Outcome.TIMEOUT:
            out += timed_out
        server_name = ptr.addresses[0] if ptr.outcome is Outcome.ANSWER else "UnKnown"
        out += [f"Server:  {server_name}", f"Address:  {server}", ""]
        for candidate in network.candidates(name, net.search_list, as_is_first=False):
            answer = network.query(self.world, self.pod, server, candidate)
            if answer.outcome is Outcome.TIMEOUT:
                out += timed_out * NSLOOKUP_RETRIES
                err.append(f"*** Request to {server_name} timed-out")
                return ExecResult(_lines(out), _lines(err), 1)
            if answer.outcome is Outcome.ANSWER:
                if not answer.authoritative:
                    err.append("Non-authoritative answer:")
                out.append(f"Name:    {answer.name}")
                first, *others = answer.addresses
                label = "Addresses" if others else "Address"
                out.append(f"{label}:  {first}")
                out += [" " * 10 + other for other in others]
                out.append("")
                return ExecResult(_lines(out), _lines(err), 0)
        err.append(f"*** {server_name} can't find {name}: Non-existent domain")
        return ExecResult(_lines(out), _lines(err), 1)

    # --- ipconfig.exe -------------------------------------------------------------------------
    def ipconfig(self, args: list[str]) -> ExecResult:
        if [a.lower() for a in args] not in ([], ["/all"], ["-all"]):
            raise _NotSimulated
        net = self.adapter
        if not args:
            return ExecResult(
                _lines(
                    [
                        "",
                        "Windows IP Configuration",
                        "",
                        "",
                        f"Ethernet adapter {net.alias}:",
                        "",
                        _ip_row("Connection-specific DNS Suffix  .", net.suffix),
                        _ip_row(
                            "Link-local IPv6 Address . . . . .", f"{net.link_local}%{net.if_index}"
                        ),
                        _ip_row("IPv4 Address. . . . . . . . . . .", net.ipv4),
                        _ip_row("Subnet Mask . . . . . . . . . . .", net.mask),
                        _ip_row("Default Gateway . . . . . . . . .", net.gateway),
                    ]
                ),
                "",
                0,
            )
        meta = self.pod.get("metadata") or {}
        host_name = (self.pod.get("spec") or {}).get("hostname") or meta.get("name") or ""
        lines = [
            "",
            "Windows IP Configuration",
            "",
            _ip_row("Host Name . . . . . . . . . . . .", str(host_name)),
            _ip_row("Primary Dns Suffix  . . . . . . .", ""),
            _ip_row("Node Type . . . . . . . . . . . .", "Hybrid"),
            _ip_row("IP Routing Enabled. . . . . . . .", "No"),
            _ip_row("WINS Proxy Enabled. . . . . . . .", "No"),
            *_ip_rows("DNS Suffix Search List. . . . . .", net.search_list),
            "",
            f"Ethernet adapter {net.alias}:",
            "",
            _ip_row("Connection-specific DNS Suffix  .", net.suffix),
            _ip_row("Description . . . . . . . . . . .", net.description),
            _ip_row("Physical Address. . . . . . . . .", net.mac),
            _ip_row("DHCP Enabled. . . . . . . . . . .", "No"),
            _ip_row("Autoconfiguration Enabled . . . .", "Yes"),
            _ip_row(
                "Link-local IPv6 Address . . . . .", f"{net.link_local}%{net.if_index}(Preferred) "
            ),
            _ip_row("IPv4 Address. . . . . . . . . . .", f"{net.ipv4}(Preferred) "),
            _ip_row("Subnet Mask . . . . . . . . . . .", net.mask),
            _ip_row("Default Gateway . . . . . . . . .", net.gateway),
            *_ip_rows("DNS Servers . . . . . . . . . . .", net.dns_servers),
            _ip_row("NetBIOS over Tcpip. . . . . . . .", "Disabled"),
        ]
        return ExecResult(_lines(lines), "", 0)


def _cmd_words(line: str) -> list[str]:
    """cmd-style words: blanks separate, double quotes group (and are dropped)."""
    words, current, quoted, started = [], "", False, False
    for char in line:
        if char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                words.append(current)
            current, started = "", False
        else:
            current, started = current + char, True
    if started:
        words.append(current)
    return words


def _ip_row(label: str, value: str) -> str:
    return f"   {label} : {value}"


def _ip_rows(label: str, values: Sequence[str]) -> list[str]:
    if not values:
        return [_ip_row(label, "")]
    return [_ip_row(label, values[0])] + [" " * 39 + value for value in values[1:]]


# --- PowerShell ----------------------------------------------------------------------------------
#
# A script is split into statements (`;` and new lines). Each statement is parsed into a small
# tree first, so a script with any statement the sim does not model changes nothing and fails
# as "not simulated" as a whole; then the statements run in order.

_PS_SWITCHES = {"noprofile", "noninteractive", "nologo", "sta", "mta"}
_PS_VALUES = {"executionpolicy", "inputformat", "outputformat", "windowstyle"}
_PS_ALIASES = {
    "c": "command",
    "e": "encodedcommand",
    "ec": "encodedcommand",
    "enc": "encodedcommand",
    "ep": "executionpolicy",
    "ex": "executionpolicy",
    "nop": "noprofile",
    "noni": "noninteractive",
    "nol": "nologo",
}
_PS_KNOWN = sorted({*_PS_SWITCHES, *_PS_VALUES, "command", "encodedcommand"})


def _powershell(pod: _Pod, program: str, args: list[str]) -> ExecResult:
    """`powershell|pwsh [-NoProfile] [-NonInteractive] … -Command TEXT | -EncodedCommand B64`."""
    index, script = 0, None
    while index < len(args):
        arg = args[index]
        if not arg.startswith(("-", "/")) or len(arg) < 2:
            script = " ".join(args[index:])  # bare words are the command, as with -Command
            break
        option = _ps_option(arg[1:].lower())
        if option in _PS_SWITCHES:
            index += 1
        elif option in _PS_VALUES and index + 1 < len(args):
            index += 2
        elif option == "command" and index + 1 < len(args) and args[index + 1] != "-":
            script = " ".join(args[index + 1 :])
            break
        elif option == "encodedcommand" and index + 2 == len(args):
            script = _decode(args[index + 1])
            break
        else:
            raise _NotSimulated
    if script is None or not script.strip():
        raise _NotSimulated  # an interactive shell, -File, -Command - …
    return _Script(pod, program == "pwsh", script).run()


def _ps_option(name: str) -> str | None:
    if name in _PS_ALIASES:
        return _PS_ALIASES[name]
    matches = [known for known in _PS_KNOWN if known.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def _decode(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _NotSimulated from None


@dataclass(frozen=True)
class _Tok:
    kind: str  # word | str | var | group | comma
    text: str
    start: int  # offset in the script
    end: int
    members: tuple[str, ...] = ()  # `(…).Length` / `$a.ifIndex`


_MEMBER = re.compile(r"\.([A-Za-z_]\w*)")
_WORD_END = set(" \t,;()|'\"{}[]@&<>`")


def _tokens(text: str, base: int) -> list[_Tok]:
    """PowerShell tokens of one statement; raises _NotSimulated on syntax the sim leaves out
    (pipelines, script blocks, redirection, variable expansion inside strings, …)."""
    tokens: list[_Tok] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in " \t":
            i += 1
        elif char == "#":
            break
        elif char == ",":
            tokens.append(_Tok("comma", ",", base + i, base + i + 1))
            i += 1
        elif char in "'\"":
            value, end = _string(text, i)
            tokens.append(_Tok("str", value, base + i, base + end))
            i = end
        elif char == "(":
            close = _closing(text, i)
            members, end = _members(text, close + 1)
            tokens.append(_Tok("group", text[i + 1 : close], base + i, base + end, members))
            i = end
        elif char in _WORD_END:
            raise _NotSimulated
        else:
            start = i
            while i < len(text) and text[i] not in _WORD_END:
                i += 1
            word = text[start:i]
            if word.startswith("$"):
                name, *chain = word[1:].split(".")
                if not re.fullmatch(r"\w+", name) or not all(
                    re.fullmatch(r"[A-Za-z_]\w*", m) for m in chain
                ):
                    raise _NotSimulated
                tokens.append(_Tok("var", name.lower(), base + start, base + i, tuple(chain)))
            else:
                tokens.append(_Tok("word", word, base + start, base + i))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    quote, i, value = text[start], start + 1, ""
    while i < len(text):
        char = text[i]
        if char == quote:
            if text[i + 1 : i + 2] == quote:  # '' and "" stand for one quote
                value, i = value + quote, i + 2
                continue
            return value, i + 1
        if quote == '"' and char == "$":
            raise _NotSimulated  # no variable expansion in strings
        if quote == '"' and char == "`" and i + 1 < len(text):
            escaped = text[i + 1]
            value, i = value + {"n": "\n", "r": "\r", "t": "\t"}.get(escaped, escaped), i + 2
            continue
        value, i = value + char, i + 1
    raise _NotSimulated


def _closing(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char in "'\"":
            i = _string(text, i)[1]
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise _NotSimulated


def _members(text: str, i: int) -> tuple[tuple[str, ...], int]:
    members = []
    while match := _MEMBER.match(text, i):
        members.append(match.group(1))
        i = match.end()
    return tuple(members), i


def _statements(script: str) -> list[tuple[str, int]]:
    """(statement text, offset) for each `;`- or line-separated statement."""
    result, start, i, depth = [], 0, 0, 0
    while i < len(script):
        char = script[i]
        if char in "'\"":
            try:
                i = _string(script, i)[1]
            except _NotSimulated:
                i = len(script)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char in ";\r\n" and depth == 0:
            result.append((script[start:i], start))
            start = i + 1
        i += 1
    result.append((script[start:], start))
    return [
        (text, offset)
        for text, offset in result
        if text.strip() and not text.strip().startswith("#")
    ]


# --- parsed forms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Var:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class _Array:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class _Call:
    """A command with its bound parameters (values are parsed nodes, evaluated at run time)."""

    command: str  # canonical name, or the native program
    args: dict[str, Any]
    native_args: tuple[Any, ...]
    start: int
    end: int


@dataclass(frozen=True)
class _Sub:
    call: _Call
    members: tuple[str, ...]


@dataclass(frozen=True)
class _Static:
    """`[IO.File]::ReadAllText('…')[.Length]`."""

    path: str
    members: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class _Statement:
    node: Any  # _Call | _Sub | _Var | _Literal | _Array | _Static
    assign: str | None
    line: int
    line_start: int  # offset of the statement's line in the script, for error positions
    line_text: str


@dataclass(frozen=True)
class _CmdletSpec:
    name: str
    values: tuple[str, ...]
    switches: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()


_COMMON_VALUES = ("ErrorAction", "WarningAction")
_COMMON_ALIASES = (("ea", "ErrorAction"), ("wa", "WarningAction"))
_CMDLETS = {
    spec.name.lower(): spec
    for spec in (
        _CmdletSpec(
            "Resolve-DnsName",
            ("Name", "Server", "Type"),
            ("DnsOnly", "QuickTimeout", "NoHostsFile", "NoIdn"),
            ("Name", "Type"),
        ),
        _CmdletSpec(
            "Test-NetConnection",
            ("ComputerName", "Port", "InformationLevel", "CommonTCPPort"),
            (),
            ("ComputerName", "CommonTCPPort"),
            (("RemoteAddress", "ComputerName"), ("cn", "ComputerName")),
        ),
        _CmdletSpec(
            "Get-Content",
            ("Path", "LiteralPath", "Encoding"),
            ("Raw",),
            ("Path",),
            (("PSPath", "LiteralPath"), ("LP", "LiteralPath")),
        ),
        _CmdletSpec("Get-Item", ("Path", "LiteralPath"), (), ("Path",)),
        _CmdletSpec(
            "Get-NetAdapter",
            ("Name", "InterfaceIndex"),
            ("Physical",),
            ("Name",),
            (("ifIndex", "InterfaceIndex"), ("ifAlias", "Name"), ("InterfaceAlias", "Name")),
        ),
        _CmdletSpec(
            "Get-DnsClientServerAddress",
            ("InterfaceIndex", "InterfaceAlias", "AddressFamily"),
            (),
            ("InterfaceAlias",),
        ),
        _CmdletSpec(
            "Set-DnsClientServerAddress",
            ("InterfaceIndex", "InterfaceAlias", "ServerAddresses"),
            ("ResetServerAddresses", "Validate", "Confirm"),
            ("InterfaceAlias",),
        ),
        _CmdletSpec(
            "Set-DnsClient",
            ("InterfaceIndex", "InterfaceAlias", "ConnectionSpecificSuffix"),
            ("Confirm",),
            ("InterfaceAlias",),
            (("Suffix", "ConnectionSpecificSuffix"),),
        ),
    )
}
_CMDLET_ALIASES = {
    "tnc": "test-netconnection",
    "gc": "get-content",
    "cat": "get-content",
    "type": "get-content",
    "gi": "get-item",
}
_NATIVE = {"nslookup", "ipconfig", "cmd"}
_STATIC = re.compile(
    r"^\[(?:System\.)?IO\.File\]::ReadAllText\((.*)\)((?:\.[A-Za-z_]\w*)*)$", re.IGNORECASE
)
_ASSIGN = re.compile(r"^\s*\$(\w+)\s*=(?!=)")
_PREFERENCES = {
    "erroractionpreference",
    "warningpreference",
    "progresspreference",
    "confirmpreference",
    "verbosepreference",
}
_AUTOMATIC = {"true": True, "false": False, "null": None}


def _parse_statement(text: str, offset: int, script: str, known: set[str]) -> _Statement:
    line = script.count("\n", 0, offset) + 1
    line_start = script.rfind("\n", 0, offset) + 1
    line_end = script.find("\n", offset)
    line_text = script[line_start : line_end if line_end >= 0 else len(script)].rstrip("\r")
    assign = None
    body, body_offset = text, offset
    if match := _ASSIGN.match(text):
        assign = match.group(1).lower()
        body, body_offset = text[match.end() :], offset + match.end()
    stripped = body.strip()
    lead = len(body) - len(body.lstrip())
    if static := _STATIC.match(stripped):
        path_tokens = _tokens(static.group(1), 0)
        if assign or len(path_tokens) != 1 or path_tokens[0].kind != "str":
            raise _NotSimulated
        members = tuple(static.group(2).split(".")[1:])
        node: Any = _Static(
            path_tokens[0].text, members, body_offset + lead, body_offset + lead + len(stripped)
        )
        return _Statement(node, None, line, line_start, line_text)
    tokens = _tokens(body, body_offset)
    if not tokens:
        raise _NotSimulated
    if assign in _PREFERENCES:
        if len(tokens) != 1 or tokens[0].kind not in ("str", "word"):
            raise _NotSimulated
        return _Statement(_Literal(tokens[0].text), assign, line, line_start, line_text)
    if tokens[0].kind == "word" and not _is_number(tokens[0].text):
        node = _parse_call(tokens, known)
    else:
        node, rest = _parse_value(tokens, 0, known)
        if rest != len(tokens):
            raise _NotSimulated
    if assign:
        known.add(assign)
    return _Statement(node, assign, line, line_start, line_text)


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", text) is not None


def _parse_call(tokens: list[_Tok], known: set[str]) -> _Call:
    head = tokens[0]
    program = _program(head.text)
    end = tokens[-1].end
    if program in _NATIVE:
        args, index = [], 1
        while index < len(tokens):
            if tokens[index].kind == "comma":
                raise _NotSimulated
            value, index = _parse_single(tokens, index, known)
            args.append(value)
        return _Call(program, {}, tuple(args), head.start, end)
    name = head.text.lower()
    spec = _CMDLETS.get(_CMDLET_ALIASES.get(name, name))
    if spec is None:
        raise _NotSimulated
    bound: dict[str, Any] = {}
    positional = list(spec.positional)
    index = 1
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "word" and token.text.startswith("-") and not _is_number(token.text):
            parameter, _, inline = token.text[1:].partition(":")
            canonical, is_switch = _parameter(spec, parameter)
            if canonical in bound:
                raise _NotSimulated
            index += 1
            if is_switch:
                bound[canonical] = (
                    _Literal(inline.lower() != "$false") if inline else _Literal(True)
                )
            elif inline:
                bound[canonical] = _Literal(inline)
            elif index < len(tokens):
                bound[canonical], index = _parse_value(tokens, index, known)
            else:
                raise _NotSimulated
            if canonical in positional:
                positional.remove(canonical)
        else:
            if not positional:
                raise _NotSimulated
            bound[positional.pop(0)], index = _parse_value(tokens, index, known)
    return _Call(spec.name, bound, (), head.start, end)


def _parameter(spec: _CmdletSpec, given: str) -> tuple[str, bool]:
    names = {n.lower(): (n, False) for n in (*spec.values, *_COMMON_VALUES)}
    names.update({n.lower(): (n, True) for n in spec.switches})
    for alias, target in (*spec.aliases, *_COMMON_ALIASES):
        names[alias.lower()] = names[target.lower()]
    given = given.lower()
    if given in names:
        return names[given]
    matches = {names[n] for n in names if n.startswith(given)} if given else set()
    if len(matches) != 1:
        raise _NotSimulated
    return matches.pop()


def _parse_value(tokens: list[_Tok], index: int, known: set[str]) -> tuple[Any, int]:
    """A value, or a comma-separated array of values."""
    first, index = _parse_single(tokens, index, known)
    items = [first]
    while index < len(tokens) and tokens[index].kind == "comma":
        item, index = _parse_single(tokens, index + 1, known)
        items.append(item)
    return (first if len(items) == 1 else _Array(tuple(items))), index


def _parse_single(tokens: list[_Tok], index: int, known: set[str]) -> tuple[Any, int]:
    if index >= len(tokens):
        raise _NotSimulated
    token = tokens[index]
    if token.kind in ("str", "word"):
        if token.kind == "word" and token.text.startswith("-") and not _is_number(token.text):
            raise _NotSimulated  # a parameter where a value belongs
        return _Literal(token.text), index + 1
    if token.kind == "var":
        if token.text not in known and token.text not in _AUTOMATIC:
            raise _NotSimulated  # an undefined variable: $null in PowerShell, never meant
        if token.text in _AUTOMATIC:
            return _Literal(_AUTOMATIC[token.text]), index + 1
        return _Var(token.text, token.members), index + 1
    if token.kind == "group":
        inner = _tokens(token.text, token.start + 1)
        if not inner:
            raise _NotSimulated
        if inner[0].kind == "word" and not _is_number(inner[0].text):
            return _Sub(_parse_call(inner, known), token.members), index + 1
        value, rest = _parse_value(inner, 0, known)
        if rest != len(inner) or token.members:
            raise _NotSimulated
        return value, index + 1
    raise _NotSimulated


# --- what cmdlets return -----------------------------------------------------------------------


@dataclass(frozen=True)
class _TncResult:
    computer: str
    remote: str | None  # None when the name did not resolve
    port: int | None
    alias: str
    source: str
    tcp: bool | None  # None when only a ping was asked for


@dataclass(frozen=True)
class _DnsRecord:
    name: str
    ip: str
    ttl: int


@dataclass(frozen=True)
class _ServerAddress:
    alias: str
    index: int
    family: str
    servers: tuple[str, ...]


@dataclass(frozen=True)
class _FileItem:
    """Get-Item on a ServiceAccount file: the symlink itself, whose own Length is 0."""

    name: str
    written: str


_LOOPBACK = (1, "Loopback Pseudo-Interface 1")
_LOOPBACK_V6_DNS = ("fec0:0:0:ffff::1", "fec0:0:0:ffff::2", "fec0:0:0:ffff::3")
_COMMON_PORTS = {"http": 80, "rdp": 3389, "smb": 445, "winrm": 5985}


def _properties(value: Any) -> dict[str, Any]:
    if isinstance(value, Adapter):
        return {
            "name": value.alias,
            "interfacealias": value.alias,
            "ifalias": value.alias,
            "ifindex": value.if_index,
            "interfaceindex": value.if_index,
            "interfacedescription": value.description,
            "macaddress": value.mac,
            "status": "Up",
            "linkspeed": "10 Gbps",
        }
    if isinstance(value, _TncResult):
        return {
            "computername": value.computer,
            "remoteaddress": value.remote,
            "remoteport": value.port,
            "interfacealias": value.alias,
            "sourceaddress": value.source,
            "tcptestsucceeded": bool(value.tcp),
            "pingsucceeded": False,
            "namesolutionsucceeded": value.remote is not None,
        }
    if isinstance(value, _DnsRecord):
        return {
            "name": value.name,
            "type": "A",
            "ttl": value.ttl,
            "section": "Answer",
            "ipaddress": value.ip,
            "ip4address": value.ip,
        }
    if isinstance(value, _ServerAddress):
        return {
            "interfacealias": value.alias,
            "interfaceindex": value.index,
            "addressfamily": value.family,
            "serveraddresses": list(value.servers),
        }
    if isinstance(value, _FileItem):
        return {
            "name": value.name,
            "fullname": _sa_path(value.name),
            "length": 0,
            "linktype": "SymbolicLink",
            "mode": "-a---l",
        }
    return {}


def _member(value: Any, name: str) -> Any:
    """`value.Name` with PowerShell's rules: `$null.Length` is 0, arrays enumerate members."""
    key = name.lower()
    if value is None:
        return 0 if key in ("length", "count") else None
    if isinstance(value, list):
        if key in ("length", "count"):
            return len(value)
        found: list[Any] = []
        for item in value:
            member = _member(item, name)
            if isinstance(member, list):
                found += member
            elif member is not None:
                found.append(member)
        return _unwrap(found)
    if isinstance(value, str) and key == "length":
        return len(value)
    if key == "count":
        return 1
    return _properties(value).get(key)


def _unwrap(values: list[Any]) -> Any:
    """A pipeline's output: nothing is $null, one object is that object."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | str):
        return str(value)
    raise _NotSimulated


def _texts(value: Any) -> list[str]:
    return [_text(item) for item in value] if isinstance(value, list) else [_text(value)]


def _integer(value: Any) -> int:
    text = _text(value)
    if not _is_number(text):
        raise _NotSimulated
    return int(text)


def _ellipsize(text: str) -> str:
    """How PowerShell shortens a target in CategoryInfo."""
    return text if len(text) <= 40 else f"{text[:15]}...{text[-15:]}"


def _table(
    columns: Sequence[tuple[str, int, bool]],
    rows: Sequence[Sequence[str]],
    second_header: Sequence[str] | None = None,
) -> list[str]:
    """Format-Table: (title, width, right-aligned) columns; a last left-aligned column takes
    what is left of the line. Titles are left-aligned."""

    def cell(text: str, width: int, right: bool, last: bool) -> str:
        if len(text) > width and not last:
            text = text[: width - 3] + "..."
        if right:
            return text.rjust(width)
        return text if last else text.ljust(width)

    def line(values: Sequence[str], titles: bool = False) -> str:
        return " ".join(
            cell(v, w, r and not titles, i == len(columns) - 1)
            for i, (v, (_, w, r)) in enumerate(zip(values, columns, strict=True))
        )

    head = [line([title for title, _, _ in columns], titles=True).rstrip()]
    if second_header:
        head.append(line(second_header, titles=True).rstrip())
    dashes = line(
        [
            "-" * len(max(title, second_header[i] if second_header else "", key=len))
            for i, (title, _, _) in enumerate(columns)
        ],
        titles=True,
    )
    return ["", *head, dashes.rstrip(), *(line(row).rstrip() for row in rows), "", ""]


def _format_list(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return ["", *(f"{label.ljust(width)} : {value}".rstrip() for label, value in rows), "", ""]


def _format(value: Any) -> list[str]:
    """Out-Default: how a value shows on the console."""
    if value is None:
        return []
    if isinstance(value, list):
        if value and all(isinstance(v, _DnsRecord) for v in value):
            return _table(
                [
                    ("Name", 46, False),
                    ("Type", 6, False),
                    ("TTL", 5, False),
                    ("Section", 10, False),
                    ("IPAddress", 0, False),
                ],
                [(r.name, "A", str(r.ttl), "Answer", r.ip) for r in value],
            )
        if value and all(isinstance(v, _ServerAddress) for v in value):
            return _table(
                [
                    ("InterfaceAlias", 28, False),
                    ("Interface", 9, True),
                    ("Address", 7, False),
                    ("ServerAddresses", 0, False),
                ],
                [
                    (s.alias, str(s.index), s.family, "{" + ", ".join(s.servers) + "}")
                    for s in value
                ],
                ["", "Index", "Family", ""],
            )
        return [line for item in value for line in _format(item)]
    if isinstance(value, bool):
        return [str(value)]
    if isinstance(value, int | str):
        return str(value).splitlines() or [""]
    if isinstance(value, _DnsRecord | _ServerAddress):
        return _format([value])
    if isinstance(value, Adapter):
        return _table(
            [
                ("Name", 25, False),
                ("InterfaceDescription", 39, False),
                ("ifIndex", 7, True),
                ("Status", 12, False),
                ("MacAddress", 22, False),
                ("LinkSpeed", 9, True),
            ],
            [(value.alias, value.description, str(value.if_index), "Up", value.mac, "10 Gbps")],
        )
    if isinstance(value, _TncResult):
        return _format_list(_tnc_rows(value))
    if isinstance(value, _FileItem):
        return [
            "",
            "",
            f"    Directory: {SA_DIR}",
            "",
            "",
            f"{'Mode':<21}{'LastWriteTime':<13}{'Length':>15} Name",
            f"{'----':<21}{'-------------':<13}{'------':>15} ----",
            f"{'-a---l':<6} {value.written:>27} {0:>14} {value.name}",
            "",
            "",
        ]
    return [str(value)]


def _tnc_rows(result: _TncResult) -> list[tuple[str, str]]:
    if result.remote is None:
        return [
            ("ComputerName", result.computer),
            ("RemoteAddress", ""),
            ("InterfaceAlias", ""),
            ("SourceAddress", ""),
            ("PingSucceeded", "False"),
        ]
    rows = [("ComputerName", result.computer), ("RemoteAddress", result.remote)]
    if result.port is not None:
        rows.append(("RemotePort", str(result.port)))
    rows += [("InterfaceAlias", result.alias), ("SourceAddress", result.source)]
    if not result.tcp:  # a failed (or no) TCP test falls back to a ping, which always fails
        rows += [("PingSucceeded", "False"), ("PingReplyDetails (RTT)", "0 ms")]
    if result.tcp is not None:
        rows.append(("TcpTestSucceeded", str(result.tcp)))
    return rows


def _written(pod: Obj) -> str:
    """The pod's start time as Get-Item shows LastWriteTime (`5/13/2024   9:02 AM`)."""
    stamp = str((pod.get("status") or {}).get("startTime") or "2024-01-01T00:00:00Z")
    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)", stamp)
    if not match:
        return "1/1/2024  12:00 AM"
    year, month, day, hour, minute = (int(g) for g in match.groups())
    clock = f"{(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
    return f"{month}/{day}/{year} {clock:>8}"


@dataclass(frozen=True)
class _Problem:
    """What an error record says: message, CategoryInfo, FullyQualifiedErrorId, command."""

    message: str
    category: str
    error_id: str
    command: str | None


def _path_not_found(name: str, command: str, error_class: str) -> _Problem:
    path = _sa_path(name)
    return _Problem(
        f"Cannot find path '{path}' because it does not exist.",
        f"ObjectNotFound: ({_ellipsize(path)}:String) [{command}], ItemNotFoundException",
        f"PathNotFound,Microsoft.PowerShell.Commands.{error_class}",
        command,
    )


class _Terminate(Exception):
    """A terminating error (`-ErrorAction Stop`): the script ends with exit code 1."""


class _Script:
    """One PowerShell -Command / -EncodedCommand run."""

    def __init__(self, pod: _Pod, core: bool, text: str) -> None:
        self.pod = pod
        self.core = core  # pwsh (PowerShell 7) rather than Windows PowerShell 5.1
        self.text = text
        self.variables: dict[str, Any] = {}
        self.preferences = {"erroractionpreference": "continue", "warningpreference": "continue"}
        self.out: list[str] = []
        self.err: list[str] = []
        self.succeeded = True
        self.statement: _Statement | None = None
        self.handlers: dict[str, Callable[[_Call, dict[str, Any]], Any]] = {
            "Resolve-DnsName": self.resolve_dns_name,
            "Test-NetConnection": self.test_net_connection,
            "Get-Content": self.get_content,
            "Get-Item": self.get_item,
            "Get-NetAdapter": self.get_net_adapter,
            "Get-DnsClientServerAddress": self.get_dns_client_server_address,
            "Set-DnsClientServerAddress": self.set_dns_client_server_address,
            "Set-DnsClient": self.set_dns_client,
        }

    def run(self) -> ExecResult:
        known: set[str] = set()
        statements = [
            _parse_statement(text, offset, self.text, known)
            for text, offset in _statements(self.text)
        ]
        if not statements:
            raise _NotSimulated
        try:
            for statement in statements:
                self.statement, self.succeeded = statement, True
                self.execute(statement)
        except _Terminate:
            self.succeeded = False
        return ExecResult("".join(self.out), "".join(self.err), 0 if self.succeeded else 1)

    def execute(self, statement: _Statement) -> None:
        value = self.evaluate(statement.node)
        if statement.assign in self.preferences:
            self.preferences[statement.assign] = _text(value).lower()
        elif statement.assign in _PREFERENCES:
            return  # progress, confirmation and verbose output do not exist here
        elif statement.assign:
            self.variables[statement.assign] = value
        else:
            self.out.append(_lines(_format(value)))

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Array):
            return [self.evaluate(item) for item in node.items]
        if isinstance(node, _Var):
            return self.members(self.variables.get(node.name), node.members)
        if isinstance(node, _Sub):
            return self.members(self.call(node.call), node.members)
        if isinstance(node, _Call):
            return self.call(node)
        if isinstance(node, _Static):
            return self.members(self.read_all_text(node), node.members)
        raise _NotSimulated

    @staticmethod
    def members(value: Any, names: Sequence[str]) -> Any:
        for name in names:
            value = _member(value, name)
        return value

    def call(self, call: _Call) -> Any:
        if call.command in _NATIVE:
            result = self.pod.run(
                [call.command, *(_text(self.evaluate(a)) for a in call.native_args)]
            )
            self.native_errors(call, result.stderr)
            self.succeeded = result.exit_code == 0
            return _unwrap(result.stdout.splitlines())
        args = {name: self.evaluate(node) for name, node in call.args.items()}
        return self.handlers[call.command](call, args)

    # --- errors and warnings ----------------------------------------------------------------
    def error(self, where: _Call | _Static, args: dict[str, Any], problem: _Problem) -> None:
        """A non-terminating error as PowerShell prints it on a redirected stderr."""
        self.succeeded = False
        action = _text(args.get("ErrorAction", self.preferences["erroractionpreference"])).lower()
        if action not in ("silentlycontinue", "ignore"):
            self.err.append(self.render(where, problem))
        if action == "stop":
            raise _Terminate

    def render(self, where: _Call | _Static, problem: _Problem) -> str:
        if self.core:
            # PowerShell 7's concise view: one line, the command (or exception type) first.
            source = problem.command or problem.category.rsplit(", ", 1)[-1]
            return f"{source}: {problem.message}{CRLF}"
        assert self.statement is not None
        column = where.start - self.statement.line_start + 1
        return _lines(
            [
                f"{problem.command} : {problem.message}" if problem.command else problem.message,
                f"At line:{self.statement.line} char:{column}",
                f"+ {self.statement.line_text}",
                f"+ {' ' * (column - 1)}{'~' * max(1, where.end - where.start)}",
                f"    + CategoryInfo          : {problem.category}",
                f"    + FullyQualifiedErrorId : {problem.error_id}",
                " ",
            ]
        )

    def native_errors(self, call: _Call, stderr: str) -> None:
        """Windows PowerShell turns a native program's stderr lines into error records when
        its own stderr is redirected (as it is under exec); PowerShell 7 passes them on."""
        lines = stderr.splitlines()
        if not lines:
            return
        if self.core:
            self.err.append(_lines(lines))
            return
        self.err.append(
            self.render(
                call,
                _Problem(
                    lines[0],
                    f"NotSpecified: ({_ellipsize(lines[0])}:String) [], RemoteException",
                    "NativeCommandError",
                    call.command,
                ),
            )
        )
        self.err.append(_lines(lines[1:]))

    def warn(self, args: dict[str, Any], message: str) -> None:
        action = _text(args.get("WarningAction", self.preferences["warningpreference"])).lower()
        if action not in ("silentlycontinue", "ignore"):
            self.out.append(f"WARNING: {message}{CRLF}")

    # --- cmdlets -----------------------------------------------------------------------------
    @property
    def world(self) -> World:
        return self.pod.world

    def resolve_dns_name(self, call: _Call, args: dict[str, Any]) -> Any:
        if "Name" not in args:
            raise _NotSimulated
        name = _text(args["Name"])
        if _text(args.get("Type", "A_AAAA")).lower() not in ("a", "a_aaaa") or network.is_ip(name):
            raise _NotSimulated  # only A questions; reverse lookups are not modelled
        servers = _texts(args["Server"]) if "Server" in args else None
        if servers is not None and not all(network.is_ip(s) for s in servers):
            raise _NotSimulated
        resolution = network.resolve(self.world, self.pod.pod, name, servers)
        if resolution.answer is not None:
            answer = resolution.answer
            return _unwrap([_DnsRecord(answer.name, ip, answer.ttl) for ip in answer.addresses])
        if resolution.outcome is Outcome.TIMEOUT:
            message, category, code = (
                "This operation returned because the timeout period expired",
                "OperationTimeout",
                "ERROR_TIMEOUT",
            )
        else:
            message, category, code = (
                "DNS name does not exist",
                "ResourceUnavailable",
                "DNS_ERROR_RCODE_NAME_ERROR",
            )
        self.error(
            call,
            args,
            _Problem(
                f"{name} : {message}",
                f"{category}: ({_ellipsize(name)}:String) [Resolve-DnsName], Win32Exception",
                f"{code},Microsoft.DnsClient.Commands.ResolveDnsName",
                "Resolve-DnsName",
            ),
        )
        return None

    def test_net_connection(self, call: _Call, args: dict[str, Any]) -> Any:
        if "ComputerName" not in args or ("Port" in args and "CommonTCPPort" in args):
            raise _NotSimulated
        level = _text(args.get("InformationLevel", "Detailed")).lower()
        if level not in ("detailed", "quiet") or (
            level == "detailed" and "InformationLevel" in args
        ):
            raise _NotSimulated  # -InformationLevel Detailed prints more than is modelled
        target = _text(args["ComputerName"])
        port = _integer(args["Port"]) if "Port" in args else None
        if "CommonTCPPort" in args:
            port = _COMMON_PORTS.get(_text(args["CommonTCPPort"]).lower())
            if port is None:
                raise _NotSimulated
        net = self.pod.adapter
        remote: str | None = target
        if not network.is_ip(target):
            resolution = network.resolve(self.world, self.pod.pod, target)
            remote = resolution.answer.addresses[0] if resolution.answer else None
        if remote is None:
            self.warn(args, f"Name resolution of {target} failed")
            result = _TncResult(target, None, port, net.alias, net.ipv4, None)
        else:
            tcp = (
                None if port is None else network.reachable(self.world, self.pod.pod, remote, port)
            )
            if tcp is False:
                self.warn(args, f"TCP connect to ({remote} : {port}) failed")
            if not tcp:
                self.warn(args, f"Ping to {remote} failed with status: TimedOut")
            result = _TncResult(target, remote, port, net.alias, net.ipv4, tcp)
        if level == "quiet":
            return bool(result.tcp)
        return result

    def sa_error(
        self, call: _Call, args: dict[str, Any], path: str, command: str, error_class: str
    ) -> None:
        """Get-Content / Get-Item on a ServiceAccount path that cannot be read."""
        name = _sa_file(path) or ""
        if network.token_mounted(self.pod.pod) and name in SA_FILES:
            # moby#28401: the symlink's target is out of reach through the volume mount.
            self.error(
                call,
                args,
                _Problem(
                    f"Could not find a part of the path '{_sa_path(name)}'.",
                    f"ObjectNotFound: ({_ellipsize(_sa_path(name))}:String) [{command}], "
                    "DirectoryNotFoundException",
                    f"{command.replace('-', '')}ReaderDirectoryNotFoundError,"
                    f"Microsoft.PowerShell.Commands.{error_class}",
                    command,
                ),
            )
            return
        self.error(call, args, _path_not_found(name, command, error_class))

    def get_content(self, call: _Call, args: dict[str, Any]) -> Any:
        path = _text(args.get("Path", args.get("LiteralPath", "")))
        name = _sa_file(path)
        if name is None:
            raise _NotSimulated
        content = self.pod.sa_content(name)
        if content is None:
            self.sa_error(call, args, path, "Get-Content", "GetContentCommand")
            return None
        return content if args.get("Raw") else _unwrap(content.splitlines())

    def get_item(self, call: _Call, args: dict[str, Any]) -> Any:
        path = _text(args.get("Path", args.get("LiteralPath", "")))
        name = _sa_file(path)
        if name is None:
            raise _NotSimulated
        if not network.token_mounted(self.pod.pod) or name not in SA_FILES:
            self.error(call, args, _path_not_found(name, "Get-Item", "GetItemCommand"))
            return None
        # The link exists on every build; only following it fails on old ones.
        return _FileItem(name, _written(self.pod.pod))

    def read_all_text(self, node: _Static) -> Any:
        name = _sa_file(node.path)
        if name is None:
            raise _NotSimulated
        content = self.pod.sa_content(name)
        if content is not None:
            return content
        folder_reachable = network.token_readable(self.world, self.pod.pod)
        inner, error_id = (
            (f"Could not find file '{_sa_path(name)}'.", "FileNotFoundException")
            if folder_reachable
            else (
                f"Could not find a part of the path '{_sa_path(name)}'.",
                "DirectoryNotFoundException",
            )
        )
        self.error(
            node,
            {},
            _Problem(
                f'Exception calling "ReadAllText" with "1" argument(s): "{inner}"',
                "NotSpecified: (:) [], MethodInvocationException",
                error_id,
                None,
            ),
        )
        return None

    def not_found(
        self, call: _Call, args: dict[str, Any], cim_class: str, prop: str, value: str
    ) -> None:
        kind = "UInt32" if prop == "InterfaceIndex" else "String"
        self.error(
            call,
            args,
            _Problem(
                f"No {cim_class} objects found with property '{prop}' equal to '{value}'.  Verify "
                "the value of the property and retry.",
                f"ObjectNotFound: ({value}:{kind}) [{call.command}], CimJobException",
                f"CmdletizationQuery_NotFound_{prop},{call.command}",
                call.command,
            ),
        )

    def interfaces(
        self, call: _Call, args: dict[str, Any], cim_class: str, include_loopback: bool
    ) -> list[tuple[int, str]] | None:
        """The interfaces -InterfaceIndex / -InterfaceAlias pick, None after an error."""
        net = self.pod.adapter
        chosen = [(net.if_index, net.alias), *([_LOOPBACK] if include_loopback else [])]
        if "InterfaceIndex" in args:
            indexes = [
                _integer(v)
                for v in (
                    args["InterfaceIndex"]
                    if isinstance(args["InterfaceIndex"], list)
                    else [args["InterfaceIndex"]]
                )
            ]
            for index in indexes:
                if not any(i == index for i, _ in chosen):
                    self.not_found(call, args, cim_class, "InterfaceIndex", str(index))
                    return None
            chosen = [c for c in chosen if c[0] in indexes]
        if "InterfaceAlias" in args:
            patterns = _texts(args["InterfaceAlias"])
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(a.lower(), pattern.lower()) for _, a in chosen):
                    self.not_found(call, args, cim_class, "InterfaceAlias", pattern)
                    return None
            chosen = [
                c
                for c in chosen
                if any(fnmatch.fnmatchcase(c[1].lower(), p.lower()) for p in patterns)
            ]
        return chosen

    def get_net_adapter(self, call: _Call, args: dict[str, Any]) -> Any:
        net = self.pod.adapter
        if "Name" in args:
            pattern = _text(args["Name"])
            if not fnmatch.fnmatchcase(net.alias.lower(), pattern.lower()):
                self.not_found(call, args, "MSFT_NetAdapter", "Name", pattern)
                return None
        if "InterfaceIndex" in args and _integer(args["InterfaceIndex"]) != net.if_index:
            self.not_found(
                call, args, "MSFT_NetAdapter", "InterfaceIndex", _text(args["InterfaceIndex"])
            )
            return None
        return net

    def get_dns_client_server_address(self, call: _Call, args: dict[str, Any]) -> Any:
        chosen = self.interfaces(call, args, "MSFT_DNSClientServerAddress", True)
        if chosen is None:
            return None
        family = _text(args.get("AddressFamily", "")).lower()
        families = {
            "": ("IPv4", "IPv6"),
            "ipv4": ("IPv4",),
            "2": ("IPv4",),
            "ipv6": ("IPv6",),
            "23": ("IPv6",),
        }.get(family)
        if families is None:
            raise _NotSimulated
        net = self.pod.adapter
        entries = []
        for index, alias in chosen:
            for fam in families:
                if index == net.if_index:
                    servers = net.dns_servers if fam == "IPv4" else ()
                else:
                    servers = _LOOPBACK_V6_DNS if fam == "IPv6" else ()
                entries.append(_ServerAddress(alias, index, fam, tuple(servers)))
        return _unwrap(entries)

    def pod_interface(self, call: _Call, args: dict[str, Any], cim_class: str) -> bool:
        """Whether -InterfaceIndex / -InterfaceAlias name the pod's adapter (errors if not)."""
        if ("InterfaceIndex" in args) == ("InterfaceAlias" in args):
            raise _NotSimulated
        chosen = self.interfaces(call, args, cim_class, True)
        if chosen is None:
            return False
        if chosen != [(self.pod.adapter.if_index, self.pod.adapter.alias)]:
            raise _NotSimulated  # changing the loopback interface's DNS is not modelled
        return True

    def set_dns_client_server_address(self, call: _Call, args: dict[str, Any]) -> Any:
        reset = bool(args.get("ResetServerAddresses"))
        if reset == ("ServerAddresses" in args):
            raise _NotSimulated
        servers = None if reset else _texts(args["ServerAddresses"])
        if servers is not None and not all(network.is_ip(s) for s in servers):
            raise _NotSimulated
        if self.pod_interface(call, args, "MSFT_DNSClientServerAddress"):
            network.set_dns_servers(self.world, self.pod.pod, servers)
        return None

    def set_dns_client(self, call: _Call, args: dict[str, Any]) -> Any:
        if "ConnectionSpecificSuffix" not in args:
            raise _NotSimulated
        suffix = _text(args["ConnectionSpecificSuffix"])
        if self.pod_interface(call, args, "MSFT_DNSClient"):
            network.set_dns_suffix(self.world, self.pod.pod, suffix)
        return None
