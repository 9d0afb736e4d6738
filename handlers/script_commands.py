"""The lines of a PowerShell script that change the host — what an approver must read first.

Parsed with tree-sitter-powershell, never by matching text: a comment, a string or a
`param()` block that mentions `Remove-HnsNetwork` runs nothing. A helper function's body is
shown where the script calls it, not where it is defined.
"""

from __future__ import annotations

import functools
import re

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

# Approved verbs whose cmdlets change something (Get-, Test-, Where-, ConvertTo-… only read).
CHANGING_VERBS = frozenset(
    {
        "add",
        "clear",
        "disable",
        "dismount",
        "enable",
        "install",
        "mount",
        "move",
        "new",
        "register",
        "remove",
        "rename",
        "reset",
        "restart",
        "resume",
        "set",
        "start",
        "stop",
        "suspend",
        "uninstall",
        "unregister",
        "update",
    }
)
# Nouns of cmdlets that only change the script's own PowerShell session (or wait), not the host.
SESSION_NOUNS = frozenset(
    {
        "object",
        "variable",
        "typedata",
        "strictmode",
        "location",
        "alias",
        "psdrive",
        "timespan",
        "sleep",
        "scheduledtaskaction",
    }
)
# Native programs that change a Windows host when one of their arguments says so.
PROGRAMS = frozenset(
    {"sc.exe", "netsh", "netsh.exe", "hnsdiag", "hnsdiag.exe", "ctr", "ctr.exe", "crictl"}
)
CHANGING_ARGUMENT = re.compile(
    r"(?<![\w-])(stop|start|delete|kill|rm|remove|set|add|config|reset)(?![\w-])", re.IGNORECASE
)
# Web requests change state only with these methods (HNS: DELETE removes, POST creates).
REQUESTS = frozenset({"invoke-hnsrequest", "invoke-restmethod", "invoke-webrequest"})
CHANGING_METHOD = re.compile(r"(?<![\w-])(DELETE|POST|PUT|PATCH)(?![\w-])", re.IGNORECASE)
SKIPPED = frozenset({"comment", "param_block", "function_statement"})


@functools.cache
def _language() -> Language:
    return Language(tree_sitter_powershell.language())


def state_changing_commands(script: str) -> tuple[str, ...]:
    """Each pipeline that stops, starts, removes, creates or sets something, in script order,
    once, with its whitespace collapsed to one line."""
    source = script.encode("utf-8")
    root = Parser(_language()).parse(source).root_node  # a parser per call: threads
    functions = {
        _text(source, name).lower(): node
        for node in _descendants(root, "function_statement")
        for name in node.children
        if name.type == "function_name"
    }
    found: list[str] = []
    _walk(root, source, functions, found)
    return tuple(found)


def _walk(root: Node, source: bytes, functions: dict[str, Node], found: list[str]) -> None:
    def visit(node: Node, expanding: frozenset[str]) -> None:
        if node.type in SKIPPED:
            return
        if node.type == "command":
            name = _command_name(source, node)
            if name in functions:
                # a helper's body is read where it is called, not where it is defined; what
                # it is given (a script block, say) is read below
                if name not in expanding:
                    for child in functions[name].children:
                        visit(child, expanding | {name})
            elif name and _changes_state(name, _text(source, node)):
                line = " ".join(_text(source, _pipeline_of(node)).split())
                if line not in found:
                    found.append(line)
                return
        for child in node.children:
            visit(child, expanding)

    visit(root, frozenset())


def _changes_state(name: str, command: str) -> bool:
    if name in REQUESTS:
        return CHANGING_METHOD.search(command) is not None
    if name in PROGRAMS:
        return CHANGING_ARGUMENT.search(command.partition(name)[2]) is not None
    verb, dash, noun = name.partition("-")
    return bool(dash) and verb in CHANGING_VERBS and noun not in SESSION_NOUNS


def _command_name(source: bytes, command: Node) -> str:
    for child in command.children:
        if child.type == "command_name":
            return _text(source, child).lower()
        if child.type == "command_name_expr":
            return _command_name(source, child)
    return ""


def _pipeline_of(node: Node) -> Node:
    parent = node.parent
    while parent is not None and parent.type != "pipeline":
        parent = parent.parent
    return parent or node


def _descendants(node: Node, kind: str) -> list[Node]:
    found = [node] if node.type == kind else []
    for child in node.children:
        found.extend(_descendants(child, kind))
    return found


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")
