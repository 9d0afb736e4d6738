"""RDP access end to end: `/winpod rdp` and `winpod rdp` against the simulator, seen the way an
operator sees it — Slack threads, `kubectl get svc`, the kubernetes client and the audit log."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from bot_process import RunningBot, SlackResponse, start_bot
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from sim_process import ROOT, SCENARIOS, RunningSim, start_sim

pytestmark = pytest.mark.wire

APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"  # the simulator's winpod.yaml
REQUESTER = "U0REQUESTER"
NAMESPACE = "winpod"
SLACK_ACK_S = 3.0
# One replica without a Lease (so its scheduler runs at once), housekeeping every second
# instead of every 30 s, and a load balancer that must answer within 2 s.
BOT_ENV = {
    "WINPOD_KUBERNETES__LEADER_ELECTION": "false",
    "WINPOD_HOUSEKEEPING_INTERVAL": "1s",
    "WINPOD_RDP__LB_TIMEOUT": "2s",
    "WINPOD_RDP__MIN_TTL": "10s",  # sessions that expire within a test
}
# Generous: a busy machine takes seconds just to start Python with the kubernetes client.
CLI_TIMEOUT_S = 120.0
WAIT_S = 60.0
MSTSC = re.compile(r"mstsc\.exe /v:(\d+\.\d+\.\d+\.\d+)")
Message = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SCENARIOS / "rdp_cluster.yaml", tmp_path_factory.mktemp("rdp"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bot(sim: RunningSim) -> Iterator[RunningBot]:
    running = start_bot(sim, BOT_ENV, name="rdp")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def kube(sim: RunningSim) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def lb_silent(sim: RunningSim) -> Iterator[None]:
    """The cloud behind the load balancer does not answer for the length of a test."""
    assert sim.control("POST", "/sim/v1/lb", {"enabled": False})["enabled"] is False
    yield
    sim.control("POST", "/sim/v1/lb", {"enabled": True})


# --- what an operator runs ---------------------------------------------------------------


def winpod_argv(sim: RunningSim, *args: str) -> list[str]:
    """`winpod ARGS --config <the simulator's winpod.yaml>`."""
    return [sys.executable, "-m", "bot", *args, "--config", str(sim.config)]


def winpod(sim: RunningSim, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `winpod ARGS` with the bot's settings, as an operator next to it would."""
    return subprocess.run(
        winpod_argv(sim, *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**os.environ, **BOT_ENV},
        check=False,
    )


