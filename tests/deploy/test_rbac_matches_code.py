"""deploy/'s RBAC allows every Kubernetes API request winpod makes, and grants nothing it never
uses: the simulator records each request while the real CLI and `winpod serve` run every code
path that touches the API, and each request is checked the way the API server authorizes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from bot_process import start_bot
from sim_process import ROOT, SCENARIOS, SEED, RunningSim, config_without_winrm, start_sim

pytestmark = pytest.mark.wire

DEPLOY = ROOT / "deploy"
# Non-resource URLs every authenticated user may GET (the built-in system:discovery and
# system:public-info-viewer roles); winpod's RBAC need not grant them.
DISCOVERY_PATHS = ("/version", "/api", "/apis", "/openapi/", "/healthz", "/livez", "/readyz")
# (namespace, API group, resource, verb) granted on purpose although no recorded request uses
# it; each says why. deploy/README.md lists the same.
UNUSED_ON_PURPOSE: dict[tuple[str, str, str, str], str] = {}
NAMESPACE_SUBRESOURCES = ("status", "finalize")
COMMAND_TIMEOUT_S = 240  # one batch of commands


@dataclass(frozen=True)
class Access:
    """One authorization check, with the attributes the API server derives from a request."""

    verb: str
    group: str
    resource: str  # "pods/exec" for a subresource
    namespace: str | None
    name: str | None
    request: str  # "GET /api/v1/…", for messages

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        name = f" {self.name}" if self.name else ""
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource}{group}{name}{where} ({self.request})"


@dataclass(frozen=True)
class Grant:
    """One verb on one resource from one rule, where its binding makes it apply."""

    namespace: str | None  # None: every namespace and the cluster scope (a ClusterRoleBinding)
    group: str
    resource: str
    verb: str
    names: frozenset[str]  # resourceNames; empty: any name
    source: str

    def allows(self, access: Access) -> bool:
        return (
            (self.group, self.resource, self.verb) == (access.group, access.resource, access.verb)
            and (self.namespace is None or self.namespace == access.namespace)
            and (not self.names or access.name in self.names)
        )

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        return (self.namespace, self.group, self.resource, self.verb)


def accesses(method: str, path: str, query: Mapping[str, list[str]]) -> list[Access]:
    """The checks the API server makes for one request; empty for a non-resource URL.

    GET on a collection is `list`, on an object `get` (`watch` with ?watch=true); PUT is
    `update`. The exec WebSocket is a GET upgrade that API servers from 1.30 authorize as
    `create` on pods/exec and older ones as `get`: it needs both to work on either.
    """
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return []
    if not rest:  # /api/v1, /apis/GROUP/VERSION: discovery
        return []
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 1:
        # as the API server's RequestInfo: a namespace's own URL is in that namespace too
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    watch = query.get("watch", ["false"])[0] in ("true", "1")
    read = "watch" if watch else ("list" if name is None else "get")
    if name is None:
        verb = {"GET": read, "POST": "create", "DELETE": "deletecollection"}[method]
    else:
        verb = {
            "GET": read,
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }[method]
    if subresource is not None:
        resource = f"{resource}/{subresource}"
    checks = ["create", "get"] if resource == "pods/exec" and method == "GET" else [verb]
    request = f"{method} {path}"
    return [Access(v, group, resource, namespace, name, request) for v in checks]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def _applied() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents(DEPLOY / name)]


def _service_account() -> dict[str, str]:
    (deployment,) = (d for d in _applied() if d["kind"] == "Deployment")
    return {
        "kind": "ServiceAccount",
        "name": deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "namespace": deployment["metadata"]["namespace"],
    }


def grants() -> list[Grant]:
    """What the Deployment's ServiceAccount may do, following the bindings in deploy/."""
    subject = _service_account()
    rules = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d["rules"]
        for d in _applied()
        if d["kind"] in ("ClusterRole", "Role")
    }
    found = []
    for binding in (d for d in _applied() if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        if subject not in binding["subjects"]:
            continue
        scope = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        ref = binding["roleRef"]
        role = (ref["kind"], None if ref["kind"] == "ClusterRole" else scope, ref["name"])
        for rule in rules[role]:
            found += [
                Grant(
                    scope,
                    group,
                    resource,
                    verb,
                    frozenset(rule.get("resourceNames", ())),
                    f"{ref['kind']} {ref['name']}",
                )
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            ]
    return found


def _denied(access: Access, allowed: list[Grant]) -> bool:
    return not any(grant.allows(access) for grant in allowed)


# --- recording everything winpod does against the simulated cluster ----------------------------


@dataclass(frozen=True)
class Recording:
    accesses: tuple[Access, ...]
    non_resource: tuple[str, ...]
    bot_namespace: str


# Runs `winpod ARGS…` for each argv read from stdin through the console script's own entry
# point, in one process: the commands are what an operator types, without paying the client
# imports once per command.
BATCH = """
import contextlib, io, json, sys
from bot.cli import main

results = []
for argv in json.load(sys.stdin):
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    results.append({"argv": argv, "code": code, "output": output.getvalue()})
print(json.dumps(results))
"""


def _winpod(sim: RunningSim, runs: list[tuple[list[str], tuple[int, ...]]]) -> None:
    """Run each `winpod` command in order, each with the exit codes it may end with; a failure
    would hide the calls after it, so it fails the recording."""
    argvs = [[*argv, "--config", str(sim.config)] for argv, _ in runs]
    result = subprocess.run(
        [sys.executable, "-c", BATCH],
        cwd=ROOT,
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for answer, (_, ok) in zip(json.loads(result.stdout), runs, strict=True):
        command = " ".join(answer["argv"])
        assert answer["code"] in ok, f"winpod {command} exited {answer['code']}\n{answer['output']}"


def _seed(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _documents(SEED) if doc["kind"] == kind]


def _diagnose_everything_then_rdp(sim: RunningSim) -> None:
    """Every seed pod, every Windows node and a sweep while the seed's problems are all there
    (exit 1: error findings, as expected); then RDP open, extend, list and close, and once more
    where the API serves no EndpointSlices."""
    pods = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in _seed("Pod")]
    nodes = [
        n["metadata"]["name"]
        for n in _seed("Node")
        if n["metadata"]["labels"].get("kubernetes.io/os") == "windows"
    ]
    findings_ok = (0, 1)
    rdp_open = ["rdp", "open", "akswin000001", "--ttl", "10m", "--yes"]
    _winpod(
        sim,
        [
            *((["diagnose", pod], findings_ok) for pod in pods),
            *((["node", node], findings_ok) for node in nodes),
            (["sweep"], findings_ok),
            (rdp_open, (0,)),
            (rdp_open, (0,)),  # a second open extends the session: a patch
            (["rdp", "list"], (0,)),
            (["rdp", "close", "akswin000001"], (0,)),
        ],
    )
    # an API server without discovery.k8s.io/v1: the session's endpoint is a v1 Endpoints
    sim.control("POST", "/sim/v1/apis", {"unserved": ["discovery.k8s.io/v1"]})
    try:
        _winpod(sim, [(rdp_open, (0,)), (["rdp", "close", "akswin000001"], (0,))])
    finally:
        sim.control("POST", "/sim/v1/apis", {"unserved": []})


def _remediate_everything(sim: RunningSim) -> None:
    """Every remediation that fixes a seed problem, each on the target the seed has it on."""
    remediations = [
        ("hns-reset", "akswin000002"),
        ("kube-proxy-restart", "akswin000002"),
        ("pod-dns-override", "shop/api-0"),
        ("dns-keeper", "cluster"),
        ("mac-spoofing-on", "hvwin000004"),
        ("fix-sandbox-image", "akswin000005"),
    ]
    _winpod(sim, [(["remediate", rid, target, "--yes"], (0,)) for rid, target in remediations])


def _node_scripts_in_hostprocess_pods(sim: RunningSim) -> None:
    """Without WinRM credentials: node scripts in HostProcess pods (a diagnosis that reads HNS,
    hns-reset), then `winpod serve` (which reaps leftover script pods at start-up)."""
    config_without_winrm(sim)
    _winpod(
        sim,
        [
            (["diagnose", "shop/api-0"], (0, 1)),
            (["remediate", "hns-reset", "akswin000002", "--yes"], (0,)),
        ],
    )
    _serve_until_leader(sim)


def _pin_every_workload_kind_then_serve(sim: RunningSim) -> None:
    """pin-windows-build on a pod of a Deployment (through its ReplicaSet), of a StatefulSet
    and of a DaemonSet; then `winpod serve`."""
    pods = ("shop/shop-web-6d4cf56db6-x7k2p", "shop/ledger-0", "kube-system/log-agent-q9s7d")
    _winpod(sim, [(["remediate", "pin-windows-build", pod, "--yes"], (0,)) for pod in pods])
    _serve_until_leader(sim)


def _diagnose_advice_pod(sim: RunningSim) -> None:
    """A pod with a Hyper-V RuntimeClass and a gMSA credential spec, and its node."""
    _winpod(
        sim,
        [
            (["diagnose", "web/webapp-6d4cf56db6-x7k2p"], (0, 1)),
            (["node", "akswin000001"], (0, 1)),
        ],
    )


def _restart_a_cni_pod(sim: RunningSim) -> None:
    """A pod waiting for its network, its node, and the CNI pod restarted."""
    _winpod(
        sim,
        [
            (["diagnose", "web/app-0"], (1,)),
            (["remediate", "cni-pod-restart", "akswin-calico", "--yes"], (0,)),
        ],
    )


def _serve_until_leader(sim: RunningSim) -> None:
    """Start-up, leader election (take the Lease), readiness, the first sweep (and so the watch
    on Nodes), then release the Lease on stop."""
    bot = start_bot(sim, name="rbac-serve")

    def readiness_as_leader() -> dict[str, Any] | None:
        answer: dict[str, Any] = json.loads(bot.get("/readyz")[1])
        return answer if answer.get("leader") else None

    def swept() -> bool:
        # the leader's first sweep starts the watch on Nodes
        return "winpod_sweep_seconds_count 1.0" in bot.get("/metrics")[1]

    try:
        readiness = bot.wait_for(readiness_as_leader, what="leadership")
        assert readiness["status"] == "ready", readiness
        bot.wait_for(swept, what="the first sweep")
    finally:
        bot.stop()
    assert "could not release the lease" not in bot.log, bot.log


def _requests(sim: RunningSim) -> list[dict[str, Any]]:
    """Every request the API server and its exec endpoint answered since the reset."""
    counted = sim.control("GET", "/sim/v1/stats")["requests"]
    found = []
    for server in ("kube", "exec"):
        answer = sim.control("GET", f"/sim/v1/requests?server={server}")
        assert not answer["truncated"], "the simulator's request log dropped requests"
        assert len(answer["requests"]) == counted[server]
        found += answer["requests"]
    return found


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    base = tmp_path_factory.mktemp("rbac")
    plan: list[tuple[Path, str, Callable[[RunningSim], None]]] = [
        (SEED, "diagnose", _diagnose_everything_then_rdp),
        (SEED, "remediate", _remediate_everything),
        (SEED, "hostprocess", _node_scripts_in_hostprocess_pods),
        (SCENARIOS / "rbac_workloads.yaml", "workloads", _pin_every_workload_kind_then_serve),
        (SCENARIOS / "rbac_advice.yaml", "advice", _diagnose_advice_pod),
        (SCENARIOS / "check_cni_not_ready.yaml", "cni", _restart_a_cni_pod),
    ]
    sims: list[RunningSim] = []
    try:
        with ThreadPoolExecutor(max_workers=len(plan)) as pool:
            starting = [pool.submit(start_sim, scenario, base / name) for scenario, name, _ in plan]
            sims += [f.result() for f in starting if f.exception() is None]
            for future in starting:
                future.result()  # re-raises a failed start once every started sim is known
            for sim in sims:
                sim.control("POST", "/sim/v1/requests/reset")
                sim.control("POST", "/sim/v1/stats/reset")
            runs = [pool.submit(step[2], sim) for step, sim in zip(plan, sims, strict=True)]
            for run in runs:
                run.result()
        requests = [r for sim in sims for r in _requests(sim)]
        namespaces = {yaml.safe_load(s.config.read_text())["kubernetes"]["namespace"] for s in sims}
        (bot_namespace,) = namespaces
        yield Recording(
            tuple(a for r in requests for a in accesses(r["method"], r["path"], r["query"])),
            tuple(r["path"] for r in requests if not accesses(r["method"], r["path"], {})),
            bot_namespace,
        )
    finally:
        for sim in sims:
            sim.stop()


# --- the tests ---------------------------------------------------------------------------------


def test_winpod_acted_in_the_namespace_the_role_is_for(recording: Recording) -> None:
    roles = {d["metadata"]["namespace"] for d in _applied() if d["kind"] == "Role"}
    assert roles == {recording.bot_namespace}
    assert any(a.namespace == recording.bot_namespace for a in recording.accesses)


def test_every_request_winpod_makes_is_allowed_by_deploy_rbac(recording: Recording) -> None:
    allowed = grants()
    denied = sorted({str(a) for a in recording.accesses if _denied(a, allowed)})
    assert not denied, "deploy/ RBAC does not allow:\n  " + "\n  ".join(denied)
    unknown = [p for p in recording.non_resource if not p.startswith(DISCOVERY_PATHS)]
    assert not unknown, f"non-resource URLs outside discovery: {unknown}"


def test_every_permission_in_deploy_rbac_is_used(recording: Recording) -> None:
    unused = {
        grant.key: grant
        for grant in grants()
        if not any(grant.allows(access) for access in recording.accesses)
    }
    unexplained = sorted(
        f"{g.source}: {g.verb} {g.resource} (group {g.group!r}, namespace {g.namespace})"
        for key, g in unused.items()
        if key not in UNUSED_ON_PURPOSE
    )
    assert not unexplained, "granted but never used:\n  " + "\n  ".join(unexplained)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/nodes", {}, [("list", "", "nodes", None, None)]),
        ("GET", "/api/v1/nodes/n1", {}, [("get", "", "nodes", None, "n1")]),
        ("GET", "/api/v1/pods", {"fieldSelector": ["x"]}, [("list", "", "pods", None, None)]),
        (
            "GET",
            "/api/v1/namespaces/web/events",
            {},
            [("list", "", "events", "web", None)],
        ),
        ("GET", "/api/v1/nodes", {"watch": ["true"]}, [("watch", "", "nodes", None, None)]),
        (
            "GET",
            "/api/v1/namespaces/shop/pods/api-0/exec",
            {"command": ["hostname"]},
            [
                ("create", "", "pods/exec", "shop", "api-0"),
                ("get", "", "pods/exec", "shop", "api-0"),
            ],
        ),
        (
            "POST",
            "/apis/discovery.k8s.io/v1/namespaces/winpod/endpointslices",
            {},
            [("create", "discovery.k8s.io", "endpointslices", "winpod", None)],
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/winpod/leases/winpod-leader",
            {},
            [("update", "coordination.k8s.io", "leases", "winpod", "winpod-leader")],
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            {},
            [("patch", "apps", "deployments", "shop", "web")],
        ),
        (
            "DELETE",
            "/api/v1/namespaces/winpod/services/rdp",
            {},
            [("delete", "", "services", "winpod", "rdp")],
        ),
        ("GET", "/api/v1/namespaces", {}, [("list", "", "namespaces", None, None)]),
        ("GET", "/api/v1/namespaces/web", {}, [("get", "", "namespaces", "web", "web")]),
        ("GET", "/version", {}, []),
        ("GET", "/apis/apps/v1", {}, []),
    ],
)
def test_a_request_maps_to_the_checks_the_api_server_makes(
    method: str,
    path: str,
    query: dict[str, list[str]],
    expected: list[tuple[str, str, str, str | None, str | None]],
) -> None:
    found = [
        (a.verb, a.group, a.resource, a.namespace, a.name) for a in accesses(method, path, query)
    ]
    assert found == expected


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/namespaces/kube-system/services/kube-dns", True),
        ("GET", "/api/v1/namespaces/default/services/kubernetes", True),
        ("GET", "/api/v1/namespaces/default/services/billing", False),  # resourceNames
        ("POST", "/api/v1/namespaces/default/services", False),  # the Role is for winpod only
        ("POST", "/api/v1/namespaces/winpod/services", True),
        ("GET", "/api/v1/namespaces/winpod/secrets/winpod", False),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/winpod/leases/winpod-leader", True),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/winpod/leases/someone-else", False),
        ("PATCH", "/apis/apps/v1/namespaces/shop/replicasets/web-1", False),
        ("DELETE", "/api/v1/nodes/akswin000001", False),
        ("GET", "/api/v1/namespaces", False),
    ],
)
def test_a_request_outside_deploy_rbac_would_fail_the_check(
    method: str, path: str, allowed: bool
) -> None:
    checks = accesses(method, path, {})
    assert checks
    assert all(not _denied(a, grants()) for a in checks) is allowed
