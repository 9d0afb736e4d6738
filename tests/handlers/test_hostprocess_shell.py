"""The pure parts of the HostProcess transport: the pod it creates, how it reads a log, which
refusal a 403 is, which leftovers it reaps, and which transport `node.transport` means."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.wiring import node_transport
from config.settings import Settings
from handlers.errors import OutcomeUnknown, Refused, TimedOut
from handlers.node_scripts import for_the_wire, render
from handlers.transports import KubeObject, NodeTarget
from handlers.transports.hostprocess import (
    HostProcessShell,
    pod_manifest,
    reap_leftovers,
    refusal,
    split_log,
)
from handlers.transports.powershell_output import strip_clixml

SCRIPT = render("node-memory")


def test_the_pod_is_a_hostprocess_pod_bound_to_the_node_running_the_encoded_script() -> None:
    pod = pod_manifest("winpod-node-memory-1", "winpod", "akswin000002", "img:1", SCRIPT, 120)

    spec = pod["spec"]
    assert spec["nodeName"] == "akswin000002"
    assert spec["hostNetwork"] is True
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["securityContext"]["windowsOptions"] == {
        "hostProcess": True,
        "runAsUserName": "NT AUTHORITY\\SYSTEM",
    }
    assert {"operator": "Exists"} in spec["tolerations"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "winpod"
    assert pod["metadata"]["labels"]["winpod.io/node"] == "akswin000002"
    [container] = spec["containers"]
    assert container["image"] == "img:1"
    *flags, encoded = container["command"]
    assert flags == [
        "powershell.exe",
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    assert base64.b64decode(encoded).decode("utf-16-le") == for_the_wire(SCRIPT)


def test_a_node_name_too_long_for_a_label_is_left_out_of_the_labels() -> None:
    node = "n" * 70
    pod = pod_manifest("p", "winpod", node, "img:1", SCRIPT, 60)
    assert pod["spec"]["nodeName"] == node
    assert "winpod.io/node" not in pod["metadata"]["labels"]


def test_the_log_is_freed_of_powershells_clixml() -> None:
    progress = (
        '#< CLIXML\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
        "</T></TN></Obj></Objs>\n"
    )

    stdout, stderr = split_log(progress + '{"script":"node-memory"}\n')

    assert stdout.strip() == '{"script":"node-memory"}'
    assert stderr == strip_clixml(progress) == ""
    assert split_log("plain\n") == ("plain\n", "")


def test_a_pod_security_403_names_the_label_and_an_rbac_403_the_verbs() -> None:
    security = refusal('pods "x" is forbidden: violates PodSecurity "baseline:latest": …', "ops")
    rbac = refusal(
        'pods is forbidden: User "system:serviceaccount:ops:winpod" cannot create', "ops"
    )

    assert "kubectl label namespace ops pod-security.kubernetes.io/enforce=privileged" in str(
        security
    )
    assert "pods create, get, list, delete and pods/log get" in str(rbac)
    assert "PodSecurity" not in str(rbac) and "label" not in str(rbac)


class FakeCluster:
    def __init__(self, pods: list[KubeObject], refuse_create: str = "") -> None:
        self.pods = pods
        self.refuse_create = refuse_create
        self.deleted: list[str] = []

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        return {"metadata": {"name": name, "labels": {"kubernetes.io/os": "windows"}}}

    def list(self, kind: str, **_: Any) -> list[KubeObject]:
        return self.pods

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject:
        raise Refused(self.refuse_create)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        self.deleted.append(name)


def test_an_rbac_refusal_on_create_names_the_missing_permissions() -> None:
    cluster = FakeCluster([], refuse_create="pods is forbidden: cannot create resource pods")
    shell = HostProcessShell(cluster, cluster, "winpod", "img:1")  # type: ignore[arg-type]

    with pytest.raises(Refused, match="grant pods create, get, list, delete and pods/log get"):
        shell.run_script(NodeTarget("akswin000002", "10.240.0.4"), SCRIPT, 10)

    assert cluster.deleted == []  # nothing was created


def test_only_script_pods_older_than_the_timeout_are_reaped() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def pod(name: str, age: timedelta) -> KubeObject:
        created = (now - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"metadata": {"name": name, "creationTimestamp": created}}

    cluster = FakeCluster([pod("old", timedelta(minutes=5)), pod("young", timedelta(seconds=30))])

    reaped = reap_leftovers(cluster, "winpod", timedelta(minutes=2), now)  # type: ignore[arg-type]

    assert reaped == cluster.deleted == ["old"]


@pytest.mark.parametrize(
    ("transport", "username", "chosen"),
    [
        ("auto", None, "hostprocess"),
        ("auto", "winpod", "winrm"),
        ("hostprocess", "winpod", "hostprocess"),
        ("winrm", None, "winrm"),
    ],
)
def test_auto_is_winrm_only_with_winrm_credentials(
    transport: str, username: str | None, chosen: str
) -> None:
    winrm = {"username": username, "password": "p" if username else None}
    settings = Settings.model_validate({"node": {"transport": transport}, "winrm": winrm})
    assert node_transport(settings) == chosen


class FrozenPod(FakeCluster):
    """A pod whose status stops changing: kubelet took it on (startTime) or never did."""

    def __init__(self, status: KubeObject) -> None:
        super().__init__([])
        self.status = status

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        if kind == "Node":
            return super().get(kind, name, namespace)
        return {"metadata": {"name": name}, "status": self.status}

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject:
        return body


def _run_frozen(status: KubeObject) -> FrozenPod:
    cluster = FrozenPod(status)
    ticks = iter(range(100))
    shell = HostProcessShell(
        cluster,  # type: ignore[arg-type]
        cluster,  # type: ignore[arg-type]
        "winpod",
        "img:1",
        clock=lambda: next(ticks),
        sleep=lambda _: None,
    )
    shell.run_script(NodeTarget("akswin000002", ""), render("hns-reset"), 10)
    return cluster


def test_a_pod_kubelet_took_on_and_never_reported_is_outcome_unknown() -> None:
    # the script may have stopped kubelet before it reported Running
    with pytest.raises(OutcomeUnknown, match="hns-reset was started in a HostProcess pod"):
        _run_frozen({"phase": "Pending", "startTime": "2026-01-01T00:00:00Z"})


def test_a_pod_kubelet_never_took_on_is_refused_as_not_run() -> None:
    with pytest.raises(TimedOut, match="never started on node akswin000002 within 10 s"):
        _run_frozen({"phase": "Pending"})