def kubectl(sim: RunningSim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(sim.kubeconfig), "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def svc_row(sim: RunningSim, name: str) -> dict[str, str] | None:
    """`kubectl get svc -n winpod`: the row of Service `name` as {column: value}, or None."""
    shown = kubectl(sim, "get", "svc")
    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines() or [""]
    for row in rows:
        values = dict(zip(header.split(), row.split(), strict=True))
        if values["NAME"] == name:
            return values
    return None


def service(kube: client.ApiClient, name: str) -> Any:
    try:
        return client.CoreV1Api(kube).read_namespaced_service(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def endpoint_slices(kube: client.ApiClient, name: str) -> list[Any]:
    return list(
        client.DiscoveryV1Api(kube)
        .list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={name}"
        )
        .items
    )


def internal_ip(kube: client.ApiClient, node: str) -> str:
    addresses = client.CoreV1Api(kube).read_node(node).status.addresses
    return str(next(a.address for a in addresses if a.type == "InternalIP"))


def expires_at(kube: client.ApiClient, name: str) -> datetime:
    stamp = service(kube, name).metadata.annotations["winpod.io/expires-at"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def audit(sim: RunningSim) -> list[str]:
    shown = winpod(sim, "audit", "--last", "50")
    assert shown.returncode == 0, shown.stderr
    return list(shown.stdout.splitlines())


def audited(lines: list[str], kind: str, node: str) -> list[str]:
    return [line for line in lines if re.search(rf" {kind} +{re.escape(node)} ", line)]


# --- what a person in the channel sees ----------------------------------------------------


def until(bot: RunningBot, fetch: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    found: list[T] = []

    def check() -> bool:
        value = fetch()
        if accept(value):
            found.append(value)
        return bool(found)

    bot.wait_for(check, timeout=WAIT_S, what=what)
    return found[-1]


def current(bot: RunningBot, channel: str, ts: str) -> Message:
    return next(m for m in bot.messages(channel) if m["ts"] == ts)


def thread(bot: RunningBot, channel: str, message: Message) -> str:
    return "\n".join(r["text"] for r in current(bot, channel, message["ts"])["replies"])


def wait_thread(bot: RunningBot, channel: str, message: Message, text: str) -> str:
    return until(
        bot, lambda: thread(bot, channel, message), lambda t: text in t, f"{text!r} in the thread"
    )


def told(bot: RunningBot, channel: str, user: str, text: str) -> str:
    """Wait for an ephemeral reply to `user` containing `text`; return the newest such."""
    return until(
        bot,
        lambda: [
            e["text"] for e in bot.ephemeral(channel) if e["user"] == user and text in e["text"]
        ],
        bool,
        f"{text!r} told to {user}",
    )[-1]


def request(bot: RunningBot, channel: str, text: str) -> Message:
    """`/winpod TEXT` by the requester; the request message it posts for approval."""
    before = {m["ts"] for m in bot.messages(channel)}
    response = bot.command(text, user=REQUESTER, channel=channel)
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    return until(
        bot,
        lambda: [m for m in bot.messages(channel) if m["ts"] not in before],
        bool,
        f"the request posted for {text!r}",
    )[0]


def approve(bot: RunningBot, channel: str, message: Message, user: str) -> None:
    response = bot.click(
        current(bot, channel, message["ts"]), "remediate:rdp-open", user=user, channel=channel
    )
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S


def ack_text(response: SlackResponse) -> str:
    """What Slack shows the person who typed the command, from the HTTP answer to it."""
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    if not response.body.startswith("{"):
        return response.body
    answer = response.json()
    texts = [answer.get("text", "")]
    texts += [b["text"]["text"] for b in answer.get("blocks", []) if "text" in b]
    return "\n".join(texts)


def buttons(message: Message) -> dict[str, Message]:
    return {
        e["action_id"]: e
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    }


# --- the stories --------------------------------------------------------------------------


def test_rdp_opens_after_two_approvals_extends_on_reopen_and_closes_on_request(
    bot: RunningBot, sim: RunningSim, kube: client.ApiClient
) -> None:
    name, channel = "winpod-rdp-akswin000001", "C0RDP"
    message = request(bot, channel, "rdp open akswin000001 ttl=2m")
    assert "open RDP to akswin000001 for 2m from 198.51.100.0/24" in message["text"]
    button = buttons(message)["remediate:rdp-open"]
    assert "akswin000001" in button["confirm"]["text"]["text"]  # high risk: "are you sure?"

    approve(bot, channel, message, APPROVER_A)
    asked = wait_thread(bot, channel, message, "needs a second approver")
    assert f"<@{REQUESTER}> asked for *rdp-open*" in asked
    uploads = bot.wait_for(
        lambda: [
            f
            for f in sim.control("GET", "/sim/v1/slack/files")["files"]
            if f["completed"] and f["thread_ts"] == message["ts"]
        ],
        what="the plan attached in the thread",
    )
    assert '"loadBalancerSourceRanges"' in uploads[0]["content"]  # the exact objects, up front
    assert svc_row(sim, name) is None

    approve(bot, channel, message, APPROVER_B)
    opened = wait_thread(bot, channel, message, "mstsc.exe /v:")
    address = MSTSC.findall(opened)[-1]
    assert f"RDP to akswin000001 open at {address}" in opened

    row = svc_row(sim, name)
    assert row is not None
    assert (row["TYPE"], row["EXTERNAL-IP"], row["PORT(S)"].split(":")[0]) == (
        "LoadBalancer",
        address,
        "3389",
    )
    created = service(kube, name)
    assert created.spec.selector is None
    assert created.spec.load_balancer_source_ranges == ["198.51.100.0/24"]
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "winpod"
    first_expiry = expires_at(kube, name)
    assert 90 < (first_expiry - datetime.now(UTC)).total_seconds() <= 120
    [endpoint_slice] = endpoint_slices(kube, name)
    assert [e.addresses for e in endpoint_slice.endpoints] == [[internal_ip(kube, "akswin000001")]]
    assert [p.port for p in endpoint_slice.ports] == [3389]

    listed = ack_text(bot.command("rdp list", channel=channel))
    assert "`akswin000001`" in listed
    assert f"mstsc.exe /v:{address}" in listed
    listed = winpod(sim, "rdp", "list").stdout
    assert re.search(rf"akswin000001 .* from 198\.51\.100\.0/24 .* mstsc\.exe /v:{address}", listed)

    # Opening again extends the open session: same Service, same address, later expiry.
    again = request(bot, channel, "rdp open akswin000001 ttl=1h")
    approve(bot, channel, again, APPROVER_A)
    approve(bot, channel, again, APPROVER_B)
    extended = wait_thread(bot, channel, again, "extended until")
    assert "RDP to akswin000001 extended" in extended
    assert "failed" not in extended
    assert service(kube, name).metadata.uid == created.metadata.uid
    assert (expires_at(kube, name) - first_expiry).total_seconds() > 3000
    assert svc_row(sim, name)["EXTERNAL-IP"] == address  # type: ignore[index]

    response = bot.command("rdp close akswin000001", user=REQUESTER, channel=channel)
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    wait_thread(bot, channel, again, f"<@{REQUESTER}> closed RDP to `akswin000001`")
    closed = until(
        bot,
        lambda: [m["text"] for m in bot.messages(channel)],
        lambda texts: any("RDP to akswin000001 closed" in t for t in texts),
        "the close announced in the channel",
    )
    assert any(f"<@{REQUESTER}>" in t for t in closed if "closed" in t)
    assert svc_row(sim, name) is None
    assert endpoint_slices(kube, name) == []

    log = audit(sim)
    assert len(audited(log, "rdp-open", "akswin000001")) == 2
    assert len(audited(log, "rdp-close", "akswin000001")) == 1
    assert any(REQUESTER in line for line in audited(log, "rdp-close", "akswin000001"))
    # The request and the open are the requester's, never the first approver's.
    requested = audited(log, "request", "akswin000001") + audited(log, "rdp-open", "akswin000001")
    assert len(audited(log, "request", "akswin000001")) == 3  # open, open again, close
    assert {line.split()[2] for line in requested} == {REQUESTER}
    approvers = {line.split()[2] for line in audited(log, "approval", "akswin000001")}
    assert {APPROVER_A, APPROVER_B} <= approvers  # (the requester's own close needs none)


def test_a_session_opened_from_the_cli_is_closed_by_the_running_bot_at_expiry(
    bot: RunningBot, sim: RunningSim, kube: client.ApiClient
) -> None:
    name = "winpod-rdp-akswin000002"
    opened = winpod(sim, "rdp", "open", "akswin000002", "--ttl", "15s", "--yes")
    assert opened.returncode == 0, opened.stderr
    address = MSTSC.findall(opened.stdout)[-1]
    assert "closes it in" in opened.stderr
    deadline = expires_at(kube, name)
    assert svc_row(sim, name)["EXTERNAL-IP"] == address  # type: ignore[index]

    until(bot, lambda: service(kube, name), lambda s: s is None, "the bot to close it")
    assert datetime.now(UTC) >= deadline  # not a moment early
    assert endpoint_slices(kube, name) == []
    # The same reconcile saw these, named like winpod's and long past their expiry annotation,
    # but without both of winpod's labels: they are someone else's.
    assert service(kube, "winpod-rdp-x") is not None
    assert service(kube, "winpod-rdp-y") is not None

    log = audit(sim)
    assert [line.split()[2] for line in audited(log, "rdp-open", "akswin000002")] == [
        f"cli:{getpass.getuser()}"
    ]
    [expired] = audited(log, "rdp-expired", "akswin000002")
    assert "closed at expiry" in expired


@pytest.fixture
def no_endpoint_slices(sim: RunningSim) -> Iterator[None]:
    """An API server that serves no discovery.k8s.io/v1, for the length of a test."""
    sim.control("POST", "/sim/v1/apis", {"unserved": ["discovery.k8s.io/v1"]})
    yield
    sim.control("POST", "/sim/v1/apis", {"unserved": []})


@pytest.mark.usefixtures("no_endpoint_slices")
def test_without_endpoint_slices_rdp_falls_back_to_v1_endpoints(
    sim: RunningSim, kube: client.ApiClient
) -> None:
    name = "winpod-rdp-akswin000006"
    served = kubectl(sim, "api-versions")
    assert served.returncode == 0, served.stderr
    assert "discovery.k8s.io/v1" not in served.stdout.split()  # what kubectl sees of it
    assert "apps/v1" in served.stdout.split()
    opened = winpod(sim, "rdp", "open", "akswin000006", "--ttl", "10m", "--yes")
    assert opened.returncode == 0, opened.stderr
    endpoints = client.CoreV1Api(kube).read_namespaced_endpoints(name, NAMESPACE)
    [subset] = endpoints.subsets
    assert [a.ip for a in subset.addresses] == [internal_ip(kube, "akswin000006")]
    assert [p.port for p in subset.ports] == [3389]
    assert MSTSC.search(opened.stdout)

    closed = winpod(sim, "rdp", "close", "akswin000006")
    assert closed.returncode == 0, closed.stderr
    assert service(kube, name) is None
    with pytest.raises(ApiException) as gone:
        client.CoreV1Api(kube).read_namespaced_endpoints(name, NAMESPACE)
    assert gone.value.status == 404


def test_services_that_are_not_winpods_are_never_deleted(
    bot: RunningBot, sim: RunningSim, kube: client.ApiClient
) -> None:
    closed = winpod(sim, "rdp", "close", "x")
    assert closed.returncode == 2
    assert "Service winpod/winpod-rdp-x is not winpod's; winpod never deletes it" in closed.stderr
    assert "Traceback" not in closed.stderr

    channel = "C0FOREIGN"
    for node in ("x", "y"):  # y even carries winpod.io/rdp=true, but not the managed-by label
        ack_text(bot.command(f"rdp close {node}", user=REQUESTER, channel=channel))
        said = told(bot, channel, REQUESTER, f"closing RDP to `{node}` failed")
        assert f"winpod-rdp-{node} is not winpod's" in said
    assert bot.messages(channel) == []

    assert service(kube, "winpod-rdp-x") is not None
    assert service(kube, "winpod-rdp-y") is not None
    listed = ack_text(bot.command("rdp list", channel=channel))
    assert "`x`" not in listed
    assert "`y`" not in listed


def test_rdp_to_a_node_that_was_deleted_meanwhile_can_still_be_closed(
    bot: RunningBot, sim: RunningSim, kube: client.ApiClient
) -> None:
    name, channel = "winpod-rdp-akswin000005", "C0GONE"
    message = request(bot, channel, "rdp open akswin000005")
    approve(bot, channel, message, APPROVER_A)
    wait_thread(bot, channel, message, "needs a second approver")
    approve(bot, channel, message, APPROVER_B)
    wait_thread(bot, channel, message, "mstsc.exe /v:")
    deleted = kubectl(sim, "delete", "node", "akswin000005")  # scaled away, e.g. by an upgrade
    assert deleted.returncode == 0, deleted.stderr

    ack_text(bot.command("rdp close akswin000005", user=REQUESTER, channel=channel))
    wait_thread(bot, channel, message, f"<@{REQUESTER}> closed RDP to `akswin000005`")
    assert service(kube, name) is None
    assert endpoint_slices(kube, name) == []


REFUSALS = {
    # what was asked (Slack arguments; the CLI's are the same) -> what the person is told
    "akswin000001 ttl=5h": "ttl 5h is longer than rdp.max_ttl (4h)",
    "aks-linux-0": "node aks-linux-0 is not a Windows node",
    "nosuch-node": "node nosuch-node not found",
    "akswin000001 from=0.0.0.0/0": "refusing to open RDP to the whole internet (0.0.0.0/0)",
    "akswin000001 from=0.0.0.0/1,128.0.0.0/1": "refusing to open RDP to 4,294,967,296 addresses",
    "akswin000001 from=198.51.100.7/8": "198.51.100.7/8 has bits set past its /8",
    "akswin000001 ttl=0.5s": "ttl 0.5s is shorter than 10s",
    "akswin000001 ttl=25h": "ttl 25h is longer than rdp.max_ttl (4h)",
    "akswin000009": "node akswin000009 is not Ready",
}


def cli_args(slack_args: str) -> list[str]:
    """`NODE ttl=5h from=CIDR` as `winpod rdp open` takes it: `NODE --ttl 5h --from CIDR`."""
    node, *options = slack_args.split()
    flags = [part for o in options for part in (f"--{o.split('=')[0]}", o.split("=", 1)[1])]
    return [node, *flags]


@pytest.fixture(scope="module")
def cli_refusals(sim: RunningSim) -> dict[str, subprocess.CompletedProcess[str]]:
    """`winpod rdp open …` for every refused request, all at once (each CLI start is slow)."""
    running = {
        asked: subprocess.Popen(
            winpod_argv(sim, "rdp", "open", *cli_args(asked), "--yes"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **BOT_ENV},
        )
        for asked in REFUSALS
    }
    done = {}
    try:
        for asked, process in running.items():
            stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
            done[asked] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


@pytest.mark.parametrize(("asked", "reason"), REFUSALS.items())
def test_a_request_that_cannot_be_granted_is_refused_with_its_reason(
    bot: RunningBot,
    sim: RunningSim,
    cli_refusals: dict[str, subprocess.CompletedProcess[str]],
    asked: str,
    reason: str,
) -> None:
    node = asked.split(maxsplit=1)[0]
    refused = cli_refusals[asked]
    assert refused.returncode == 2, refused.stderr
    assert reason in refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""

    channel = "C0REFUSE"
    before = len(bot.ephemeral(channel))
    response = bot.command(f"rdp open {asked}", user=REQUESTER, channel=channel)
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    said = told(bot, channel, REQUESTER, f"RDP to `{node}` refused: {reason}")
    assert said.startswith(":no_entry:")
    assert len(bot.ephemeral(channel)) == before + 1
    assert bot.messages(channel) == []  # nothing for anyone to approve
    assert "winpod-rdp-" + node not in kubectl(sim, "get", "svc").stdout


@pytest.mark.usefixtures("lb_silent")
def test_a_load_balancer_that_never_answers_is_reported_and_cleaned_up(
    bot: RunningBot, sim: RunningSim, kube: client.ApiClient
) -> None:
    name, channel = "winpod-rdp-akswin000003", "C0NOLB"
    message = request(bot, channel, "rdp open akswin000003")
    approve(bot, channel, message, APPROVER_A)
    wait_thread(bot, channel, message, "needs a second approver")
    approve(bot, channel, message, APPROVER_B)
    pending = until(bot, lambda: service(kube, name), bool, "the Service to be created")
    assert pending.status.load_balancer.ingress is None
    failed = wait_thread(bot, channel, message, "no address within 2s")
    assert f"the load balancer gave {name} no address within 2s; closed it again" in failed
    assert ":red_circle:" in failed
    assert "mstsc.exe" not in failed
    assert service(kube, name) is None
    assert endpoint_slices(kube, name) == []
    assert "akswin000003" not in ack_text(bot.command("rdp list", channel=channel))

    opened = winpod(sim, "rdp", "open", "akswin000003", "--yes")
    assert opened.returncode == 1
    assert "no address within 2s; closed it again" in opened.stdout
    assert "Traceback" not in opened.stderr
    assert service(kube, name) is None
    assert endpoint_slices(kube, name) == []

    log = audit(sim)
    # Both attempts (Slack, then the CLI) created and removed a LoadBalancer: both audited.
    slack_attempt, cli_attempt = audited(log, "rdp-open", "akswin000003")
    assert REQUESTER in slack_attempt
    assert "no address within 2s" in slack_attempt
    assert "no address within 2s" in cli_attempt
    assert "cli:" in cli_attempt
    results = [line for line in log if " result " in line and "akswin000003" in line]
    assert any("no address within 2s" in line for line in results)


def test_the_simulated_load_balancer_can_be_silenced_and_answers_once_enabled_again(
    sim: RunningSim, kube: client.ApiClient
) -> None:
    """The simulator's knob the test above relies on (POST /sim/v1/lb)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        sim.control("POST", "/sim/v1/lb", {"enabled": "no"})
    assert refused.value.code == 400
    assert "enabled must be true or false" in json.loads(refused.value.read())["error"]
    refused.value.close()
    assert sim.control("GET", "/sim/v1/lb") == {"delay_ms": 300.0, "enabled": True}

    core = client.CoreV1Api(kube)
    probe = {
        "metadata": {"name": "lb-probe"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    sim.control("POST", "/sim/v1/lb", {"enabled": False})
    core.create_namespaced_service(NAMESPACE, probe)
    try:
        time.sleep(1.0)  # more than the 300 ms an answering cloud takes
        assert svc_row(sim, "lb-probe")["EXTERNAL-IP"] == "<pending>"  # type: ignore[index]
        sim.control("POST", "/sim/v1/lb", {"enabled": True})
        deadline = time.monotonic() + WAIT_S
        while not service(kube, "lb-probe").status.load_balancer.ingress:
            assert time.monotonic() < deadline, "no ingress IP after the cloud came back"
            time.sleep(0.1)
        assert svc_row(sim, "lb-probe")["EXTERNAL-IP"].startswith("203.0.113.")  # type: ignore[index]
    finally:
        sim.control("POST", "/sim/v1/lb", {"enabled": True})
        core.delete_namespaced_service("lb-probe", NAMESPACE)


def test_a_session_that_expires_while_winpod_is_stopped_is_closed_and_announced_at_start(
    sim_factory: Callable[..., RunningSim], bot_factory: Callable[..., RunningBot]
) -> None:
    """Its own simulator: the module's bot, running, would close the session itself."""
    restart_sim = sim_factory("rdp_cluster.yaml")
    name, channel = "winpod-rdp-akswin000004", "C0RESTART"
    # The default 30 s housekeeping: only the start-up reconcile can be in time.
    env = {**BOT_ENV, "WINPOD_HOUSEKEEPING_INTERVAL": "30s"}
    first = bot_factory(restart_sim, env)
    message = request(first, channel, "rdp open akswin000004 ttl=15s")
    approve(first, channel, message, APPROVER_A)
    wait_thread(first, channel, message, "needs a second approver")
    approve(first, channel, message, APPROVER_B)
    wait_thread(first, channel, message, "mstsc.exe /v:")
    api = config.new_client_from_config(config_file=str(restart_sim.kubeconfig))
    try:
        deadline = expires_at(api, name)
        first.stop()
        assert datetime.now(UTC) < deadline, "winpod stopped too late for this test"
        assert svc_row(restart_sim, name) is not None
        time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
        assert svc_row(restart_sim, name) is not None  # nobody closed it while winpod was down

        second = bot_factory(restart_sim, env)  # returns once it says it is ready
        assert service(api, name) is None
        assert endpoint_slices(api, name) == []
    finally:
        api.close()
    wait_thread(second, channel, message, "RDP to `akswin000004` expired and was closed")
    [expired] = audited(audit(restart_sim), "rdp-expired", "akswin000004")
    assert expired.split()[2] == "winpod"


def test_rdp_help_and_usage_errors_name_the_right_form(bot: RunningBot) -> None:
    said = ack_text(bot.command("rdp open", channel="C0USAGE"))
    assert "rdp open needs a NODE" in said
    assert "/winpod rdp open NODE [ttl=30m] [from=CIDR]" in said
    said = ack_text(bot.command("rdp close akswin000001 ttl=1h", channel="C0USAGE"))
    assert "unexpected 'ttl=1h'" in said
    assert bot.messages("C0USAGE") == []
    help_text = ack_text(bot.command("help", channel="C0USAGE"))
    assert "/winpod rdp open akswin000001 ttl=1h" in help_text
