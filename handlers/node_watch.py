"""Windows nodes' boot ids, read with one paged list and kept current by a watch on Nodes.

A sweep then reads no fleet-sized list: after the first list the API server sends only what
changed (and bookmarks). The watch's resourceVersion lives in memory only — after a restart
the nodes are listed again, never watched from a stored resourceVersion that the server may
have compacted; a 410 Gone mid-run also means a new list. Errors back off, doubling up to a
bound, so a failing API server is not hammered.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from handlers.errors import Expired, Unreachable, WinpodError
from handlers.i18n import _
from handlers.transports import KubeObject, WatchableCluster, WatchEvent

WINDOWS_NODES = "kubernetes.io/os=windows"
# Nodes whose boot id changed while watched are kept whole (a sweep then needs no read of
# them), the most recent this many: memory follows reboots, never the fleet.
KEPT_REBOOTED = 1024
log = logging.getLogger(__name__)


def boot_id(node: KubeObject) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("bootID") or "")


def list_boots(cluster: WatchableCluster) -> tuple[dict[str, str], str]:
    """Every Windows node's boot id (a page at a time) and the list's resourceVersion."""
    boots: dict[str, str] = {}
    resource_version = ""
    for page, version in cluster.list_pages("Node", WINDOWS_NODES):
        resource_version = version
        for node in page:
            boots[str(node["metadata"]["name"])] = boot_id(node)
    return boots, resource_version


class NodeWatch:
    """Node name → boot id for every Windows node, kept current by a background thread."""

    def __init__(
        self,
        cluster: WatchableCluster,
        *,
        watch_timeout_s: int = 300,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        on_list: Callable[[], None] | None = None,
    ) -> None:
        self._cluster = cluster
        self._watch_timeout_s = watch_timeout_s
        self._backoff_s = backoff_s
        self._on_list = on_list
        self._boots: dict[str, str] = {}
        self._rebooted: OrderedDict[str, KubeObject] = OrderedDict()
        self._resource_version: str | None = None  # never persisted: see the module docstring
        self._lock = threading.Lock()
        self._listed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.lists = 0  # how many times the nodes were listed (the first, then after 410s)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def boots(self, wait_s: float) -> dict[str, str]:
        """A copy of the current boot ids; waits up to `wait_s` for the first list."""
        self.start()
        if not self._listed.wait(wait_s):
            raise Unreachable(
                _("the Windows nodes could not be listed within {seconds} s").format(
                    seconds=f"{wait_s:g}"
                )
            )
        with self._lock:
            return dict(self._boots)

    def rebooted_nodes(self, names: Iterable[str]) -> dict[str, KubeObject]:
        """The latest Node object of each of these that rebooted while watched (as the watch
        delivered it); others are not kept and must be read."""
        with self._lock:
            return {name: self._rebooted[name] for name in names if name in self._rebooted}

    def _run(self) -> None:
        delay = self._backoff_s[0]
        while not self._stopping.is_set():
            try:
                if self._resource_version is None:
                    self._relist()
                self._follow()
                delay = self._backoff_s[0]  # a watch that ran to its timeout: watch again
            except Expired:
                log.info("node watch expired (410 Gone): listing the nodes again")
                self._resource_version = None
            except WinpodError as exc:
                log.warning("node watch failed: %s; retrying in %.1f s", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._backoff_s[1])

    def _relist(self) -> None:
        boots, resource_version = list_boots(self._cluster)
        with self._lock:
            self._boots = boots
            self._rebooted.clear()
            self._resource_version = resource_version
            self.lists += 1
        self._listed.set()
        if self._on_list is not None:
            self._on_list()

    def _follow(self) -> None:
        assert self._resource_version is not None
        for event in self._cluster.watch(
            "Node", self._resource_version, WINDOWS_NODES, self._watch_timeout_s
        ):
            self._apply(event)
            if self._stopping.is_set():
                return

    def _apply(self, event: WatchEvent) -> None:
        name = str((event.object.get("metadata") or {}).get("name") or "")
        with self._lock:
            if event.type in ("ADDED", "MODIFIED"):
                boot = boot_id(event.object)
                if name in self._rebooted or self._boots.get(name, boot) != boot:
                    self._rebooted[name] = event.object
                    self._rebooted.move_to_end(name)
                    while len(self._rebooted) > KEPT_REBOOTED:
                        self._rebooted.popitem(last=False)
                self._boots[name] = boot
            elif event.type == "DELETED":
                self._boots.pop(name, None)
                self._rebooted.pop(name, None)
            if event.resource_version:
                self._resource_version = event.resource_version
