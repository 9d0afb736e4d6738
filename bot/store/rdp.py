"""Open RDP sessions to nodes and when each must be torn down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, select

from bot.store.base import StoreBase, _from_row, _now, _utc
from bot.store.records import RdpSession
from bot.store.schema import rdp_sessions


class RdpStore(StoreBase):
    """RDP sessions."""

    def upsert_rdp(
        self,
        node: str,
        requester: str,
        expires_at: datetime,
        source_ranges: Sequence[str],
        *,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> RdpSession:
        """Record an open RDP session, or extend the node's existing one."""
        now = _now()
        row = {
            "cluster": self.cluster,
            "node": node,
            "requester": requester,
            "expires_at": _utc(expires_at),
            "source_ranges": list(source_ranges),
            "channel": channel,
            "thread_ts": thread_ts,
            "created_at": now,
            "updated_at": now,
        }
        stmt = self._insert(rdp_sessions).values(row)
        kept = ("cluster", "node", "created_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=[rdp_sessions.c.cluster, rdp_sessions.c.node],
            set_={name: stmt.excluded[name] for name in row if name not in kept},
        )
        with self._guard(), self._write() as conn:
            conn.execute(stmt)
            stored = conn.execute(select(rdp_sessions).where(self._mine(node))).one()
        return _rdp(stored)

    def get_rdp(self, node: str) -> RdpSession | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(select(rdp_sessions).where(self._mine(node))).first()
        return None if row is None else _rdp(row)

    def delete_rdp(self, node: str) -> bool:
        with self._guard(), self._write() as conn:
            deleted = conn.execute(delete(rdp_sessions).where(self._mine(node)))
        return deleted.rowcount == 1

    def list_rdp(self) -> list[RdpSession]:
        """Soonest expiry first."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(
                select(rdp_sessions)
                .where(rdp_sessions.c.cluster == self.cluster)
                .order_by(rdp_sessions.c.expires_at)
            )
            return [_rdp(row) for row in rows]

    def _mine(self, node: str) -> ColumnElement[bool]:
        return and_(rdp_sessions.c.cluster == self.cluster, rdp_sessions.c.node == node)


def _rdp(row: Row[Any]) -> RdpSession:
    return _from_row(RdpSession, row)
