"""The `winpod` command line: diagnose, node, explain, sim and demo (SPEC §2)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from bot import render_text
from config.settings import ConfigError, Settings, load_settings
from handlers import engine, i18n, names
from handlers.checks import default_registry
from handlers.errors import BadInput, WinpodError
from handlers.i18n import _
from handlers.model import Diagnosis

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2  # 3 (environment): WinpodError.exit_code
EXIT_ENVIRONMENT = 3


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but add the fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(
            EXIT_BAD_INPUT,
            _("winpod: {message} (see `{prog} --help`)").format(message=message, prog=self.prog)
            + "\n",
        )


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (argparse reports anything else as
    a usage error, exit 2, instead of letting a huge number overflow later)."""

    def parse(text: str) -> int:
        value = text.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 12) or not (
            low <= int(value) <= high
        ):
            raise argparse.ArgumentTypeError(
                _("expected a whole number from {low} to {high}").format(low=low, high=high)
            )
        return int(value)

    parse.__name__ = "number"  # argparse names the type in its message
    return parse


MAX_AUDIT_ENTRIES = 10_000
PORT = _bounded(0, 65535)


def _settings(args: argparse.Namespace) -> Settings:
    """The settings as the chosen cluster sees them (`--cluster`, else the default one); an
    unknown cluster is a usage error listing the clusters."""
    settings = load_settings(args.config)
    settings = settings.for_cluster(settings.resolve_cluster(getattr(args, "cluster", None)))
    if not args.locale:
        i18n.use(settings.locale)  # `--locale` (applied in `main`) wins over the settings
    if args.context:
        kube = settings.kubernetes.model_copy(update={"context": args.context})
        settings = settings.model_copy(update={"kubernetes": kube})
    return settings


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _print_diagnosis(diagnosis: Diagnosis, output: str, cluster: str) -> int:
    if output == "json":
        print(render_text.diagnosis_json(diagnosis, cluster))
    else:
        print(render_text.diagnosis_text(diagnosis, _colour()))
    return EXIT_FINDINGS if diagnosis.has_errors else EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    from bot.wiring import build_transports  # noqa: PLC0415 - keeps `winpod --help` fast

    names.pod_ref(args.pod)  # reject a malformed reference before any connection is made
    settings = _settings(args)
    diagnosis = engine.diagnose_pod(build_transports(settings), settings, args.pod)
    return _print_diagnosis(diagnosis, args.output, settings.cluster)


def cmd_node(args: argparse.Namespace) -> int:
    from bot.wiring import build_transports  # noqa: PLC0415

    names.node_name(args.node)
    settings = _settings(args)
    diagnosis = engine.diagnose_node(build_transports(settings), settings, args.node)
    return _print_diagnosis(diagnosis, args.output, settings.cluster)


