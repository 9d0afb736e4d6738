"""The sweep's decisions on in-memory fakes: which nodes rebooted, how many probes, what state."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import Settings, SweepSettings
from handlers import sweep
from handlers.context import Transports
from handlers.errors import NotFound, TimedOut, Unreachable
from handlers.transports import CommandResult, KubeObject

DNS_IP, DNS_POD_IPS = "10.0.0.10", ("10.244.0.2", "10.244.0.3")
LOOKUP = ["nslookup", "kubernetes.default.svc.cluster.local"]
ANSWER = (
    "Server:  UnKnown\nAddress:  {server}\n\n"
    "Name:    kubernetes.default.svc.cluster.local\nAddress:  10.0.0.1\n"
)
TIMEOUT = "DNS request timed out.\n    timeout was 2 seconds.\n*** Request to UnKnown timed-out\n"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, boot: str = "1", windows: bool = True) -> KubeObject:
    os_label = "windows" if windows else "linux"
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": os_label}},
        "status": {"nodeInfo": {"kernelVersion": "10.0.17763.2061", "bootID": boot}},
    }


def pod(name: str, on: str, phase: str = "Running", ip: str | None = "10.244.1.9") -> KubeObject:
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"nodeName": on, "containers": [{"name": "app", "image": "app:ltsc2019"}]},
        "status": status,
    }


def rebooted_event(on: str, boot: str, ago: timedelta = timedelta(minutes=2)) -> KubeObject:
    return {
        "metadata": {"name": f"{on}.{boot}", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": on},
        "reason": "Rebooted",
        "message": f"Node {on} has been rebooted, boot id: {boot}",
        "lastTimestamp": stamp(datetime.now(UTC) - ago),
    }


class FakeCluster:
    """Answers the reads a sweep makes and records every call."""

    def __init__(
        self, nodes: list[KubeObject], pods: list[KubeObject], events: list[KubeObject]
    ) -> None:
        self.nodes, self.pods, self.events = nodes, pods, events
        self.calls: list[tuple[str, str, str | None]] = []

    @property
    def context(self) -> str:
        return "fake"

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        self.calls.append(("get", kind, namespace))
        if (kind, name, namespace) == ("Service", "kube-dns", "kube-system"):
            return {"metadata": {"name": name}, "spec": {"clusterIP": DNS_IP}}
        for candidate in self.nodes if kind == "Node" else ():
            if candidate["metadata"]["name"] == name:
                return candidate
        raise NotFound(f"{kind} {name} not found")

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        self.calls.append(("list", kind, namespace))
        if kind == "Node":
            assert label_selector == "kubernetes.io/os=windows"
            return [
                n for n in self.nodes if n["metadata"]["labels"]["kubernetes.io/os"] == "windows"
            ]
        if kind == "Pod" and namespace == "kube-system":
            return [
                {"metadata": {"name": f"coredns-{i}"}, "status": {"phase": "Running", "podIP": ip}}
                for i, ip in enumerate(DNS_POD_IPS)
            ]
        if kind == "Pod":
            assert field_selector is not None and field_selector.startswith("spec.nodeName=")
            on, phase = field_selector.removeprefix("spec.nodeName=").split(",status.phase=")
            return [
                p
                for p in self.pods
                if p["spec"]["nodeName"] == on and p["status"]["phase"] == phase
            ]
        if kind == "Event" and field_selector == "reason=Rebooted":
            return self.events
        if kind == "Event":
            assert field_selector is not None
            on = field_selector.split("involvedObject.name=")[1].split(",")[0]
            return [e for e in self.events if e["involvedObject"]["name"] == on]
        raise AssertionError(f"the sweep should not list {kind}")

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject:
        raise AssertionError("a sweep never writes")

    def patch(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        raise AssertionError("a sweep never writes")

    def replace(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        raise AssertionError("a sweep never writes")

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        raise AssertionError("a sweep never writes")


class FakeExec:
    """nslookup in pods as Windows answers it; each node's DNS has one of a few behaviours."""

    def __init__(self, behaviour: dict[str, str], pods: list[KubeObject], delay: float = 0.0):
        # pod or node -> ok | stale (only direct queries answer) | unreachable | timeout;
        # anything else: no answer at all
        self.behaviour = behaviour
        self.node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
        self.delay = delay
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def run(
        self, namespace: str, pod: str, container: str | None, argv: list[str], timeout_s: float
    ) -> CommandResult:
        with self._lock:
            self.calls.append((pod, tuple(argv)))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay)
            return self._answer(pod, argv)
        finally:
            with self._lock:
                self.running -= 1

    def _answer(self, pod: str, argv: list[str]) -> CommandResult:
        behaviour = self.behaviour.get(pod) or self.behaviour.get(self.node_of[pod], "ok")
        direct = len(argv) == 3
        if behaviour == "unreachable":
            raise Unreachable(f"exec in pod shop/{pod}: Handshake status 500")
        if behaviour == "timeout":
            raise TimedOut(f"exec in pod shop/{pod}: no answer within 10 s")
        if behaviour == "ok" or (behaviour == "stale" and direct):
            return CommandResult(ANSWER.format(server=argv[2] if direct else DNS_IP), "", 0)
        return CommandResult(TIMEOUT, "", 1)


