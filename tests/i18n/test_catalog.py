"""The message catalogs (README "Translating"): every wrapped string is in the zh-CN catalog with
a translation that keeps its placeholders, the shipped .mo is the .po compiled, and the modules
declared localised hold no English sentence outside `_()` / `ngettext()` / `N_()`."""

from __future__ import annotations

import ast
import configparser
import gettext
import io
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from config.settings import Settings
from handlers import i18n

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "handlers/locale/zh_CN/LC_MESSAGES/winpod.po"
MO = PO.with_suffix(".mo")
FIX = "run `make catalog`, translate the new msgids in {po}, run `make catalog` again"

# Modules whose every user-facing text is wrapped. A literal with three or more English words
# outside a marker fails the test unless its line says why not (`# i18n: <reason>`); log lines
# and docstrings are never shown and are skipped.
LOCALISED = (
    "bot/render_slack.py",
    "bot/render_actions.py",
    "bot/sweeper.py",
    "bot/render_text.py",
    "bot/render_home.py",
    "handlers/checks/dns_after_reboot.py",
    "handlers/checks/hns_stale_endpoints.py",
    "handlers/checks/port_exhaustion.py",
    "handlers/remediations/hns_endpoint_cleanup.py",
    "handlers/remediations/widen_dynamic_ports.py",
    "handlers/checks/csi_proxy.py",
    "handlers/checks/runtime_wedged.py",
    "handlers/remediations/containerd_restart.py",
    "handlers/remediations/csi_proxy_start.py",
    "handlers/checks/apiserver_unreachable.py",
    "handlers/checks/cni_not_ready.py",
    "handlers/checks/gmsa.py",
    "handlers/checks/hostprocess_pod.py",
    "handlers/checks/image_os_mismatch.py",
    "handlers/checks/image_pull_slow.py",
    "handlers/checks/known_bad_build.py",
    "handlers/checks/linux_pod_on_windows.py",
    "handlers/checks/memory_overcommit.py",
    "handlers/checks/node_clusterip.py",
    "handlers/checks/node_services.py",
    "handlers/checks/os_lifecycle.py",
    "handlers/checks/pause_image.py",
    "handlers/checks/serviceaccount_token.py",
    "handlers/remediations/_node_script.py",
    "handlers/remediations/cni_pod_restart.py",
    "handlers/remediations/dns_keeper.py",
    "handlers/remediations/fix_sandbox_image.py",
    "handlers/remediations/hns_reset.py",
    "handlers/remediations/kube_proxy_restart.py",
    "handlers/remediations/mac_spoofing_on.py",
    "handlers/remediations/pin_windows_build.py",
    "handlers/remediations/pod_dns_override.py",
    "handlers/remediations/rdp_access.py",
    "bot/remediation.py",
    "bot/approvals.py",
    "bot/runtime.py",
    "bot/leader.py",
    "bot/commands.py",
    "bot/demo.py",
    "bot/demo_view.py",
    "bot/cli.py",
    "bot/rdp_cli.py",
    "bot/remediate_cli.py",
    "bot/sweep_cli.py",
    "bot/serve.py",
    "bot/slack_app.py",
    "bot/listeners/actions.py",
    "bot/listeners/commands.py",
    "bot/listeners/events.py",
)
# Modules holding user-facing text not all wrapped yet (what is still English): none today. A
# scanned module with unwrapped English in no list (a new check, remediation or error text)
# fails `test_every_module_is_accounted_for`.
PENDING: dict[str, str] = {}
# Modules whose English is never shown to a Slack or CLI reader (Prometheus HELP texts).
NOT_USER_FACING = ("bot/metrics.py",)
SCANNED = (
    "bot/*.py",
    "bot/listeners/*.py",
    "bot/store/*.py",
    "handlers/*.py",
    "handlers/transports/*.py",
    "handlers/checks/*.py",
    "handlers/remediations/*.py",
)


