"""The append-only audit log: who did what, when, to what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select

from bot.store.base import StoreBase, _now
from bot.store.records import AuditEntry
from bot.store.schema import audit_log


class AuditStore(StoreBase):
    """Appending to and reading the audit log."""

    def audit(
        self,
        actor: str,
        kind: str,
        detail: Mapping[str, Any],
        action_id: str | None = None,
        target: str | None = None,
    ) -> None:
        """Append to the audit log; there is deliberately no way to change or remove an entry."""
        row = {
            "at": _now(),
            "actor": actor,
            "kind": kind,
            "action_id": action_id,
            "target": target,
            "detail": dict(detail),
            "cluster": self.cluster,
        }
        with self._guard(), self._write() as conn:
            conn.execute(insert(audit_log).values(row))

    def audit_log(self, last: int = 20) -> list[AuditEntry]:
        """The `last` newest entries of every cluster, oldest first (each names its own)."""
        if last < 0:
            raise ValueError(f"last must not be negative, not {last}")  # i18n: a caller's bug
        with self._guard(), self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(last)).all()
        return [
            AuditEntry(
                at=row.at,
                actor=row.actor,
                kind=row.kind,
                action_id=row.action_id,
                target=row.target,
                detail=row.detail,
                cluster=row.cluster,
            )
            for row in reversed(rows)
        ]