def run(
    nodes: list[KubeObject],
    pods: list[KubeObject],
    events: tuple[KubeObject, ...] = (),
    known: dict[str, str] | None = None,
    behaviour: dict[str, str] | None = None,
    settings: Settings | None = None,
    **kwargs: Any,
) -> tuple[sweep.SweepReport, FakeCluster, FakeExec]:
    cluster = FakeCluster(nodes, pods, list(events))
    pod_exec = FakeExec(behaviour or {}, pods, kwargs.pop("delay", 0.0))
    node_shell = kwargs.pop("node_shell", None)
    report = sweep.sweep(
        Transports(cluster, pod_exec, node_shell), settings or Settings(), known or {}, **kwargs
    )
    return report, cluster, pod_exec


def by_name(report: sweep.SweepReport) -> dict[str, sweep.NodeReport]:
    return {n.name: n for n in report.nodes}


# --- which nodes count as rebooted ------------------------------------------------------


def test_a_node_seen_for_the_first_time_is_a_baseline_and_not_probed() -> None:
    report, _, pod_exec = run([node("win1")], [pod("a", "win1")])
    (only,) = report.nodes
    assert (only.rebooted, only.state, only.boot_id) == (False, "not-probed", "1")
    assert pod_exec.calls == []


def test_a_first_seen_node_with_a_recent_rebooted_event_is_probed() -> None:
    report, _, pod_exec = run(
        [node("win1", "7"), node("win2", "3")],
        [pod("a", "win1"), pod("b", "win2")],
        (rebooted_event("win1", "7"), rebooted_event("win2", "3", ago=timedelta(hours=3))),
        behaviour={"win1": "stale", "win2": "stale"},
    )
    nodes = by_name(report)
    assert (nodes["win1"].rebooted, nodes["win1"].state) == (True, "failing")
    # An old reboot of a node winpod never saw is history, not news: no probe, no alert.
    assert (nodes["win2"].rebooted, nodes["win2"].state) == (False, "not-probed")
    assert {p for p, _ in pod_exec.calls} == {"a"}


def test_an_unchanged_boot_is_not_probed_even_with_a_recent_event() -> None:
    report, _, pod_exec = run(
        [node("win1", "7")],
        [pod("a", "win1")],
        (rebooted_event("win1", "7"),),
        known={"win1": "7"},
        behaviour={"win1": "stale"},
    )
    assert (report.nodes[0].rebooted, report.nodes[0].state) == (False, "not-probed")
    assert report.findings == [] and pod_exec.calls == []


def test_a_changed_boot_id_is_a_reboot_without_any_event() -> None:
    report, _, _ = run(
        [node("win1", "8")], [pod("a", "win1")], known={"win1": "7"}, behaviour={"win1": "stale"}
    )
    assert (report.nodes[0].rebooted, report.nodes[0].state) == (True, "failing")
    assert report.summary()["rebooted"] == 1


