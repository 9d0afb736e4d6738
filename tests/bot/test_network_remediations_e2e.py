"""hns-endpoint-cleanup from Slack, end to end: the request names every endpoint with its IP,
two approvers, the run over WinRM removes exactly those, the thread shows the HNS snapshot
before and after and the verification; a node whose stale set changed after approval is
refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from bot_process import RunningBot, start_bot
from kubernetes import client
from sim_process import SCENARIOS, RunningSim, start_sim
from test_approvals_e2e import (
    APPROVER_A,
    APPROVER_B,
    current,
    diagnose,
    host,
    kube_api,
    press,
    wait_thread,
)

from bot.store import Store

pytestmark = pytest.mark.wire

STALE = ("10.244.250.1", "10.244.250.2", "10.244.250.3")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    sim: RunningSim = start_sim(
        SCENARIOS / "check_hns_stale_endpoints.yaml", tmp_path_factory.mktemp("hns-e2e")
    )
    running = start_bot(sim, name="hns-e2e")
    yield running
    running.stop()
    sim.stop()


def removals(bot: RunningBot) -> list[str]:
    return [h for h in host(bot.sim, "akswin-stale")["history"] if h.startswith("hns endpoint ")]


def test_a_changed_stale_set_is_refused_then_the_cleanup_runs_on_what_was_shown(
    bot: RunningBot,
) -> None:
    message = diagnose(bot, "web/reused-0", "C0HNS")
    press(bot, "C0HNS", message, "remediate:hns-endpoint-cleanup", APPROVER_A)
    wait_thread(bot, "C0HNS", message, "needs a second approver")
    request = next(
        r for r in current(bot, "C0HNS", message["ts"])["replies"] if "asked for" in r["text"]
    )
    shown = request["blocks"][0]["text"]["text"]
    for ip in STALE:
        assert f"# IP {ip}" in shown  # every endpoint, before anyone approves

    # An EndpointSlice now holds one of the IPs: the approved plan no longer fits.
    api = kube_api(bot.sim)
    body = {
        "metadata": {"name": "late-abc", "labels": {"kubernetes.io/service-name": "late"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.250.3"]}],
    }
    discovery = client.DiscoveryV1Api(api)
    discovery.create_namespaced_endpoint_slice("web", body)
    try:
        press(bot, "C0HNS", message, "remediate:hns-endpoint-cleanup", APPROVER_B)
        refused = wait_thread(bot, "C0HNS", message, "did not run")
        assert "changed since it was approved" in refused
        assert removals(bot) == []
    finally:
        discovery.delete_namespaced_endpoint_slice("late-abc", "web")
        api.close()

    again = diagnose(bot, "web/reused-0", "C0HNS2")
    press(bot, "C0HNS2", again, "remediate:hns-endpoint-cleanup", APPROVER_A)
    wait_thread(bot, "C0HNS2", again, "needs a second approver")
    press(bot, "C0HNS2", again, "remediate:hns-endpoint-cleanup", APPROVER_B)
    result = wait_thread(bot, "C0HNS2", again, "Verification — fixed")

    assert "removed 3:" in result
    assert "remote endpoints before: 77, after: 74" in result
    # the HNS snapshot, in the thread: the named endpoints gone, and the lists themselves
    assert "still present after: none" in result
    assert "remote endpoints before (77):" in result
    assert [r.split("(")[1].split(")")[0] for r in removals(bot)] == list(STALE)
    # and in the audit, with the run
    store = Store(yaml.safe_load(bot.sim.config.read_text())["store"]["url"])
    try:
        executions = [e for e in store.audit_log(200) if e.kind == "execution"]
    finally:
        store.close()
    audited = "\n".join(str(e.detail.get("output")) for e in executions)
    assert "still present after: none" in audited
    assert "remote endpoints after (74): those before, without the removed ones" in audited
