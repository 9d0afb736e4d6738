"""The simulated API server through the real `kubectl` binary: the seed chapter's commands."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import RunningSim

KUBECTL = shutil.which("kubectl")
pytestmark = [
    pytest.mark.wire,
    pytest.mark.skipif(
        KUBECTL is None,
        reason="kubectl is not on PATH; these tests run the "
        "real kubectl binary against the simulator",
    ),
]

# The seed chapter's rdp.yaml (seed/windows-troubleshooting.zh.md), node IP to fill in.
RDP_YAML = """\
# rdp.yaml
apiVersion: v1
kind: Service
metadata:
  name: rdp
spec:
  type: LoadBalancer
  ports:
  - protocol: TCP
    port: 3389
    targetPort: 3389
---
kind: Endpoints
apiVersion: v1
metadata:
  name: rdp
subsets:
  - addresses:
      - ip: {node_ip}
    ports:
      - port: 3389
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubectl's discovery cache, kept out of the user's ~/.kube."""
    return tmp_path_factory.mktemp("kubectl-cache")


def kubectl(sim: RunningSim, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(sim.kubeconfig), "--cache-dir", str(cache_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_get_nodes_as_json(seed_sim: RunningSim, cache_dir: Path) -> None:
    listing = json.loads(ok(kubectl(seed_sim, cache_dir, "get", "nodes", "-o", "json")))
    by_name = {item["metadata"]["name"]: item for item in listing["items"]}
    assert {"akswin000000", "akswin000003", "hvwin000004"} <= set(by_name)
    legacy = by_name["akswin000003"]["status"]["nodeInfo"]
    assert legacy["kernelVersion"] == "10.0.16299.125"


def test_get_pods_in_all_namespaces_prints_a_table(seed_sim: RunningSim, cache_dir: Path) -> None:
    lines = ok(kubectl(seed_sim, cache_dir, "get", "pods", "-A")).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = {tuple(line.split()[:4]) for line in lines[1:]}
    assert ("web", "iis-healthy", "1/1", "Running") in rows
    assert ("web", "iis-0", "0/1", "ContainerCreating") in rows
    assert ("web", "nginx-7c5d", "0/1", "ErrImagePull") in rows


def test_get_pods_wide_shows_ip_and_node(seed_sim: RunningSim, cache_dir: Path) -> None:
    lines = ok(kubectl(seed_sim, cache_dir, "get", "pods", "-n", "shop", "-o", "wide"))
    header, row = lines.splitlines()[:2]
    assert header.split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    name, _, _, _, _, pod_ip, node = row.split()[:7]
    assert (name, node) == ("api-0", "akswin000002")
    assert ipaddress.ip_address(pod_ip)


@pytest.mark.parametrize(
    ("args", "header"),
    [
        (["get", "nodes"], "NAME STATUS ROLES AGE VERSION"),
        (["get", "svc", "-A"], "NAMESPACE NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"),
        (["get", "endpointslices", "-n", "kube-system"], "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"),
        (["get", "events", "-n", "web"], "LAST SEEN TYPE REASON OBJECT MESSAGE"),
        (["get", "namespaces"], "NAME STATUS AGE"),
    ],
)
def test_get_prints_kubectls_columns(
    seed_sim: RunningSim, cache_dir: Path, args: list[str], header: str
) -> None:
    lines = ok(kubectl(seed_sim, cache_dir, *args)).splitlines()
    assert " ".join(lines[0].split()) == header
    assert len(lines) > 1


def test_apply_server_side_then_client_side(
    seed_sim: RunningSim, cache_dir: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "keeper.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keeper, namespace: winpod}\n"
        "data: {mode: two-pods}\n"
    )
    applied = ok(kubectl(seed_sim, cache_dir, "apply", "--server-side", "-f", str(manifest)))
    assert applied.strip() == "configmap/keeper serverside-applied"

    manifest.write_text(manifest.read_text().replace("two-pods", "daemonset"))
    applied = ok(kubectl(seed_sim, cache_dir, "apply", "-f", str(manifest)))
    assert applied.strip() == "configmap/keeper configured"
    mode = kubectl(
        seed_sim, cache_dir, "get", "cm", "keeper", "-n", "winpod", "-o", "jsonpath={.data.mode}"
    )
    assert ok(mode) == "daemonset"
    ok(kubectl(seed_sim, cache_dir, "delete", "-f", str(manifest)))


def test_rdp_yaml_from_the_seed_chapter(
    seed_sim: RunningSim, cache_dir: Path, tmp_path: Path
) -> None:
    node_ip = ok(
        kubectl(
            seed_sim,
            cache_dir,
            "get",
            "node",
            "akswin000000",
            "-o",
            "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}",
        )
    )
    assert node_ip == "127.0.1.2"
    manifest = tmp_path / "rdp.yaml"
    manifest.write_text(RDP_YAML.format(node_ip=node_ip))

    # No --validate=false: kubectl finds server-side field validation in /openapi/v3.
    created = ok(kubectl(seed_sim, cache_dir, "create", "-f", str(manifest)))
    assert created.splitlines() == ["service/rdp created", "endpoints/rdp created"]

    deadline = time.monotonic() + 5
    columns: list[str] = []
    while time.monotonic() < deadline:
        table = ok(kubectl(seed_sim, cache_dir, "get", "svc", "rdp")).splitlines()
        assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
        columns = table[1].split()
        if columns[3] != "<pending>":
            break
        time.sleep(0.2)
    name, service_type, cluster_ip, external_ip, ports = columns[:5]
    assert (name, service_type) == ("rdp", "LoadBalancer")
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.0.0.0/16")
    assert ipaddress.ip_address(external_ip) in ipaddress.ip_network("203.0.113.0/24")
    port, node_port_proto = ports.split(":")
    assert port == "3389" and node_port_proto.endswith("/TCP")
    assert 30000 <= int(node_port_proto.split("/")[0]) <= 32767

    endpoints = ok(kubectl(seed_sim, cache_dir, "get", "endpoints", "rdp")).splitlines()
    assert endpoints[1].split()[:2] == ["rdp", f"{node_ip}:3389"]

    deleted = ok(kubectl(seed_sim, cache_dir, "delete", "-f", str(manifest)))
    assert deleted.splitlines() == ['service "rdp" deleted', 'endpoints "rdp" deleted']
    gone = kubectl(seed_sim, cache_dir, "get", "svc", "rdp")
    assert gone.returncode == 1
    assert 'services "rdp" not found' in gone.stderr


def test_exec_prints_the_command_output(seed_sim: RunningSim, cache_dir: Path) -> None:
    result = kubectl(
        seed_sim, cache_dir, "exec", "-n", "web", "iis-healthy", "--", "cmd", "/c", "echo", "hello"
    )
    assert ok(result).strip() == "hello"


def test_exec_exit_code_and_refusals(seed_sim: RunningSim, cache_dir: Path) -> None:
    failed = kubectl(
        seed_sim, cache_dir, "exec", "-n", "web", "iis-healthy", "--", "cmd", "/c", "exit", "3"
    )
    assert failed.returncode == 3
    assert "command terminated with exit code 3" in failed.stderr

    creating = kubectl(
        seed_sim, cache_dir, "exec", "-n", "web", "iis-0", "--", "cmd", "/c", "echo", "x"
    )
    assert creating.returncode == 1
    assert 'container not found ("iis")' in creating.stderr
