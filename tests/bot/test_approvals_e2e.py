"""Remediation with approvals, end to end: Slack clicks in, scripts on the simulated hosts, every
state change in the channel and every step in the audit log."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import yaml
from bot_process import RunningBot, SlackResponse, start_bot
from kubernetes import client, config
from sim_process import ROOT, SCENARIOS, RunningSim, start_sim

from bot.store import PendingAction, Store

pytestmark = pytest.mark.wire

APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"  # the simulator's winpod.yaml
SLACK_ACK_S = 3.0
Message = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    running = start_sim(SCENARIOS / "approvals_cluster.yaml", tmp_path_factory.mktemp("approvals"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bot(sim: RunningSim) -> Iterator[RunningBot]:
    """The bot as configured by the simulator; each story uses a channel and node of its own."""
    running = start_bot(sim, name="approvals")
    yield running
    running.stop()


def _variant(sim: RunningSim, name: str, env: dict[str, str]) -> RunningBot:
    """Another replica on the same simulator, with a store of its own and `env` on top."""
    return start_bot(
        sim, {"WINPOD_STORE__URL": f"sqlite:///{sim.out / f'{name}.db'}", **env}, name=name
    )


@pytest.fixture(scope="module")
def expiring_bot(sim: RunningSim) -> Iterator[RunningBot]:
    running = _variant(sim, "expiring", {"WINPOD_APPROVALS__EXPIRE_AFTER": "1s"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dry_bot(sim: RunningSim) -> Iterator[RunningBot]:
    running = _variant(sim, "dry", {"WINPOD_DRY_RUN": "true"})
    yield running
    running.stop()


@pytest.fixture
def store(bot: RunningBot) -> Iterator[Store]:
    """The main bot's store, opened the way `winpod audit` opens it."""
    opened = Store(yaml.safe_load(bot.sim.config.read_text())["store"]["url"])
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def calm_winrm(sim: RunningSim) -> Iterator[None]:
    """No test leaves a WinRM fault behind for the next one."""
    yield
    sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 0, "latency_ms": 0})


# --- what a person in the channel sees --------------------------------------------------------


def until(bot: RunningBot, fetch: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    """Poll `fetch` until what it returns is accepted; return that."""
    found: list[T] = []

    def check() -> bool:
        value = fetch()
        if accept(value):
            found.append(value)
        return bool(found)

    bot.wait_for(check, what=what)
    return found[-1]


def diagnose(bot: RunningBot, reference: str, channel: str) -> Message:
    """`/winpod diagnose`, then the new message once it holds the findings."""
    before = {m["ts"] for m in bot.messages(channel)}
    response = bot.command(f"diagnose {reference}", channel=channel)
    assert response.status == 200
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next(
            (m for m in bot.messages(channel) if m["ts"] not in before and m.get("edited")), None
        ),
        what=f"the diagnosis of {reference}",
    )


def current(bot: RunningBot, channel: str, ts: str) -> Message:
    return next(m for m in bot.messages(channel) if m["ts"] == ts)


def press(bot: RunningBot, channel: str, message: Message, prefix: str, user: str) -> SlackResponse:
    """Press a button of the message as it looks now (Slack sends the current blocks)."""
    response = bot.click(current(bot, channel, message["ts"]), prefix, user=user, channel=channel)
    assert response.status == 200
    assert response.seconds < SLACK_ACK_S
    return response


def action_ids(message: Message) -> list[str]:
    return [
        e["action_id"]
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def status_lines(message: Message) -> list[str]:
    return [
        e["text"]
        for b in message.get("blocks", [])
        if str(b.get("block_id", "")).startswith("status-")
        for e in b["elements"]
    ]


def thread(bot: RunningBot, channel: str, message: Message) -> str:
    return "\n".join(r["text"] for r in current(bot, channel, message["ts"])["replies"])


def wait_thread(bot: RunningBot, channel: str, message: Message, text: str) -> str:
    return until(
        bot, lambda: thread(bot, channel, message), lambda t: text in t, f"{text!r} in the thread"
    )


def told(bot: RunningBot, channel: str, user: str, text: str) -> str:
    """Wait for an ephemeral reply to `user` containing `text`."""
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next(
            (e["text"] for e in bot.ephemeral(channel) if e["user"] == user and text in e["text"]),
            None,
        ),
        what=f"{text!r} told to {user}",
    )


