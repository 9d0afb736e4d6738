"""The check engine on in-memory fakes: shared facts fetched once, failures contained."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from config.settings import Settings
from handlers import engine
from handlers.context import Context, Transports
from handlers.errors import BadInput, NotFound, Unreachable
from handlers.model import Finding
from handlers.registry import Explanation, Registry
from handlers.transports import KubeObject

EXPLANATION = Explanation("cause", ("signal",), ("fix",), ("https://example.invalid/doc",))
POD = {
    "metadata": {"name": "iis-0", "namespace": "web"},
    "spec": {"nodeName": "akswin1", "containers": [{"name": "iis", "image": "iis:ltsc2019"}]},
    "status": {"phase": "Running", "podIP": "10.244.1.4"},
}
NODE = {
    "metadata": {"name": "akswin1", "labels": {"kubernetes.io/os": "windows"}},
    "status": {
        "nodeInfo": {
            "kernelVersion": "10.0.17763.2061",
            "bootID": "7",
            "osImage": "Windows Server 2019 Datacenter",
        }
    },
}


class FakeCluster:
    def __init__(self, objects: dict[tuple[str, str], KubeObject]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    @property
    def context(self) -> str:
        return "fake"

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        with self._lock:
            self.calls.append(("get", kind, name))
        try:
            return self.objects[(kind, name)]
        except KeyError:
            raise NotFound(f"{kind} {name} not found") from None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        with self._lock:
            self.calls.append(("list", kind, field_selector or ""))
        time.sleep(0.01)  # widen the window in which concurrent checks would race
        return []


def transports(cluster: FakeCluster) -> Transports:
    return Transports(cluster=cluster, pod_exec=None, node_shell=None)


def registry_with(*checks: tuple[str, Any]) -> Registry:
    registry = Registry()
    for check_id, function in checks:
        registry.check(
            check_id,
            title=check_id.title(),
            scopes=("pod",),
            explanation=EXPLANATION,
        )(function)
    return registry


def cluster() -> FakeCluster:
    return FakeCluster({("Pod", "iis-0"): POD, ("Node", "akswin1"): NODE})


def test_shared_facts_are_fetched_once_for_all_checks() -> None:
    def uses_events(context: Context) -> list[Finding]:
        context.pod_events()
        return [Finding("x", "ok", "fine", "")]

    fake = cluster()
    registry = registry_with(*[(f"check-{i}", uses_events) for i in range(6)])
    result = engine.diagnose_pod(transports(fake), Settings(), "web/iis-0", registry)
    assert len(result.findings) == 6
    assert [c for c in fake.calls if c[0] == "list"] == [
        ("list", "Event", "involvedObject.name=iis-0")
    ]


def test_a_failing_or_slow_check_does_not_sink_the_diagnosis() -> None:
    def broken(context: Context) -> list[Finding]:
        raise Unreachable("node akswin1 did not answer")

    def buggy(context: Context) -> list[Finding]:
        raise KeyError("surprise")

    def slow(context: Context) -> list[Finding]:
        time.sleep(2)
        return []

    def fine(context: Context) -> list[Finding]:
        return [Finding("fine", "error", "real problem", "found it")]

    registry = registry_with(("broken", broken), ("buggy", buggy), ("slow", slow), ("fine", fine))
    result = engine.diagnose_pod(
        transports(cluster()), Settings(), "web/iis-0", registry, timeout_s=0.5
    )
    by_check = {f.check: f for f in result.findings}
    assert by_check["fine"].severity == "error"
    assert result.findings[0].check == "fine"  # errors sort first
    assert by_check["broken"].severity == "warning"
    assert "did not answer" in by_check["broken"].summary
    assert by_check["buggy"].severity == "warning"
    assert "KeyError" in by_check["buggy"].summary
    assert by_check["slow"].severity == "warning"
    assert "did not finish within 0.5 s" in by_check["slow"].summary


def test_missing_pod_names_context() -> None:
    with pytest.raises(NotFound, match="pod web/nope not found in context fake"):
        engine.diagnose_pod(transports(cluster()), Settings(), "web/nope", registry_with())


@pytest.mark.parametrize(
    "reference",
    ["web", "web/", "/iis", "Web/iis", "web/iis;rm -rf", "web/$(whoami)", "a/b/c", "web/iis`n"],
)
def test_malformed_references_are_rejected_before_any_call(reference: str) -> None:
    fake = cluster()
    with pytest.raises(BadInput):
        engine.diagnose_pod(transports(fake), Settings(), reference, registry_with())
    assert fake.calls == []


def test_json_follows_the_spec_shape() -> None:
    def finding(context: Context) -> list[Finding]:
        return [Finding("image-os-mismatch", "error", "t", "s", ("e",), (), ("https://d",))]

    result = engine.diagnose_pod(
        transports(cluster()),
        Settings(),
        "web/iis-0",
        registry_with(("image-os-mismatch", finding)),
    )
    data = result.to_json()
    assert data["target"] == {
        "kind": "Pod",
        "namespace": "web",
        "name": "iis-0",
        "node": "akswin1",
        "phase": "Running",
        "reason": None,
    }
    assert data["node"] == {
        "name": "akswin1",
        "build": 17763,
        "kernelVersion": "10.0.17763.2061",
        "osImage": "Windows Server 2019 Datacenter",
        "bootID": "7",
    }
    assert data["findings"][0] == {
        "check": "image-os-mismatch",
        "severity": "error",
        "title": "t",
        "summary": "s",
        "evidence": ["e"],
        "remediations": [],
        "docs": ["https://d"],
    }
    assert isinstance(data["duration_ms"], int)