def test_a_node_with_an_open_alert_is_probed_again_to_notice_recovery() -> None:
    report, _, pod_exec = run(
        [node("win1", "8")], [pod("a", "win1")], known={"win1": "8"}, also_probe={"win1"}
    )
    assert (report.nodes[0].rebooted, report.nodes[0].state) == (False, "ok")
    assert pod_exec.calls == [("a", tuple(LOOKUP))]


# --- what a probed node is --------------------------------------------------------------


def test_stale_policies_are_an_error_finding_with_the_remediations() -> None:
    report, _, _ = run(
        [node("win1", "8")],
        [pod("a", "win1")],
        (rebooted_event("win1", "8"),),
        known={"win1": "7"},
        behaviour={"win1": "stale"},
    )
    (failing,) = report.nodes
    assert failing.state == "failing" and failing.probed == ("shop/a",)
    finding = failing.finding
    assert finding is not None and (finding.check, finding.severity) == (
        "dns-after-reboot",
        "error",
    )
    assert "win1" in finding.title
    evidence = "\n".join(finding.evidence)
    assert "probe `nslookup kubernetes.default.svc.cluster.local` failed" in evidence
    assert f"nslookup kubernetes.default.svc.cluster.local {DNS_POD_IPS[0]}` succeeded" in evidence
    assert "Node win1 has been rebooted, boot id: 8" in evidence
    assert "fewer than two" in evidence
    assert [(r.id, r.target) for r in finding.remediations] == [
        ("kube-proxy-restart", "win1"),
        ("hns-reset", "win1"),
        ("pod-dns-override", "shop/a"),
        ("dns-keeper", "cluster"),
    ]
    assert report.findings == [finding]


