"""The `/winpod` subcommands: parsing and validation of what a person typed, before any call."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from handlers import names
from handlers.errors import BadInput
from handlers.i18n import N_, _

Parsed = dict[str, str]
# Slack caps what can be typed in the message box at 4,000 characters; more is no command, and
# shlex would spend seconds on megabytes of it.
MAX_TEXT = 4000


class UsageError(Exception):
    """What was wrong with the command and the form that would have worked."""

    def __init__(self, problem: str, right_form: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.right_form = right_form


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    description: str
    example: str
    parse: Callable[[list[str]], Parsed]


def _no_args(args: list[str]) -> Parsed:
    if args:
        raise BadInput(_("unexpected {text}").format(text=repr(" ".join(args)[:40])))
    return {}


def _one(label: str, check: Callable[[str], object]) -> Callable[[list[str]], Parsed]:
    def parse(args: list[str]) -> Parsed:
        if len(args) != 1:
            raise BadInput(_("expected exactly one {label}").format(label=label))
        check(args[0])
        return {label: args[0]}

    return parse


def _count(args: list[str]) -> Parsed:
    if not args:
        return {"last": "20"}
    # isascii: str.isdigit() also accepts characters such as '²' that int() refuses
    digits = len(args) == 1 and args[0].isascii() and args[0].isdigit()
    if not digits or not 1 <= int(args[0]) <= 200:
        raise BadInput(_("expected a number of entries between 1 and 200"))
    return {"last": args[0]}


def _rdp(args: list[str]) -> Parsed:
    if not args or args[0] not in ("open", "close", "list"):
        raise BadInput(_("expected open, close or list"))
    action, rest = args[0], args[1:]
    if action == "list":
        if rest:
            raise BadInput(_("rdp list takes nothing more"))
        return {"action": "list"}
    if not rest:
        raise BadInput(_("rdp {action} needs a NODE").format(action=action))
    parsed = {"action": action, "node": names.node_name(rest[0])}
    for option in rest[1:]:
        key, _sep, value = option.partition("=")
        if action != "open" or key not in ("ttl", "from") or not value:
            raise BadInput(_("unexpected {text}").format(text=repr(option[:40])))
        parsed[key] = value
    return parsed


def _check_id(value: str) -> None:
    if not value or len(value) > 64 or not all(c.isalnum() or c == "-" for c in value):
        raise BadInput(_("{value} is not a check id").format(value=repr(value[:40])))


class CommandTable:
    """The subcommands that exist, in the order `help` lists them; later features add theirs."""

    def __init__(self, subcommands: list[Subcommand]) -> None:
        self._by_name = {s.name: s for s in subcommands}

    def all(self) -> list[Subcommand]:
        return list(self._by_name.values())

    def parse(self, text: str) -> tuple[Subcommand, Parsed]:
        if len(text) > MAX_TEXT:
            raise UsageError(
                _("the command is {length} characters long; at most {limit} are read").format(
                    length=len(text), limit=MAX_TEXT
                ),
                "/winpod help",
            )
        try:
            words = shlex.split(text or "")
        except ValueError:
            raise UsageError(_("unbalanced quotes"), "/winpod help") from None
        # `cluster=NAME` may stand anywhere (SPEC §12); the caller resolves the name.
        clusters = [w.partition("=")[2] for w in words if w.lower().startswith("cluster=")]
        words = [w for w in words if not w.lower().startswith("cluster=")]
        if len(clusters) > 1 or (clusters and not clusters[0]):
            raise UsageError(_("name one cluster, as cluster=NAME"), "/winpod clusters")
        if not words:
            return self._by_name["help"], {}
        name, args = words[0].lower(), words[1:]
        subcommand = self._by_name.get(name)
        if subcommand is None:
            known = ", ".join(self._by_name)
            raise UsageError(
                _("unknown subcommand {name} (known: {known})").format(
                    name=repr(name[:40]), known=known
                ),
                "/winpod help",
            )
        try:
            parsed = subcommand.parse(args)
        except BadInput as exc:
            raise UsageError(str(exc), f"/winpod {subcommand.usage}") from None
        return subcommand, {**parsed, "cluster": clusters[0]} if clusters else parsed


def default_commands() -> CommandTable:
    return CommandTable(
        [
            Subcommand("help", "help", N_("what winpod can do"), "/winpod help", _no_args),
            Subcommand(
                "diagnose",
                "diagnose NAMESPACE/POD",
                N_("diagnose a Windows pod and post the findings here"),
                "/winpod diagnose web/iis-0",
                _one("pod", names.pod_ref),
            ),
            Subcommand(
                "node",
                "node NODE",
                N_("diagnose a Windows node"),
                "/winpod node akswin000001",
                _one("node", names.node_name),
            ),
            Subcommand(
                "sweep",
                "sweep",
                N_("check DNS on every rebooted Windows node now and post the summary"),
                "/winpod sweep",
                _no_args,
            ),
            Subcommand(
                "clusters",
                "clusters",
                N_(
                    "the clusters winpod serves, whether they answer, and their Windows nodes; "
                    "add cluster=NAME to any command to act in one of them"
                ),
                "/winpod clusters",
                _no_args,
            ),
            Subcommand(
                "explain",
                "explain CHECK_ID",
                N_("the knowledge behind a check"),
                "/winpod explain dns-after-reboot",
                _one("check", _check_id),
            ),
            Subcommand(
                "audit",
                "audit [N]",
                N_("the last N audit entries (default 20)"),
                "/winpod audit 10",
                _count,
            ),
            Subcommand(
                "rdp",
                "rdp open NODE [ttl=30m] [from=CIDR] | rdp close NODE | rdp list",  # i18n: syntax
                N_("RDP to a Windows node through a LoadBalancer, after two approvals"),
                "/winpod rdp open akswin000001 ttl=1h",
                _rdp,
            ),
        ]
    )