def host(sim: RunningSim, name: str) -> dict[str, Any]:
    return sim.control("GET", f"/sim/v1/hosts/{name}")  # type: ignore[no-any-return]


def actions_on(store: Store, target: str) -> list[PendingAction]:
    return [a for a in store.list_actions(limit=500) if a.target == target]


# --- the whole story ------------------------------------------------------------------------


def test_hns_reset_needs_two_approvers_then_runs_verifies_and_is_audited(
    bot: RunningBot, store: Store
) -> None:
    assert host(bot.sim, "akswin000002")["dns"] == "stale-policies"
    message = diagnose(bot, "shop/api-0", "C0STORY")
    assert "remediate:hns-reset" in action_ids(message)

    press(bot, "C0STORY", message, "remediate:hns-reset", APPROVER_A)
    told(bot, "C0STORY", APPROVER_A, "needs a second approver")
    wait_thread(bot, "C0STORY", message, "Exactly what will run")  # the script, attached
    request = next(
        r for r in current(bot, "C0STORY", message["ts"])["replies"] if "asked for" in r["text"]
    )
    # what changes state, before anyone approves
    assert "Stop-Service kubelet" in request["blocks"][0]["text"]["text"]

    press(bot, "C0STORY", message, "remediate:hns-reset", APPROVER_A)
    refusal = told(bot, "C0STORY", APPROVER_A, "already approved")
    assert "second, different approver" in refusal
    assert host(bot.sim, "akswin000002")["history"] == []

    press(bot, "C0STORY", message, "remediate:hns-reset", APPROVER_B)
    result = wait_thread(bot, "C0STORY", message, "Verification — fixed")
    assert f"<@{APPROVER_A}>, <@{APPROVER_B}>" in result  # who approved
    assert "ok remove policy lists" in result  # the script's own report of its steps
    cured = host(bot.sim, "akswin000002")
    assert cured["history"] == ["hns-reset"]
    assert cured["dns"] == "ok"

    final = until(
        bot,
        lambda: current(bot, "C0STORY", message["ts"]),
        lambda m: any("succeeded" in s for s in status_lines(m)),
        "the original message to show the outcome",
    )
    assert "remediate:hns-reset" not in action_ids(final)
    assert not any(a.startswith("reject:") for a in action_ids(final))
    assert "remediate:kube-proxy-restart" in action_ids(final)  # other offers stay

    [action] = actions_on(store, "akswin000002")
    assert action.status == "succeeded"
    assert set(action.approvals) == {APPROVER_A, APPROVER_B}
    entries = store.audit_log(200)
    story = [e for e in entries if e.target in ("shop/api-0", "akswin000002")]
    kinds = {e.kind for e in story}
    assert {"command", "click", "request", "approval", "refused", "execution", "result"} <= kinds
    assert [e.actor for e in story if e.kind == "approval"] == [APPROVER_A, APPROVER_B]
    refused = next(e for e in story if e.kind == "refused")
    assert (refused.actor, refused.detail["reason"]) == (APPROVER_A, "already approved")