class RecordingShell:
    """A node shell that says the node has no kube-proxy at all, and records every script."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run_script(self, *args: Any) -> CommandResult:
        self.scripts.append(str(args))
        return CommandResult('{"services": {"kubelet": "Running"}}', "", 0)


def test_a_sweep_runs_no_node_script_to_choose_its_buttons() -> None:
    # A node script per failing node (a HostProcess pod each on managed clusters) only to
    # decide whether to offer kube-proxy-restart would make sweeps cost what outages cost;
    # the restart's own plan says when there is nothing to restart.
    shell = RecordingShell()
    reachable = node("win1", "8")
    reachable["status"]["addresses"] = [{"type": "InternalIP", "address": "10.240.0.4"}]
    report, _, _ = run(
        [reachable],
        [pod("a", "win1")],
        (rebooted_event("win1", "8"),),
        known={"win1": "7"},
        behaviour={"win1": "stale"},
        node_shell=shell,
    )
    (failing,) = report.nodes
    assert failing.finding is not None and failing.finding.severity == "error"
    assert "kube-proxy-restart" in [r.id for r in failing.finding.remediations]
    assert shell.scripts == []


def test_no_answer_from_kube_dns_either_is_no_network_not_stale_policies() -> None:
    report, _, _ = run(
        [node("win1", "8")], [pod("a", "win1")], known={"win1": "7"}, behaviour={"win1": "dead"}
    )
    (dead,) = report.nodes
    assert dead.state == "no-network"
    assert dead.finding is not None and dead.finding.severity == "warning"
    assert dead.finding.remediations == ()  # resetting HNS would not help a node without network
    assert report.summary()["failing"] == 1


@pytest.mark.parametrize("failure", ["unreachable", "timeout"])
def test_a_pod_that_cannot_be_reached_is_could_not_check(failure: str) -> None:
    report, _, _ = run(
        [node("win1", "8")],
        [pod("a", "win1"), pod("b", "win1")],
        known={"win1": "7"},
        behaviour={"win1": failure},
    )
    (unknown,) = report.nodes
    assert unknown.state == "unreachable"
    # neither healthy nor broken: nobody gets alerted; without WinRM HNS cannot tell either
    assert unknown.finding is not None and unknown.finding.severity == "warning"
    assert unknown.finding.title == "Could not check the node's HNS policies"
    assert sum("could not probe" in line for line in unknown.evidence) == 2
    assert report.summary() | {"duration_ms": 0} == {
        "checked": 1,
        "rebooted": 1,
        "failing": 0,
        "unreachable": 1,
        "duration_ms": 0,
    }


def test_a_rebooted_node_without_pods_cannot_be_probed_and_says_why_it_matters() -> None:
    report, _, pod_exec = run(
        [node("win1", "8")],
        [pod("pending", "win1", phase="Pending"), pod("no-ip", "win1", ip=None)],
        known={"win1": "7"},
    )
    (empty,) = report.nodes
    assert (empty.state, empty.running_pods) == ("no-pods", 0)
    assert empty.finding is not None and empty.finding.severity == "warning"  # no WinRM here
    assert "dns-keeper" in empty.evidence[-1]
    assert pod_exec.calls == []


@pytest.mark.parametrize(("answer", "state"), [("stale", "failing"), ("ok", "ok")])
def test_the_pod_that_answers_decides_when_the_other_cannot_be_reached(
    answer: str, state: str
) -> None:
    report, _, _ = run(
        [node("win1", "8")],
        [pod("a", "win1"), pod("b", "win1")],
        known={"win1": "7"},
        behaviour={"a": "unreachable", "b": answer},
    )
    (mixed,) = report.nodes
    assert mixed.state == state and set(mixed.probed) == {"shop/a", "shop/b"}
    assert any("shop/a: could not probe" in line for line in mixed.evidence)


def test_a_healthy_rebooted_node_is_ok_without_a_finding() -> None:
    report, _, _ = run([node("win1", "8")], [pod("a", "win1")], known={"win1": "7"})
    assert (report.nodes[0].state, report.nodes[0].finding) == ("ok", None)
    assert report.findings == []


# --- cost: probes and API calls ---------------------------------------------------------


def test_at_most_two_pods_are_probed_per_node() -> None:
    pods = [pod(f"p{i}", "win1") for i in range(5)] + [pod("q", "win2")]
    report, _, pod_exec = run(
        [node("win1", "8"), node("win2", "8")],
        pods,
        known={"win1": "7", "win2": "7"},
        behaviour={"win1": "stale", "win2": "stale"},
    )
    nodes = by_name(report)
    assert len(nodes["win1"].probed) == 2 and nodes["win1"].running_pods == 5
    assert len({p for p, _ in pod_exec.calls if p.startswith("p")}) == 2
    assert report.probes == 3


def test_reads_follow_the_rebooted_nodes_not_the_fleet() -> None:
    def calls_for(fleet: int) -> Counter[tuple[str, str, str | None]]:
        names = [f"win{i}" for i in range(fleet)]
        _, cluster, pod_exec = run(
            [node(n, "8" if n == "win0" else "7") for n in names] + [node("linux0", windows=False)],
            [pod(f"pod-{n}-{j}", n) for n in names for j in range(3)],
            known=dict.fromkeys(names, "7"),
            behaviour=dict.fromkeys(names, "stale"),
        )
        assert {p for p, _ in pod_exec.calls} == {"pod-win0-0", "pod-win0-1"}
        return Counter(cluster.calls)

    one, many = calls_for(1), calls_for(60)
    assert one == many
    assert many == Counter(
        [
            ("list", "Node", None),  # one (paged) list of boot ids: a watch in the bot
            ("get", "Service", "kube-system"),
            ("list", "Pod", "kube-system"),
            ("get", "Node", None),  # then per rebooted node: the node, its pods, its events
            ("list", "Pod", None),
            ("list", "Event", None),
        ]
    )


def test_given_boot_ids_no_node_list_is_read() -> None:
    cluster = FakeCluster([node("win1", "8")], [pod("a", "win1")], [])
    pod_exec = FakeExec({"win1": "stale"}, [pod("a", "win1")])
    report = sweep.sweep(
        Transports(cluster, pod_exec, None), Settings(), {"win1": "7"}, boots={"win1": "8"}
    )
    assert report.nodes[0].state == "failing"
    assert ("list", "Node", None) not in cluster.calls


def test_nodes_handed_over_are_not_read_again() -> None:
    rebooted = node("win1", "8")
    cluster = FakeCluster([rebooted, node("win2", "8")], [pod("a", "win1"), pod("b", "win2")], [])
    pod_exec = FakeExec({}, [pod("a", "win1"), pod("b", "win2")])
    asked: list[list[str]] = []

    def known_nodes(names: list[str]) -> dict[str, KubeObject]:
        asked.append(names)
        return {"win1": rebooted}

    report = sweep.sweep(
        Transports(cluster, pod_exec, None),
        Settings(),
        {"win1": "7", "win2": "7"},
        boots={"win1": "8", "win2": "8"},
        nodes=known_nodes,
    )
    assert asked == [["win1", "win2"]]
    assert [n.state for n in report.nodes] == ["ok", "ok"]
    assert Counter(c for c in cluster.calls if c[1] == "Node") == {("get", "Node", None): 1}


def test_probes_run_concurrently_up_to_the_setting_and_report_progress() -> None:
    names = [f"win{i}" for i in range(8)]
    progress: list[tuple[int, int]] = []
    report, _, pod_exec = run(
        [node(n, "8") for n in names],
        [pod(f"pod-{n}", n) for n in names],
        known=dict.fromkeys(names, "7"),
        settings=Settings(sweep=SweepSettings(concurrency=3)),
        progress=lambda done, total: progress.append((done, total)),
        delay=0.05,
    )
    assert pod_exec.most_at_once == 3
    assert [n.state for n in report.nodes] == ["ok"] * 8
    assert progress == [(done, 8) for done in range(1, 9)]


def test_progress_counts_a_node_without_pods_as_done() -> None:
    progress: list[tuple[int, int]] = []
    run(
        [node("win1", "8"), node("win2", "8")],
        [pod("a", "win1")],
        known={"win1": "7", "win2": "7"},
        progress=lambda done, total: progress.append((done, total)),
    )
    assert progress == [(1, 2), (2, 2)]


def test_linux_nodes_and_their_pods_are_not_part_of_the_sweep() -> None:
    report, _, pod_exec = run(
        [node("linux0", "9", windows=False), node("win1", "8")],
        [pod("nginx", "linux0"), pod("a", "win1")],
        (rebooted_event("linux0", "9"),),
        known={"win1": "7"},
    )
    assert [n.name for n in report.nodes] == ["win1"]
    assert {p for p, _ in pod_exec.calls} == {"a"}


def test_the_json_report_has_nodes_findings_and_summary() -> None:
    report, _, _ = run(
        [node("win1", "8"), node("win2", "1")],
        [pod("a", "win1"), pod("b", "win2")],
        known={"win1": "7"},
        behaviour={"win1": "stale"},
    )
    document = report.to_json()
    assert set(document) == {"nodes", "findings", "summary"}
    assert [(n["name"], n["state"], n["rebooted"]) for n in document["nodes"]] == [
        ("win1", "failing", True),
        ("win2", "not-probed", False),
    ]
    assert [f["check"] for f in document["findings"]] == ["dns-after-reboot"]
    assert {k: v for k, v in document["summary"].items() if k != "duration_ms"} == {
        "checked": 2,
        "rebooted": 1,
        "failing": 1,
        "unreachable": 0,
    }


def test_the_sweep_pool_runs_every_step_a_step_leads_to_then_raises_a_failure() -> None:
    ran: list[str] = []
    lock = threading.Lock()

    def step(name: str, following: list[str], fail: bool = False) -> list[sweep.Step]:
        with lock:
            ran.append(name)
        if fail:
            raise RuntimeError(f"{name} broke")
        return [sweep.Step(lambda _node, n=n: step(n, []), node, None) for n in following]

    node = sweep._Node("n")
    first = [
        sweep.Step(lambda _node: step("a", ["a1", "a2"]), node),
        sweep.Step(lambda _node: step("b", [], fail=True), node),
        sweep.Step(lambda _node: step("c", ["c1"]), node),
    ]

    with pytest.raises(RuntimeError, match="b broke"):
        sweep._run_steps(first, workers=2)
    assert sorted(ran) == ["a", "a1", "a2", "b", "c", "c1"]
    sweep._run_steps([], workers=2)  # nothing to run ends at once
