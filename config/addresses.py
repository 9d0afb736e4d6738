"""What winpod accepts as a place to connect to: a plain IP address or a plain DNS host name.

Addresses reach winpod from the cluster (node addresses, annotations) and from settings; each is
put into a URL (`https://{address}:5986/wsman`) or an EndpointSlice, so anything more than a
bare host (a port, a path, a zone id, userinfo, whitespace) would let the writer pick the peer.
"""

from __future__ import annotations

import ipaddress
import re

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, ≤ 253 in all.
_HOST_NAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def plain_ip(value: str) -> str | None:
    """`value` as a canonical IPv4 or IPv6 address, or None: no zone id, no brackets, no prefix."""
    if not isinstance(value, str) or not value.isascii() or "%" in value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def plain_host(value: str) -> str | None:
    """`value` as an IP address or a DNS host name, or None when it is anything else."""
    ip = plain_ip(value)
    if ip is not None:
        return ip
    if (
        isinstance(value, str)
        and len(value) <= 253
        and value.isascii()
        and _HOST_NAME.fullmatch(value)
        and not value.replace(".", "").isdigit()  # 127.1 or 2130706433: numbers, not names
    ):
        return value.lower()
    return None


def shown(value: object) -> str:
    """A value from outside, quoted and cut short for an error message."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