def test_a_click_by_someone_who_is_not_an_approver_changes_nothing(
    bot: RunningBot, store: Store
) -> None:
    message = diagnose(bot, "shop/refused-0", "C0NOPE")
    press(bot, "C0NOPE", message, "remediate:kube-proxy-restart", "U0INTRUDER")
    refusal = told(bot, "C0NOPE", "U0INTRUDER", "Only approvers")
    assert APPROVER_A in refusal
    assert current(bot, "C0NOPE", message["ts"])["blocks"] == message["blocks"]
    assert current(bot, "C0NOPE", message["ts"])["replies"] == []
    assert host(bot.sim, "akswin000013")["history"] == []
    assert not [
        a for a in actions_on(store, "akswin000013") if a.remediation == "kube-proxy-restart"
    ]
    assert any(e.kind == "refused" and e.actor == "U0INTRUDER" for e in store.audit_log(200))


def test_twenty_simultaneous_approvals_run_the_remediation_once(
    bot: RunningBot, store: Store
) -> None:
    message = diagnose(bot, "shop/crowd-0", "C0CROWD")
    clickers = [APPROVER_A, APPROVER_B] * 10
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(
                lambda user: bot.click(
                    message, "remediate:kube-proxy-restart", user=user, channel="C0CROWD"
                ),
                clickers,
            )
        )
    assert [r.status for r in responses] == [200] * 20
    assert max(r.seconds for r in responses) < SLACK_ACK_S
    wait_thread(bot, "C0CROWD", message, "Verification —")
    # Every click but the winner's is told why it changed nothing; then all of them are done.
    answers = until(
        bot,
        lambda: bot.ephemeral("C0CROWD"),
        lambda told: len(told) >= 19,
        "every other clicker to be told why",
    )
    assert len(answers) == 19
    assert all("already" in a["text"] for a in answers), [a["text"] for a in answers]
    assert host(bot.sim, "akswin000011")["history"] == ["kube-proxy-restart"]
    # Clicks that raced to open a second action from the same button got it withdrawn.
    ran = [a for a in actions_on(store, "akswin000011") if a.status != "expired"]
    assert [a.status for a in ran] == ["succeeded"]
    replies = thread(bot, "C0CROWD", message)
    assert replies.count("Verification —") == 1
    assert replies.count(":gear: Approved by") == 1


def fail_winrm_after(sim: RunningSim, node: str, step: str) -> threading.Thread:
    """Break WinRM right after `step` ran on `node`: the script has done its work there, and the
    request that would collect its output fails with a 500 (each WinRM request is slowed so the
    knob is set while that request still waits)."""
    sim.control("POST", "/sim/v1/faults/winrm", {"latency_ms": 300})

    def arm() -> None:
        deadline = time.monotonic() + 20
        while step not in host(sim, node)["history"] and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.control("POST", "/sim/v1/faults/winrm", {"fail_next": 1, "mode": "500"})
        sim.control("POST", "/sim/v1/faults/winrm", {"latency_ms": 0})

    armer = threading.Thread(target=arm, name="arm-winrm-fault")
    armer.start()
    return armer


def test_winrm_failing_half_way_still_reads_the_result_and_runs_once(
    bot: RunningBot, store: Store
) -> None:
    """kube-proxy-restart runs detached (a scheduled task on the node): a connection that
    fails after the script ran is retried, and the result is read, never guessed."""
    message = diagnose(bot, "shop/flaky-0", "C0FLAKY")
    armer = fail_winrm_after(bot.sim, "akswin000012", "kube-proxy-restart")
    press(bot, "C0FLAKY", message, "remediate:kube-proxy-restart", APPROVER_A)
    assert "Verification — fixed" in wait_thread(bot, "C0FLAKY", message, "Verification —")
    armer.join()
    until(
        bot,
        lambda: current(bot, "C0FLAKY", message["ts"]),
        lambda m: any("succeeded" in s for s in status_lines(m)),
        "the original message to say succeeded",
    )
    # It ran on the node once; the failed request was only a poll for its result.
    assert host(bot.sim, "akswin000012")["history"] == ["kube-proxy-restart"]
    [done] = actions_on(store, "akswin000012")
    assert done.status == "succeeded"
    assert store.lock_holder("target:node:akswin000012") is None


