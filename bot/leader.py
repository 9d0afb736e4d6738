"""Leader election on a coordination.k8s.io Lease: only the leader runs the scheduler.

The loop renews the lease every `renew_every`; a follower takes over once the holder has not
renewed for `duration`. Every write carries the resourceVersion it read, so two replicas can
never both believe they won.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.errors import Conflict, NotFound, Refused, WinpodError
from handlers.i18n import _
from handlers.transports import Cluster

log = logging.getLogger(__name__)
LEASE_NAME = "winpod-leader"


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        identity: str,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        duration: timedelta = timedelta(seconds=15),
        renew_every: timedelta = timedelta(seconds=5),
    ) -> None:
        self.cluster, self.namespace, self.identity = cluster, namespace, identity
        self.on_started, self.on_stopped = on_started, on_stopped
        self.duration, self.renew_every = duration, renew_every
        self.is_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_permission(self) -> None:
        """Fail at start-up, clearly, when the ServiceAccount may not use Leases."""
        try:
            self.cluster.get("Lease", LEASE_NAME, self.namespace)
        except NotFound:
            pass
        except Refused as exc:
            raise Refused(
                _(
                    "leader election needs get/create/update on Leases in namespace {namespace} "
                    "({error}); grant it (see deploy/) or run a single replica with "
                    "kubernetes.leader_election: false"
                ).format(namespace=self.namespace, error=exc)
            ) from None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.is_leader:
            self._release()
            self._lose()

    def _loop(self) -> None:
        renewed_at = 0.0
        while not self._stop.is_set():
            try:
                held = self.try_acquire_or_renew()
            except WinpodError as exc:
                # An API hiccup is not a lost lease: lead on until the lease would have run out.
                log.warning("leader election: %s", exc)
                held = self.is_leader and (
                    time.monotonic() - renewed_at
                    < self.duration.total_seconds() - self.renew_every.total_seconds()
                )
            else:
                if held:
                    renewed_at = time.monotonic()
            if held and not self.is_leader:
                self.is_leader = True
                log.info("became leader", extra={"identity": self.identity})
                self.on_started()
            elif not held and self.is_leader:
                self._lose()
            self._stop.wait(self.renew_every.total_seconds())

    def _lose(self) -> None:
        self.is_leader = False
        log.info("stopped leading", extra={"identity": self.identity})
        self.on_stopped()

    def try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration.total_seconds()),
            "renewTime": _micro(now),
        }
        try:
            lease = self.cluster.get("Lease", LEASE_NAME, self.namespace)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0},
            }
            try:
                self.cluster.create("Lease", body, self.namespace)
            except (Conflict, WinpodError):
                return False
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = _parse(current.get("renewTime")) or _parse(current.get("acquireTime"))
        duration = timedelta(seconds=int(current.get("leaseDurationSeconds") or 15))
        expired = renewed is None or now - renewed > duration
        if holder not in (self.identity, None, "") and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        lease["spec"] = {**current, **spec}
        try:
            self.cluster.replace("Lease", LEASE_NAME, lease, self.namespace)
        except Conflict:
            return False
        return True

    def _release(self) -> None:
        """Hand over at once on a clean stop instead of making followers wait out the lease."""
        try:
            lease = self.cluster.get("Lease", LEASE_NAME, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {**lease["spec"], "holderIdentity": None, "renewTime": None}
                self.cluster.replace("Lease", LEASE_NAME, lease, self.namespace)
        except WinpodError as exc:
            log.warning("could not release the lease: %s", exc)
