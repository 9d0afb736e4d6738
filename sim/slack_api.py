"""(being written) — placeholder so the simulator assembles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class SlackState:
    calls: list[dict[str, Any]] = field(default_factory=list)


def build_app(*_: Any) -> web.Application:
    return web.Application()