def test_a_rejected_action_loses_its_buttons_and_never_runs(bot: RunningBot, store: Store) -> None:
    message = diagnose(bot, "shop/refused-0", "C0REJECT")
    press(bot, "C0REJECT", message, "remediate:hns-reset", APPROVER_A)
    wait_thread(bot, "C0REJECT", message, "needs a second approver")
    pending = until(
        bot,
        lambda: current(bot, "C0REJECT", message["ts"]),
        lambda m: any(a.startswith("reject:") for a in action_ids(m)),
        "a Reject button",
    )
    press(bot, "C0REJECT", pending, "reject:", APPROVER_B)
    assert f"<@{APPROVER_B}> rejected" in wait_thread(bot, "C0REJECT", message, "rejected")
    final = until(
        bot,
        lambda: current(bot, "C0REJECT", message["ts"]),
        lambda m: any("rejected" in s for s in status_lines(m)),
        "the original message to say rejected",
    )
    assert "remediate:hns-reset" not in action_ids(final)
    assert not any(a.startswith("reject:") for a in action_ids(final))

    # Someone whose Slack still shows the old message approves anyway: nothing changes.
    bot.click(pending, "remediate:hns-reset", user=APPROVER_B, channel="C0REJECT")
    told(bot, "C0REJECT", APPROVER_B, "rejected by")
    hns = [a for a in actions_on(store, "akswin000013") if a.remediation == "hns-reset"]
    assert [a.status for a in hns] == ["rejected"]
    assert "hns-reset" not in host(bot.sim, "akswin000013")["history"]


def test_an_expired_action_cannot_run(expiring_bot: RunningBot) -> None:
    message = diagnose(expiring_bot, "shop/slow-0", "C0LATE")
    press(expiring_bot, "C0LATE", message, "remediate:hns-reset", APPROVER_A)
    wait_thread(expiring_bot, "C0LATE", message, "needs a second approver")
    time.sleep(1.2)  # approvals.expire_after is 1s for this bot
    press(expiring_bot, "C0LATE", message, "remediate:hns-reset", APPROVER_B)
    told(expiring_bot, "C0LATE", APPROVER_B, "expired before it was approved")
    final = until(
        expiring_bot,
        lambda: current(expiring_bot, "C0LATE", message["ts"]),
        lambda m: any("expired" in s for s in status_lines(m)),
        "the original message to say expired",
    )
    assert "remediate:hns-reset" not in action_ids(final)
    assert host(expiring_bot.sim, "akswin000014")["history"] == []
    assert ":gear:" not in thread(expiring_bot, "C0LATE", message)
    with closing(Store(expiring_bot.env["WINPOD_STORE__URL"])) as store:
        [action] = actions_on(store, "akswin000014")
        assert (action.status, action.approvals) == ("expired", (APPROVER_A,))


def test_dry_run_shows_the_exact_script_and_leaves_the_host_alone(dry_bot: RunningBot) -> None:
    before = host(dry_bot.sim, "akswin000015")
    message = diagnose(dry_bot, "shop/dry-0", "C0DRY")
    press(dry_bot, "C0DRY", message, "remediate:kube-proxy-restart", APPROVER_A)
    shown = wait_thread(dry_bot, "C0DRY", message, "Dry run")
    blocks = re.findall(r"```(.*?)```", shown.split("Dry run", 1)[1], re.S)
    script = (ROOT / "handlers" / "scripts" / "kube-proxy-restart.ps1").read_text()
    assert html.unescape(blocks[0]).strip() == script.strip()
    after = host(dry_bot.sim, "akswin000015")
    assert after == before
    assert after["dns"] == "stale-policies"