def _source_messages() -> dict[str, list[str]]:
    """msgid → where it is used, as `make catalog` extracts them (babel.cfg)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "babel.cfg")
    method_map = [(s.split(":", 1)[1].strip(), "python") for s in config.sections()]
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


def _catalog():  # type: ignore[no-untyped-def]
    with PO.open("rb") as f:
        return read_po(f, locale="zh_CN")


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_wrapped_string_is_in_the_catalog_and_nothing_else_is() -> None:
    source = _source_messages()
    catalog = {m.id[0] if isinstance(m.id, tuple) else m.id for m in _catalog() if m.id}
    missing = [f"{where[0]}: {msgid!r}" for msgid, where in source.items() if msgid not in catalog]
    assert not missing, "not in the catalog (" + FIX.format(po=PO) + "):\n" + "\n".join(missing)
    stale = sorted(catalog - set(source))
    assert not stale, "in the catalog but no longer in the code (`make catalog`):\n" + "\n".join(
        map(repr, stale)
    )


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    problems = []
    for message in _catalog():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {ids[0]!r}")
        if not all(strings):
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set().union(*map(_placeholders, ids))
        for translated in strings:
            if _placeholders(translated) != wanted:
                problems.append(f"placeholders differ: {ids[0]!r} → {translated!r}")
    assert not problems, f"{PO}:\n" + "\n".join(problems)


def test_the_shipped_mo_is_the_po_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())
    compiled.seek(0)
    fresh = gettext.GNUTranslations(compiled)
    with MO.open("rb") as f:
        shipped = gettext.GNUTranslations(f)
    assert shipped._catalog == fresh._catalog, f"{MO} is stale: run `make catalog`"  # type: ignore[attr-defined]


def test_the_locales_are_the_settings_locales() -> None:
    assert Settings.model_fields["locale"].annotation.__args__ == i18n.LOCALES  # type: ignore[union-attr]
    for locale in i18n.LOCALES[1:]:
        assert (i18n.LOCALE_DIR / i18n.catalog_name(locale) / "LC_MESSAGES/winpod.mo").is_file()


def _markers(tree: ast.AST) -> set[int]:
    """ids of the string nodes inside a translation marker, a log call or a docstring."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            logged = isinstance(owner, ast.Name) and owner.id in ("log", "logger", "logging")
            if name in ("_", "ngettext", "N_") or logged:
                inside.update(id(n) for arg in node.args for n in ast.walk(arg))
        if isinstance(node, ast.Assert) and node.msg is not None:  # an invariant, not a message
            inside.update(id(n) for n in ast.walk(node.msg))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                inside.add(id(body[0].value))
    return inside


ENGLISH_WORD = re.compile(r"\(?[A-Za-z][a-z]+(?:'[a-z]+)?[,.;:!?)…]*")


def _unwrapped(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    skip = _markers(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in skip or "# i18n:" in lines[node.lineno - 1]:
            continue
        text = re.sub(r"`[^`]*`|\{[^}]*\}|:[a-z_]+:|https?://\S+", " ", node.value)
        if sum(1 for word in text.split() if ENGLISH_WORD.fullmatch(word)) >= 3:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


@pytest.mark.parametrize("module", LOCALISED)
def test_a_localised_module_shows_no_unwrapped_english(module: str) -> None:
    found = _unwrapped(ROOT / module)
    assert not found, "wrap these in _() / ngettext() (README Translating):\n" + "\n".join(found)


def test_every_module_is_accounted_for() -> None:
    """A new check, remediation or bot module is localised (wrapped, then listed in LOCALISED)
    or knowingly pending; never forgotten."""
    pending = {p for pattern in PENDING for p in ROOT.glob(pattern)}
    assert all(ROOT.glob(pattern) for pattern in PENDING), "a PENDING entry matches nothing"
    known = {ROOT / m for m in (*LOCALISED, *NOT_USER_FACING)} | pending
    unaccounted = [
        str(p.relative_to(ROOT))
        for pattern in SCANNED
        for p in sorted(ROOT.glob(pattern))
        if p not in known and p.name != "__init__.py" and _unwrapped(p)
    ]
    assert not unaccounted, (
        "user-facing English in modules neither localised nor pending: wrap their strings "
        "(README Translating) and add them to LOCALISED in tests/i18n/test_catalog.py:\n"
        + "\n".join(unaccounted)
    )


def _rebinds_gettext(path: Path) -> list[str]:
    """Where a module that imports gettext's `_` binds `_` itself (a throwaway `_, x = …`):
    inside that function `_("…")` would then call the throwaway."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "handlers.i18n"
        and any(alias.name == "_" for alias in node.names)
        for node in ast.walk(tree)
    )
    if not imports:
        return []
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store))
        or (isinstance(node, ast.arg) and node.arg == "_")
    ]


def test_no_module_shadows_gettext() -> None:
    found = [
        where
        for pattern in ("bot/**/*.py", "handlers/**/*.py")
        for path in sorted(ROOT.glob(pattern))
        for where in _rebinds_gettext(path)
    ]
    assert not found, "rename these throwaways (`_` is gettext here):\n" + "\n".join(found)


def test_the_unwrapped_english_finder_finds_unwrapped_english(tmp_path: Path) -> None:
    """The guard above cannot pass by finding nothing."""
    module = ROOT / "tests/i18n/_probe_module.py"
    module.write_text(
        'from handlers.i18n import _\n\nLOG = "a b"\n'
        'def f() -> str:\n    """A docstring is never shown to anyone."""\n'
        '    _("this one is wrapped properly")\n'
        '    return "this one is not wrapped at all"\n',
        encoding="utf-8",
    )
    try:
        assert [line.split(": ", 1)[1] for line in _unwrapped(module)] == [
            "'this one is not wrapped at all'"
        ]
    finally:
        module.unlink()
