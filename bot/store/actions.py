"""Offers (what a button means) and pending actions through approval, execution and result."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from bot.store.base import _MAX_CAS_ATTEMPTS, StoreBase, _from_row, _now, _utc
from bot.store.records import (
    EXPIRABLE_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    ActionStatus,
    Offer,
    OpenActionExists,
    PendingAction,
    StoreError,
)
from bot.store.schema import actions, offers


class ActionsStore(StoreBase):
    """Offers and pending actions."""

    # -- offers ------------------------------------------------------------------------------

    def save_offer(
        self,
        remediation: str,
        target: str,
        params: Mapping[str, Any],
        check: str,
        risk: str,
        diagnosed: Mapping[str, str] | None = None,
    ) -> str:
        offer_id = _new_id()
        row = {
            "id": offer_id,
            "remediation": remediation,
            "target": target,
            "params": dict(params),
            "check_id": check,
            "risk": risk,
            "created_at": _now(),
            "diagnosed": None if diagnosed is None else dict(diagnosed),
            "cluster": self.cluster,
        }
        with self._guard(), self._write() as conn:
            conn.execute(insert(offers).values(row))
        return offer_id

    def get_offer(self, offer_id: str) -> Offer | None:
        """The offer whatever its cluster (ids are unique; it names its cluster)."""
        with self._guard(), self._read() as conn:
            row = conn.execute(select(offers).where(offers.c.id == offer_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Offer(
            id=m["id"],
            remediation=m["remediation"],
            target=m["target"],
            params=m["params"],
            check=m["check_id"],
            risk=m["risk"],
            created_at=m["created_at"],
            diagnosed=m["diagnosed"],
            cluster=m["cluster"],
        )

    # -- pending actions ---------------------------------------------------------------------

    def create_action(
        self,
        remediation: str,
        target: str,
        params: Mapping[str, Any],
        risk: str,
        requester: str,
        *,
        expires_at: datetime,
        channel: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
        target_kind: str = "node",
        plan: Mapping[str, Any] | None = None,
        offer_id: str | None = None,
        check_id: str | None = None,
        diagnosed: Mapping[str, str] | None = None,
    ) -> PendingAction:
        """Open a pending action; raises OpenActionExists when one is open for the same
        remediation and target (also when two replicas race), so call expire_due() first."""
        now = _now()
        action = PendingAction(
            id=_new_id(),
            remediation=remediation,
            target=target,
            params=dict(params),
            risk=risk,
            requester=requester,
            channel=channel,
            message_ts=message_ts,
            thread_ts=thread_ts,
            status="pending",
            approvals=(),
            rejected_by=None,
            created_at=now,
            updated_at=now,
            expires_at=_utc(expires_at),
            result=None,
            target_kind=target_kind,
            plan=None if plan is None else dict(plan),
            offer_id=offer_id,
            check_id=check_id,
            diagnosed=None if diagnosed is None else dict(diagnosed),
            cluster=self.cluster,
        )
        row = {**asdict(action), "approvals": [], "version": 0}
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                # No conflict target: the only unique key that can clash is the partial index
                # on open (remediation, target); random ids do not collide.
                if self._insert_if_absent(conn, actions, row):
                    return action
                existing = self._open_action(conn, remediation, target)
            if existing is not None:
                raise OpenActionExists(existing)
            # The open action finished between our insert and our read: try again.
        raise StoreError(
            _("store {url}: could not create action for {target}").format(
                url=self.display_url, target=target
            )
        )

    def get_action(self, action_id: str) -> PendingAction | None:
        """The action whatever its cluster (ids are unique; it names its cluster)."""
        with self._guard(), self._read() as conn:
            row = conn.execute(select(actions).where(actions.c.id == action_id)).first()
        return None if row is None else _action(row)

    def find_open_action(self, remediation: str, target: str) -> PendingAction | None:
        """The pending, approved or running action for this remediation and target, if any."""
        with self._guard(), self._read() as conn:
            return self._open_action(conn, remediation, target)

    def set_message(self, action_id: str, channel: str, ts: str) -> None:
        """Remember the Slack message that shows this action, to edit it on each change."""
        with self._guard(), self._write() as conn:
            conn.execute(
                update(actions)
                .where(actions.c.id == action_id)
                .values(channel=channel, message_ts=ts, updated_at=_now())
            )

    def add_approval(self, action_id: str, user: str) -> PendingAction:
        """Record `user`'s approval once, even when approvals arrive at the same moment on
        several replicas; raises KeyError for an unknown action. The caller applies the policy
        (who may approve, and in which status)."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            with self._guard(), self._write() as conn:
                row = conn.execute(select(actions).where(actions.c.id == action_id)).first()
                if row is None:
                    raise KeyError(action_id)
                current = _action(row)
                if user in current.approvals:
                    return current
                approvals = (*current.approvals, user)
                now = _now()
                # Compare-and-swap on the version: a concurrent change makes this hit no row.
                swapped = conn.execute(
                    update(actions)
                    .where(actions.c.id == action_id, actions.c.version == row.version)
                    .values(approvals=list(approvals), version=row.version + 1, updated_at=now)
                )
                if swapped.rowcount == 1:
                    return replace(current, approvals=approvals, updated_at=now)
        raise StoreError(
            _("store {url}: could not record approval on {action}").format(
                url=self.display_url, action=action_id
            )
        )

    def transition(
        self,
        action_id: str,
        from_status: ActionStatus | tuple[ActionStatus, ...],
        to_status: ActionStatus,
        result: Mapping[str, Any] | None = None,
        *,
        rejected_by: str | None = None,
    ) -> bool:
        """Move the action to `to_status` if it is in `from_status`; True only for the one
        caller whose update changed the row, which is how an action runs exactly once."""
        allowed = _statuses(from_status)
        _statuses(to_status)
        values: dict[str, Any] = {
            "status": to_status,
            "updated_at": _now(),
            "version": actions.c.version + 1,
        }
        if result is not None:
            values["result"] = dict(result)
        if rejected_by is not None:
            values["rejected_by"] = rejected_by
        with self._guard(), self._write() as conn:
            changed = conn.execute(
                update(actions)
                .where(actions.c.id == action_id, actions.c.status.in_(allowed))
                .values(values)
            )
        return changed.rowcount == 1

    def expire_due(self, now: datetime) -> list[PendingAction]:
        """Expire pending actions whose time has come, in every cluster; returns those."""
        now = _utc(now)
        with self._guard(), self._write() as conn:
            rows = conn.execute(
                update(actions)
                .where(
                    actions.c.status.in_(EXPIRABLE_STATUSES),
                    actions.c.expires_at <= now,
                )
                .values(status="expired", updated_at=now, version=actions.c.version + 1)
                .returning(*actions.c)
            ).all()
        return sorted((_action(row) for row in rows), key=lambda action: action.created_at)

    def list_actions(
        self,
        status: ActionStatus | None = None,
        limit: int = 50,
        *,
        remediation: str | None = None,
        target: str | None = None,
    ) -> list[PendingAction]:
        """This cluster's, newest first; only those of `remediation` and on `target` when given."""
        query = (
            select(actions)
            .where(actions.c.cluster == self.cluster)
            .order_by(actions.c.created_at.desc(), actions.c.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(actions.c.status == _statuses(status)[0])
        if remediation is not None:
            query = query.where(actions.c.remediation == remediation)
        if target is not None:
            query = query.where(actions.c.target == target)
        with self._guard(), self._read() as conn:
            return [_action(row) for row in conn.execute(query)]

    def _open_action(self, conn: Connection, remediation: str, target: str) -> PendingAction | None:
        row = conn.execute(
            select(actions)
            .where(
                actions.c.cluster == self.cluster,
                actions.c.remediation == remediation,
                actions.c.target == target,
                actions.c.status.in_(OPEN_STATUSES),
            )
            .order_by(actions.c.created_at.desc())
        ).first()
        return None if row is None else _action(row)


def _new_id() -> str:
    # 8 random bytes: 11 url-safe characters, short enough for Slack button values and logs.
    return secrets.token_urlsafe(8)


def _statuses(value: str | Sequence[str]) -> tuple[str, ...]:
    chosen = (value,) if isinstance(value, str) else tuple(value)
    unknown = [status for status in chosen if status not in STATUSES]
    if unknown or not chosen:
        known = ", ".join(STATUSES)
        raise ValueError(f"unknown action status {unknown or chosen}; known: {known}")  # i18n: bug
    return chosen


def _action(row: Row[Any]) -> PendingAction:
    return _from_row(PendingAction, row)