def test_pin_windows_build_patches_the_deployment_that_owns_the_pod(
    bot: RunningBot, sim: RunningSim
) -> None:
    message = diagnose(bot, "web/iis-7d9f5-x2x4q", "C0PIN")
    press(bot, "C0PIN", message, "remediate:pin-windows-build", APPROVER_A)
    shown = wait_thread(bot, "C0PIN", message, "Verification —")
    assert "Deployment web/iis" in shown
    api = config.new_client_from_config(config_file=str(sim.kubeconfig))
    try:
        deployment = client.AppsV1Api(api).read_namespaced_deployment("iis", "web")
    finally:
        api.close()
    assert deployment.spec.template.spec.node_selector == {
        "kubernetes.io/os": "windows",
        "node.kubernetes.io/windows-build": "10.0.20348",
    }


def test_mac_spoofing_without_the_hyperv_annotation_is_refused_with_the_reason(
    bot: RunningBot, store: Store
) -> None:
    message = diagnose(bot, "jobs/worker-7", "C0VM7")
    press(bot, "C0VM7", message, "remediate:mac-spoofing-on", APPROVER_A)
    reason = told(bot, "C0VM7", APPROVER_A, "cannot run")
    assert "winpod.io/hyperv-host" in reason
    assert host(bot.sim, "hvwin000007")["vm"]["macAddressSpoofing"] is False
    assert not actions_on(store, "hvwin000007")
    assert any(
        e.kind == "refused" and "winpod.io/hyperv-host" in str(e.detail.get("reason"))
        for e in store.audit_log(500)
    )


def test_mac_spoofing_with_the_annotation_runs_on_the_hyperv_host_after_two_approvals(
    bot: RunningBot,
) -> None:
    message = diagnose(bot, "jobs/worker-0", "C0VM4")
    press(bot, "C0VM4", message, "remediate:mac-spoofing-on", APPROVER_A)
    wait_thread(bot, "C0VM4", message, "needs a second approver")
    assert host(bot.sim, "hvwin000004")["vm"]["macAddressSpoofing"] is False
    press(bot, "C0VM4", message, "remediate:mac-spoofing-on", APPROVER_B)
    assert "Verification — fixed" in wait_thread(bot, "C0VM4", message, "Verification —")
    assert host(bot.sim, "hvwin000004")["vm"]["macAddressSpoofing"] is True
    assert "mac-spoofing hvwin000004 On" in host(bot.sim, "hv01")["history"]


# --- one remediation service: the defects its drifted copies had ---------------------------


def command_result(bot: RunningBot, text: str, channel: str) -> Message:
    """`/winpod TEXT`, then the new message once it holds the findings."""
    before = {m["ts"] for m in bot.messages(channel)}
    assert bot.command(text, channel=channel).status == 200
    return bot.wait_for(  # type: ignore[no-any-return]
        lambda: next(
            (m for m in bot.messages(channel) if m["ts"] not in before and m.get("edited")), None
        ),
        what=f"the result of /winpod {text}",
    )


def content(message: Message) -> list[Message]:
    """What a message shows besides buttons and action statuses."""
    return [
        b
        for b in message.get("blocks", [])
        if b.get("type") != "actions" and not str(b.get("block_id", "")).startswith("status-")
    ]


def kube_api(sim: RunningSim) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sim.kubeconfig))


