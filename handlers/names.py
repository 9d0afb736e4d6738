"""Validation of the names people type: namespaces, pods and nodes, before any call is made."""

from __future__ import annotations

import re

from handlers.errors import BadInput
from handlers.i18n import _

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
POD_REF_FORM = "NAMESPACE/POD, e.g. web/iis-0"


def _shown(value: str) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in value)
    return repr(printable[:80] + ("…" if len(printable) > 80 else ""))


def namespace_name(value: str) -> str:
    """A namespace is a DNS-1123 label: lowercase letters, digits and '-', at most 63."""
    if len(value) > 63 or not _LABEL.fullmatch(value):
        raise BadInput(
            _(
                "{value} is not a valid namespace: use lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters"
            ).format(value=_shown(value))
        )
    return value


def object_name(value: str, what: str) -> str:
    """Pods and nodes are DNS-1123 subdomains: lowercase alphanumerics, '-' and '.', ≤ 253."""
    if len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise BadInput(
            _(
                "{value} is not a valid {what} name: use lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters"
            ).format(value=_shown(value), what=what)
        )
    return value


def pod_ref(value: str) -> tuple[str, str]:
    """Parse `NAMESPACE/POD`."""
    parts = value.strip().split("/")
    if len(parts) != 2 or not all(parts):
        raise BadInput(
            _("{value} is not a pod reference; expected {form}").format(
                value=_shown(value), form=POD_REF_FORM
            )
        )
    return namespace_name(parts[0]), object_name(parts[1], "pod")


def node_name(value: str) -> str:
    return object_name(value.strip(), "node")
