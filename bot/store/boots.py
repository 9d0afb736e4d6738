"""Node boot ids seen by the sweeps, and the one alert per boot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, select, update

from bot.store.base import _MAX_CAS_ATTEMPTS, StoreBase, _from_row, _now, _utc
from bot.store.records import Alert, StoreError
from bot.store.schema import alerts, node_boots


class BootsStore(StoreBase):
    """Node boots and their alerts."""

    def record_boot(self, node: str, boot_id: str, seen_at: datetime) -> str | None:
        """Store the node's boot id; returns the one stored before (None when first seen)."""
        seen_at = _utc(seen_at)
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                previous: str | None = conn.execute(
                    select(node_boots.c.boot_id).where(
                        node_boots.c.cluster == self.cluster, node_boots.c.node == node
                    )
                ).scalar()
                if previous is None:
                    row = {
                        "cluster": self.cluster,
                        "node": node,
                        "boot_id": boot_id,
                        "seen_at": seen_at,
                    }
                    if self._insert_if_absent(conn, node_boots, row):
                        return None
                    continue
                # Swap only what we read, so two sweeps racing cannot both report the reboot.
                swapped = conn.execute(
                    update(node_boots)
                    .where(
                        node_boots.c.cluster == self.cluster,
                        node_boots.c.node == node,
                        node_boots.c.boot_id == previous,
                    )
                    .values(boot_id=boot_id, seen_at=seen_at)
                )
                if swapped.rowcount == 1:
                    return previous
        raise StoreError(
            _("store {url}: could not record the boot of {node}").format(
                url=self.display_url, node=node
            )
        )

    def known_boots(self) -> dict[str, str]:
        """Every node's last recorded boot id (what the next sweep compares against)."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(
                select(node_boots.c.node, node_boots.c.boot_id).where(
                    node_boots.c.cluster == self.cluster
                )
            ).all()
        return {str(node): str(boot) for node, boot in rows}

    def record_boots(self, boots: dict[str, str], seen_at: datetime) -> None:
        """Record many nodes' boot ids after a sweep (one transaction per changed node)."""
        known = self.known_boots()
        for node, boot in boots.items():
            if known.get(node) != boot:
                self.record_boot(node, boot, seen_at)

    def claim_alert(self, node: str, boot_id: str) -> bool:
        """True for the first caller only: that caller posts the alert for this boot."""
        row = {"cluster": self.cluster, "node": node, "boot_id": boot_id, "created_at": _now()}
        with self._guard(), self._write() as conn:
            return self._insert_if_absent(conn, alerts, row)

    def release_alert(self, node: str, boot_id: str) -> None:
        """Give back a claim whose alert never reached Slack, so a later sweep can post it."""
        with self._guard(), self._write() as conn:
            conn.execute(
                delete(alerts).where(
                    self._alert_of(node, boot_id),
                    alerts.c.message_ts.is_(None),
                )
            )

    def set_alert_message(self, node: str, boot_id: str, channel: str, ts: str) -> None:
        with self._guard(), self._write() as conn:
            conn.execute(
                update(alerts)
                .where(self._alert_of(node, boot_id))
                .values(channel=channel, message_ts=ts)
            )

    def get_alert(self, node: str, boot_id: str) -> Alert | None:
        with self._guard(), self._read() as conn:
            row = conn.execute(select(alerts).where(self._alert_of(node, boot_id))).first()
        return None if row is None else _alert(row)

    def resolve_alert(self, node: str, boot_id: str) -> bool:
        """Mark the alert resolved; True once, for the caller that posts the follow-up."""
        with self._guard(), self._write() as conn:
            changed = conn.execute(
                update(alerts)
                .where(self._alert_of(node, boot_id), alerts.c.resolved_at.is_(None))
                .values(resolved_at=_now())
            )
        return changed.rowcount == 1

    def open_alerts(self) -> list[Alert]:
        """Unresolved alerts, oldest first."""
        with self._guard(), self._read() as conn:
            rows = conn.execute(
                select(alerts)
                .where(alerts.c.cluster == self.cluster, alerts.c.resolved_at.is_(None))
                .order_by(alerts.c.created_at)
            )
            return [_alert(row) for row in rows]

    def _alert_of(self, node: str, boot_id: str) -> ColumnElement[bool]:
        return and_(
            alerts.c.cluster == self.cluster, alerts.c.node == node, alerts.c.boot_id == boot_id
        )


def _alert(row: Row[Any]) -> Alert:
    return _from_row(Alert, row)