def test_a_target_changed_after_approval_is_refused_and_offered_again(
    bot: RunningBot, store: Store
) -> None:
    """Approved ≠ executed (defect 1): the plan the approvers saw is frozen; when the node's
    Hyper-V host annotation changes between the approvals, nothing is sent anywhere."""
    message = diagnose(bot, "jobs/worker-5", "C0FROZEN")
    press(bot, "C0FROZEN", message, "remediate:mac-spoofing-on", APPROVER_A)
    requested = wait_thread(bot, "C0FROZEN", message, "needs a second approver")
    assert "Hyper-V host hv01" in requested
    api = kube_api(bot.sim)
    try:
        client.CoreV1Api(api).patch_node(
            "hvwin000005", {"metadata": {"annotations": {"winpod.io/hyperv-host": "hv02"}}}
        )
        press(bot, "C0FROZEN", message, "remediate:mac-spoofing-on", APPROVER_B)
        refused = wait_thread(bot, "C0FROZEN", message, "did not run")
        assert "changed since it was approved" in refused
        for hyperv in ("hv01", "hv02"):
            assert not [h for h in host(bot.sim, hyperv)["history"] if "hvwin000005" in h]
        assert host(bot.sim, "hvwin000005")["vm"]["macAddressSpoofing"] is False
        [action] = until(
            bot,
            lambda: actions_on(store, "hvwin000005"),
            lambda found: [a.status for a in found] == ["failed"],
            "the refused action to end",
        )
        assert "refused" in str((action.result or {}).get("summary"))
        # A fresh request in the thread plans anew, for the new host.
        again = until(
            bot,
            lambda: current(bot, "C0FROZEN", message["ts"])["replies"],
            lambda replies: any(action_ids(r) for r in replies),
            "a button to request it again",
        )
        retry = next(r for r in again if action_ids(r))  # the request itself has no buttons
        assert bot.click(retry, "remediate:", user=APPROVER_A, channel="C0FROZEN").status == 200
        assert "Hyper-V host hv02" in wait_thread(bot, "C0FROZEN", message, "Hyper-V host hv02")
    finally:
        client.CoreV1Api(api).patch_node(
            "hvwin000005", {"metadata": {"annotations": {"winpod.io/hyperv-host": "hv01"}}}
        )
        api.close()


def test_clicks_on_another_message_never_copy_its_blocks_onto_the_action_message(
    bot: RunningBot, store: Store
) -> None:
    """Wrong message edited (defect 3): the action is bound to the message it was opened from;
    a click on another message showing the same offer changes only that message's status."""
    pod_message = diagnose(bot, "shop/bound-0", "C0BOUNDA")
    node_message = command_result(bot, "node akswin000021", "C0BOUNDB")
    assert content(pod_message) != content(node_message)
    press(bot, "C0BOUNDA", pod_message, "remediate:hns-reset", APPROVER_A)
    wait_thread(bot, "C0BOUNDA", pod_message, "needs a second approver")
    press(bot, "C0BOUNDB", node_message, "remediate:hns-reset", APPROVER_B)
    wait_thread(bot, "C0BOUNDA", pod_message, "Verification —")
    bound = until(
        bot,
        lambda: current(bot, "C0BOUNDA", pod_message["ts"]),
        lambda m: any("succeeded" in s for s in status_lines(m)),
        "the action's own message to show the outcome",
    )
    other = until(
        bot,
        lambda: current(bot, "C0BOUNDB", node_message["ts"]),
        lambda m: any("hns-reset" in s for s in status_lines(m)),
        "the other message to show the action's status",
    )
    assert content(bound) == content(pod_message)
    assert content(other) == content(node_message)
    assert [a.status for a in actions_on(store, "akswin000021")] == ["succeeded"]
    assert host(bot.sim, "akswin000021")["history"] == ["hns-reset"]


def hold_lock(store: Store, node: str) -> str:
    holder = "someone-else/1"
    assert store.acquire_lock(f"target:node:{node}", holder, timedelta(minutes=5))
    return holder