def cmd_explain(args: argparse.Namespace) -> int:
    registry = default_registry()
    spec = registry.get(args.check_id)
    if spec is None:
        known = "\n".join(f"  {s.id:24} {_(s.title)}" for s in registry.all())
        print(
            _("winpod: unknown check {check}; the checks are:\n{known}").format(
                check=repr(args.check_id), known=known
            ),
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(render_text.explain_text(spec))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.logs import configure_logging  # noqa: PLC0415
    from bot.serve import serve  # noqa: PLC0415

    configure_logging()
    return serve(_settings(args), args.host, args.port, args.metrics_port)


def cmd_sweep(args: argparse.Namespace) -> int:
    from bot.sweep_cli import sweep  # noqa: PLC0415

    return sweep(_settings(args), args.output)


def cmd_clusters(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from bot.clusters import cluster_statuses  # noqa: PLC0415
    from bot.wiring import build_transports  # noqa: PLC0415

    settings = load_settings(args.config)
    statuses = cluster_statuses(settings, lambda name: build_transports(settings.for_cluster(name)))
    if args.output == "json":
        print(json.dumps({"clusters": [s.to_json() for s in statuses]}, indent=2))
    else:
        print(render_text.clusters_text(statuses))
    return EXIT_OK if all(s.reachable for s in statuses) else EXIT_ENVIRONMENT


def cmd_rdp(args: argparse.Namespace) -> int:
    from bot.rdp_cli import rdp_command  # noqa: PLC0415

    if args.action != "list":
        if not args.node:
            raise BadInput(_("rdp {action} needs a NODE").format(action=args.action))
        names.node_name(args.node)
    return rdp_command(_settings(args), args.action, args.node, args.ttl, args.source, args.yes)


def cmd_remediate(args: argparse.Namespace) -> int:
    from bot.remediate_cli import remediate  # noqa: PLC0415

    return remediate(_settings(args), args.remediation, args.target, args.dry_run, args.yes)


def cmd_audit(args: argparse.Namespace) -> int:
    from bot.remediate_cli import audit  # noqa: PLC0415

    return audit(_settings(args), args.last)


def cmd_sim(args: argparse.Namespace) -> int:
    from sim.server import Ports, main  # noqa: PLC0415

    return main(args.scenario, args.out, Ports(winrm=args.winrm_port))


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo  # noqa: PLC0415

    return run_demo(colour=_colour(), interactive_mode=args.interactive, locale=i18n.current())


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", help=_("settings YAML (default: $WINPOD_CONFIG, else built-in defaults)")
    )
    common.add_argument("--context", help=_("kubeconfig context (default: kubernetes.context)"))
    common.add_argument(
        "--cluster", help=_("which of the configured clusters (default: default_cluster)")
    )
    common.add_argument(
        "--locale", choices=i18n.LOCALES, help=_("the language of the text (default: locale)")
    )
    language = _Parser(add_help=False)
    language.add_argument(
        "--locale",
        choices=i18n.LOCALES,
        help=_("the language of the text (default: $WINPOD_LOCALE, else en)"),
    )
    output = _Parser(add_help=False)
    output.add_argument("--output", "-o", choices=("text", "json"), default="text")

    parser = _Parser(
        prog="winpod",
        description=_("Diagnose and fix Windows pods and nodes on Kubernetes."),
        epilog=_(
            "Exit codes: 0 no error finding, 1 error findings, 2 bad input, 3 the environment "
            "failed."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        parents: Sequence[_Parser],
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        sub.set_defaults(handler=handler)
        return sub

    add(
        "diagnose", cmd_diagnose, _("diagnose one pod (NAMESPACE/POD)"), [common, output]
    ).add_argument("pod", metavar="NAMESPACE/POD")
    add("node", cmd_node, _("diagnose one Windows node"), [common, output]).add_argument(
        "node", metavar="NODE"
    )
    add("explain", cmd_explain, _("the knowledge behind a check"), [common]).add_argument(
        "check_id", metavar="CHECK_ID"
    )
    add(
        "clusters",
        cmd_clusters,
        _("the clusters winpod serves: whether each answers, its Windows nodes"),
        [common, output],
    )
    add("sweep", cmd_sweep, _("one post-reboot DNS sweep over all Windows nodes"), [common, output])
    remediate = add(
        "remediate",
        cmd_remediate,
        _("run one remediation from the terminal (audited as you)"),
        [common],
    )
    remediate.add_argument("remediation", metavar="REMEDIATION_ID")
    remediate.add_argument("target", metavar="TARGET", help=_("NODE, NAMESPACE/POD or `cluster`"))
    remediate.add_argument(
        "--dry-run", action="store_true", help=_("show what would run; run nothing")
    )
    remediate.add_argument("--yes", action="store_true", help=_("do not ask for confirmation"))
    rdp = add("rdp", cmd_rdp, _("RDP access to a Windows node: open, close, list"), [common])
    rdp.add_argument("action", choices=("open", "close", "list"))
    rdp.add_argument("node", metavar="NODE", nargs="?")
    rdp.add_argument("--ttl", help=_("how long it stays open (default rdp.default_ttl)"))
    rdp.add_argument(
        "--from",
        dest="source",
        metavar="CIDR",
        help=_("who may connect (default rdp.source_ranges)"),
    )
    rdp.add_argument("--yes", action="store_true", help=_("do not ask for confirmation"))
    audit = add("audit", cmd_audit, _("the audit log"), [common])
    audit.add_argument("--last", type=_bounded(1, MAX_AUDIT_ENTRIES), default=20, metavar="N")
    serve = add(
        "serve",
        cmd_serve,
        _("run the Slack bot (HTTP, or Socket Mode with an app token)"),
        [common],
    )
    serve.add_argument("--host", default="0.0.0.0", help=_("address to listen on"))
    serve.add_argument("--port", type=PORT, default=3000, help=_("Slack events: /slack/events"))
    serve.add_argument(
        "--metrics-port", type=PORT, default=9090, help=_("/healthz, /readyz and /metrics")
    )
    sim = add("sim", cmd_sim, _("run the simulated Windows cluster until SIGINT/SIGTERM"), [])
    sim.add_argument("--scenario", required=True, help=_("scenario YAML (see sim/README.md)"))
    sim.add_argument("--out", required=True, help=_("directory for kubeconfig, winpod.yaml, …"))
    sim.add_argument("--winrm-port", type=PORT, default=0, help=_("0: any free port"))
    demo = add("demo", cmd_demo, _("the whole story on the embedded simulated cluster"), [language])
    demo.add_argument(
        "--interactive",
        action="store_true",
        help=_("type /winpod commands and press buttons yourself"),
    )
    return parser


def _early_locale(argv: list[str]) -> str:
    """The locale the help texts are built in, before argparse has read `--locale`: the flag's
    value, else $WINPOD_LOCALE, else English (a config file's `locale` applies after parsing)."""
    for index, word in enumerate(argv):
        if word == "--locale" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--locale="):
            return word.partition("=")[2]
    return os.environ.get("WINPOD_LOCALE") or "en"


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    early = _early_locale(words)
    if early in i18n.LOCALES:
        i18n.use(early)  # an unknown one is reported below, by argparse or by `use`
    args = build_parser().parse_args(words)
    locale = getattr(args, "locale", None) or os.environ.get("WINPOD_LOCALE") or "en"
    try:
        i18n.use(locale)
    except ValueError as exc:
        print(f"winpod: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"winpod: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WinpodError as exc:
        print(f"winpod: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(_("winpod: interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (`| head`) went away: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code
