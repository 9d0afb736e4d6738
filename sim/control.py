"""(being written) — placeholder so the simulator assembles."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def build_app(*_: Any) -> web.Application:
    return web.Application()