def test_an_approved_action_that_meets_a_held_lock_waits_and_runs_when_it_frees(
    bot: RunningBot, store: Store
) -> None:
    """Stuck approval (defect 2): approvers are not asked to approve again; a second click by
    the same approver is not refused; the action runs once the target is free."""
    message = diagnose(bot, "shop/locked-0", "C0LOCKED")
    holder = hold_lock(store, "akswin000022")
    try:
        press(bot, "C0LOCKED", message, "remediate:kube-proxy-restart", APPROVER_A)
        waits = told(bot, "C0LOCKED", APPROVER_A, "waits")
        assert "starts by itself" in waits
        assert "approve again" not in waits
        [action] = actions_on(store, "akswin000022")
        assert action.status == "approved"
        assert host(bot.sim, "akswin000022")["history"] == []
    finally:
        store.release_lock("target:node:akswin000022", holder)
    press(bot, "C0LOCKED", message, "remediate:kube-proxy-restart", APPROVER_A)
    assert "Verification — fixed" in wait_thread(bot, "C0LOCKED", message, "Verification —")
    assert host(bot.sim, "akswin000022")["history"] == ["kube-proxy-restart"]
    assert [a.status for a in actions_on(store, "akswin000022")] == ["succeeded"]


@pytest.fixture(scope="module")
def housekeeping_bot(sim: RunningSim) -> Iterator[RunningBot]:
    """A replica whose leader keeps house every second, with one worker and no queue."""
    running = _variant(
        sim,
        "tidy",
        {
            "WINPOD_HOUSEKEEPING_INTERVAL": "1s",
            "WINPOD_WORK__WORKERS": "1",
            "WINPOD_WORK__QUEUE_LIMIT": "0",
            "WINPOD_KUBERNETES__LEADER_ELECTION": "false",
        },
    )
    yield running
    running.stop()


def test_a_queued_action_is_started_by_housekeeping_without_any_click(
    housekeeping_bot: RunningBot,
) -> None:
    bot = housekeeping_bot
    message = diagnose(bot, "shop/queued-0", "C0QUEUED")
    with closing(Store(bot.env["WINPOD_STORE__URL"])) as store:
        holder = hold_lock(store, "akswin000027")
        press(bot, "C0QUEUED", message, "remediate:kube-proxy-restart", APPROVER_A)
        told(bot, "C0QUEUED", APPROVER_A, "waits")
        time.sleep(1.5)  # housekeeping runs meanwhile and leaves it waiting
        assert host(bot.sim, "akswin000027")["history"] == []
        store.release_lock("target:node:akswin000027", holder)
        assert "Verification — fixed" in wait_thread(bot, "C0QUEUED", message, "Verification —")
        assert [a.status for a in actions_on(store, "akswin000027")] == ["succeeded"]


def test_a_full_pool_never_leaves_an_action_running(housekeeping_bot: RunningBot) -> None:
    """Dropped work (defect 4): with one worker busy handling the click itself, the run cannot
    be queued; the action stays approved (not running, lock free) and starts when there is
    room, instead of being reported "outcome unknown" without ever running."""
    bot = housekeeping_bot
    message = diagnose(bot, "shop/busy-0", "C0BUSY")
    press(bot, "C0BUSY", message, "remediate:kube-proxy-restart", APPROVER_A)
    busy = told(bot, "C0BUSY", APPROVER_A, "busy")
    assert "as soon as there is room" in busy
    result = wait_thread(bot, "C0BUSY", message, "Verification —")
    assert "Verification — fixed" in result
    assert "outcome unknown" not in result
    assert host(bot.sim, "akswin000023")["history"] == ["kube-proxy-restart"]
    with closing(Store(bot.env["WINPOD_STORE__URL"])) as store:
        assert [a.status for a in actions_on(store, "akswin000023")] == ["succeeded"]


@pytest.fixture(scope="module")
def short_lock_bot(sim: RunningSim) -> Iterator[RunningBot]:
    """Locks of 1 s and housekeeping every second: a run longer than that must keep its lock."""
    running = _variant(
        sim,
        "shortlock",
        {
            "WINPOD_HOUSEKEEPING_INTERVAL": "1s",
            "WINPOD_APPROVALS__LOCK_TTL": "1s",
            "WINPOD_KUBERNETES__LEADER_ELECTION": "false",
        },
    )
    yield running
    running.stop()


