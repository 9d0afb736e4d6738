"""Named locks with a time to live: one holder at a time, renewable by that holder."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, delete, or_, select, update

from bot.store.base import StoreBase, _now
from bot.store.schema import locks


class LocksStore(StoreBase):
    """Named locks that expire."""

    def acquire_lock(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take the lock if it is free or expired (or renew it if `holder` has it already)."""
        if ttl <= timedelta(0):
            raise ValueError(f"lock ttl must be positive, not {ttl}")  # i18n: a caller's bug
        now = _now()
        with self._guard(), self._write() as conn:
            taken = conn.execute(
                update(locks)
                .where(
                    locks.c.cluster == self.cluster,
                    locks.c.name == name,
                    or_(locks.c.expires_at <= now, locks.c.holder == holder),
                )
                .values(
                    holder=holder,
                    acquired_at=case((locks.c.holder == holder, locks.c.acquired_at), else_=now),
                    expires_at=now + ttl,
                )
            )
            if taken.rowcount == 1:
                return True
            row = {
                "cluster": self.cluster,
                "name": name,
                "holder": holder,
                "acquired_at": now,
                "expires_at": now + ttl,
            }
            return self._insert_if_absent(conn, locks, row)

    def release_lock(self, name: str, holder: str) -> bool:
        """Release the lock; False when `holder` does not hold it (any more)."""
        with self._guard(), self._write() as conn:
            deleted = conn.execute(
                delete(locks).where(
                    locks.c.cluster == self.cluster, locks.c.name == name, locks.c.holder == holder
                )
            )
        return deleted.rowcount == 1

    def lock_holder(self, name: str) -> str | None:
        with self._guard(), self._read() as conn:
            holder: str | None = conn.execute(
                select(locks.c.holder).where(
                    locks.c.cluster == self.cluster,
                    locks.c.name == name,
                    locks.c.expires_at > _now(),
                )
            ).scalar()
        return holder