def test_a_run_longer_than_its_lock_ttl_keeps_the_lock_and_its_result(
    short_lock_bot: RunningBot,
) -> None:
    """Orphan race (defect 5): the lock is taken before `running` and renewed while the run
    lasts, so housekeeping never takes a live run for a cut-off one."""
    bot = short_lock_bot
    message = diagnose(bot, "shop/long-0", "C0LONG")
    bot.sim.control("POST", "/sim/v1/faults/winrm", {"latency_ms": 500})  # a run of ~4 s
    press(bot, "C0LONG", message, "remediate:kube-proxy-restart", APPROVER_A)
    result = wait_thread(bot, "C0LONG", message, "Verification —")
    assert "outcome unknown" not in result
    assert "Verification — fixed" in result
    with closing(Store(bot.env["WINPOD_STORE__URL"])) as store:
        assert [a.status for a in actions_on(store, "akswin000024")] == ["succeeded"]
        # the result is posted, then the target freed: on a busy machine that takes a moment
        deadline = time.monotonic() + 10
        while store.lock_holder("target:node:akswin000024") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.lock_holder("target:node:akswin000024") is None


@pytest.fixture(scope="module")
def group_bot(sim: RunningSim) -> Iterator[RunningBot]:
    sim.control("POST", "/sim/v1/slack/usergroups", {"S0ONCALL": [APPROVER_A]})
    running = _variant(sim, "groups", {"WINPOD_APPROVALS__APPROVERS": '["S0ONCALL"]'})
    yield running
    running.stop()


def test_a_failed_group_lookup_says_so_and_is_not_remembered(group_bot: RunningBot) -> None:
    """Defect 6: Slack failing to list the approvers' user group is not "you are not an
    approver", and the next click asks Slack again instead of a 5-minute cached "nobody"."""
    bot = group_bot
    message = diagnose(bot, "shop/group-0", "C0GROUP")
    # Connection resets outlast the client's two retries: the lookup fails.
    bot.sim.control("POST", "/sim/v1/faults/slack", {"fail_next": 3, "mode": "reset"})
    press(bot, "C0GROUP", message, "remediate:kube-proxy-restart", APPROVER_A)
    said = told(bot, "C0GROUP", APPROVER_A, "could not check who may approve")
    assert "Only approvers" not in said
    assert host(bot.sim, "akswin000025")["history"] == []
    press(bot, "C0GROUP", message, "remediate:kube-proxy-restart", APPROVER_A)
    assert "Verification — fixed" in wait_thread(bot, "C0GROUP", message, "Verification —")


def test_reject_while_running_is_refused_and_the_result_kept(bot: RunningBot, store: Store) -> None:
    message = diagnose(bot, "shop/late-0", "C0LATEREJECT")
    bot.sim.control("POST", "/sim/v1/faults/winrm", {"latency_ms": 400})
    press(bot, "C0LATEREJECT", message, "remediate:hns-reset", APPROVER_A)
    wait_thread(bot, "C0LATEREJECT", message, "needs a second approver")
    pending = until(
        bot,
        lambda: current(bot, "C0LATEREJECT", message["ts"]),
        lambda m: any(a.startswith("reject:") for a in action_ids(m)),
        "a Reject button",
    )
    press(bot, "C0LATEREJECT", message, "remediate:hns-reset", APPROVER_B)
    until(
        bot,
        lambda: actions_on(store, "akswin000026"),
        lambda found: [a.status for a in found] == ["running"],
        "the action to run",
    )
    # Approver A's Slack still shows the Reject button of the pending request.
    assert bot.click(pending, "reject:", user=APPROVER_A, channel="C0LATEREJECT").status == 200
    told(bot, "C0LATEREJECT", APPROVER_A, "already running")
    wait_thread(bot, "C0LATEREJECT", message, "Verification —")
    assert [a.status for a in actions_on(store, "akswin000026")] == ["succeeded"]
    assert "rejected" not in thread(bot, "C0LATEREJECT", message)
