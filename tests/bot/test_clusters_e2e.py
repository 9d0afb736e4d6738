"""One `winpod serve` for two clusters (SPEC §12), over the wire: two simulators at once, the
first also being the Slack workspace. The same node names live in both clusters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bot_process import RunningBot, start_bot
from sim_process import ROOT, RunningSim

pytestmark = pytest.mark.wire

SCENARIO = "sweep_cluster.yaml"
BROKEN = "akswin000020"  # fails DNS after a reboot, in either cluster (see the scenario)
EU, US = "prod-eu", "prod-us"
CHANNELS = {EU: "C0EU", US: "C0US"}
APPROVER_A, APPROVER_B = "U0APPROVER1", "U0APPROVER2"
INTERVAL = {"WINPOD_SWEEP__INTERVAL": "1s", "WINPOD_KUBERNETES__LEADER_ELECTION": "false"}
Message = dict[str, Any]


@pytest.fixture
def sims(sim_factory: Callable[..., RunningSim]) -> dict[str, RunningSim]:
    return {EU: sim_factory(SCENARIO), US: sim_factory(SCENARIO)}


def two_cluster_config(sims: dict[str, RunningSim], out: Path) -> Path:
    """The first simulator's winpod.yaml with `clusters:` for both, each with its own WinRM
    credentials and Hyper-V hosts (the simulators make up their own)."""
    config = yaml.safe_load(sims[EU].config.read_text())
    config["clusters"] = []
    for name, sim in sims.items():
        own = yaml.safe_load(sim.config.read_text())
        config["clusters"].append(
            {
                "name": name,
                "kubeconfig": own["kubernetes"]["kubeconfig"],
                "context": own["kubernetes"]["context"],
                "alert_channel": CHANNELS[name],
                "winrm": own["winrm"],
                "hyperv": own["hyperv"],
            }
        )
    config["default_cluster"] = EU
    path = out / "two-clusters.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def serve(
    sims: dict[str, RunningSim], tmp_path: Path
) -> Iterator[Callable[[dict[str, str] | None], RunningBot]]:
    started: list[RunningBot] = []
    path = two_cluster_config(sims, tmp_path)

    def start(env: dict[str, str] | None = None) -> RunningBot:
        bot = start_bot(sims[EU], env, name=f"bot{len(started)}", config_path=path)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


def reboot(sim: RunningSim, node: str) -> str:
    return str(sim.control("POST", f"/sim/v1/hosts/{node}/reboot")["bootID"])


def header(message: Message) -> str:
    return str((message.get("blocks") or [{}])[0].get("text", {}).get("text", ""))


def alerts(bot: RunningBot, cluster: str) -> list[Message]:
    return [m for m in bot.messages(CHANNELS[cluster]) if "Node" in header(m)]


def execs(sim: RunningSim) -> int:
    return int(sim.control("GET", "/sim/v1/stats")["exec"])


def test_a_command_acts_in_the_cluster_it_names(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    bot = serve()
    reboot(sims[US], BROKEN)  # DNS fails on the node in prod-us only
    before = {name: execs(sim) for name, sim in sims.items()}

    assert bot.command(f"node {BROKEN} cluster={US}", channel="C0DIAG").status == 200
    (us,) = bot.wait_for(
        lambda: [m for m in bot.messages("C0DIAG") if header(m).startswith(f"[{US}] Node")],
        what="the prod-us diagnosis",
    )
    assert execs(sims[EU]) == before[EU]  # nothing ran in the other cluster
    assert execs(sims[US]) > before[US]
    assert "dns-after-reboot" in str(us["blocks"])

    # without cluster=NAME: default_cluster, where the same node name is healthy
    assert bot.command(f"node {BROKEN}", channel="C0DIAG2").status == 200
    (eu,) = bot.wait_for(
        lambda: [m for m in bot.messages("C0DIAG2") if header(m).startswith(f"[{EU}] Node")],
        what="the prod-eu diagnosis",
    )
    assert "stale HNS policies" not in str(eu["blocks"])


def test_an_unknown_cluster_is_a_usage_error_listing_the_clusters(
    serve: Callable[..., RunningBot],
) -> None:
    bot = serve()

    response = bot.command(f"node {BROKEN} cluster=staging", channel="C0TYPO")

    assert response.status == 200
    assert "unknown cluster 'staging'" in response.body  # the ack: to the typist alone
    assert f"the clusters are: {EU}, {US}" in response.body
    assert bot.messages("C0TYPO") == []


def test_clusters_lists_both_with_reachability_and_windows_node_counts(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    bot = serve()
    sims[US].stop()

    assert bot.command("clusters", channel="C0LIST").status == 200
    (listing,) = bot.wait_for(lambda: bot.messages("C0LIST"), what="the cluster list")

    lines = listing["text"].strip("`\n").splitlines()
    assert re.match(rf"^{EU} \(home, default\) +reachable, 3 Windows node\(s\)$", lines[0])
    assert re.match(rf"^{US} +UNREACHABLE: ", lines[1])


def test_the_same_node_rebooting_in_both_clusters_alerts_twice_each_to_its_channel(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    bot = serve(INTERVAL)
    bot.wait_for(lambda: "sweep finished" in bot.log, what="the first sweep")
    for sim in sims.values():
        reboot(sim, BROKEN)

    for cluster in (EU, US):
        (alert,) = bot.wait_for(lambda c=cluster: alerts(bot, c), what=f"the {cluster} alert")
        assert header(alert) == f"[{cluster}] Node {BROKEN} · build 17763"
        assert alert["text"].startswith(f":rotating_light: {BROKEN} in cluster {cluster} rebooted")
    assert bot.messages("C0ALERTS") == []  # slack.alert_channel: each cluster has its own


def test_approving_a_fix_in_one_cluster_never_touches_the_other(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    for sim in sims.values():
        reboot(sim, BROKEN)
    bot = serve(INTERVAL)
    (alert,) = bot.wait_for(lambda: alerts(bot, US), what="the prod-us alert")
    bot.wait_for(lambda: alerts(bot, EU), what="the prod-eu alert")

    for approver in (APPROVER_A, APPROVER_B):
        current = alerts(bot, US)[0]
        response = bot.click(current, "remediate:hns-reset", user=approver, channel=CHANNELS[US])
        assert response.status == 200
        if approver == APPROVER_A:
            bot.wait_for(
                lambda: "second approver" in str(alerts(bot, US)[0]),
                what="the first approval shown",
            )

    bot.wait_for(
        lambda: sims[US].control("GET", f"/sim/v1/hosts/{BROKEN}")["dns"] == "ok",
        what="hns-reset to fix the prod-us node",
    )
    bot.wait_for(
        lambda: any("DNS works again" in r["text"] for r in alerts(bot, US)[0]["replies"]),
        what="the prod-us follow-up",
    )
    # the node of the same name in prod-eu keeps its fault, its alert no follow-up
    assert sims[EU].control("GET", f"/sim/v1/hosts/{BROKEN}")["dns"] == "stale-policies"
    assert not any("DNS works again" in r["text"] for r in alerts(bot, EU)[0]["replies"])
    assert alert["ts"] == alerts(bot, US)[0]["ts"]


def test_a_cluster_that_stops_answering_is_reported_once_and_holds_up_nobody(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    bot = serve(INTERVAL)
    bot.wait_for(lambda: bot.log.count("sweep finished") >= 2, what="a sweep of each")
    sims[US].stop()
    reboot(sims[EU], BROKEN)

    bot.wait_for(lambda: alerts(bot, EU), what="the prod-eu alert")
    said = bot.wait_for(
        lambda: [m for m in bot.messages(CHANNELS[US]) if "does not answer" in m["text"]],
        what="the prod-us outage",
    )
    assert f"Cluster `{US}` does not answer" in said[0]["text"]
    assert "were not probed" in said[0]["text"]
    stopped = bot.log.count('"cluster": "prod-us"')
    bot.wait_for(
        lambda: bot.log.count('"cluster": "prod-us"') >= stopped + 3,
        what="three more sweeps of the silent cluster",
    )
    outages = [m for m in bot.messages(CHANNELS[US]) if "does not answer" in m["text"]]
    assert len(outages) == 1
    _, metrics = bot.get("/metrics")
    assert f'winpod_sweep_nodes{{cluster="{US}",state="not-probed"}} 3.0' in metrics
    assert f'winpod_sweep_nodes{{cluster="{EU}",state="failing"}} 1.0' in metrics
    assert f'winpod_errors_total{{cluster="{US}",kind="Unreachable",peer="kubernetes"}}' in metrics
    assert f'cluster="{EU}",kind="Unreachable"' not in metrics


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def test_the_cli_acts_in_the_cluster_it_names_and_its_json_says_which(
    sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    config = two_cluster_config(sims, tmp_path)
    reboot(sims[US], BROKEN)

    us = cli(config, "node", BROKEN, "--cluster", US, "-o", "json")
    eu = cli(config, "node", BROKEN, "-o", "json")  # default_cluster
    unknown = cli(config, "node", BROKEN, "--cluster", "staging")

    assert us.returncode == 1, us.stderr  # DNS fails on prod-us's node only
    assert json.loads(us.stdout)["cluster"] == US
    assert eu.returncode == 0, eu.stderr
    assert json.loads(eu.stdout)["cluster"] == EU
    assert unknown.returncode == 2
    assert f"unknown cluster 'staging'; the clusters are: {EU}, {US}" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_cli_clusters_lists_both_and_exits_3_when_one_does_not_answer(
    sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    config = two_cluster_config(sims, tmp_path)

    both = cli(config, "clusters", "-o", "json")
    sims[US].stop()
    one = cli(config, "clusters")

    assert both.returncode == 0, both.stderr
    listed = {c["name"]: c for c in json.loads(both.stdout)["clusters"]}
    assert [listed[n]["windows_nodes"] for n in (EU, US)] == [3, 3]
    assert (listed[EU]["home"], listed[EU]["default"], listed[US]["home"]) == (True, True, False)
    assert one.returncode == 3
    assert re.search(rf"^{US} +UNREACHABLE: ", one.stdout, re.MULTILINE), one.stdout


def test_the_app_home_shows_each_cluster_with_its_own_nodes_and_waiting_actions(
    sims: dict[str, RunningSim], serve: Callable[..., RunningBot]
) -> None:
    reboot(sims[US], BROKEN)
    bot = serve(INTERVAL)
    alert = bot.wait_for(lambda: alerts(bot, US), what="the prod-us alert")[0]
    bot.click(alert, "remediate:hns-reset", user=APPROVER_A, channel=CHANNELS[US])
    bot.wait_for(lambda: "second approver" in str(alerts(bot, US)[0]), what="the request")

    sent = sims[EU].control(
        "POST",
        "/sim/v1/slack/events/app_home_opened",
        {"user": APPROVER_B, "url": bot.events_url, "tab": "home"},
    )
    assert sent["status"] == 200
    view = bot.wait_for(
        lambda: sims[EU].control("GET", f"/sim/v1/slack/home?user={APPROVER_B}")["view"],
        what="the published home",
    )

    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert [h for h in headers if h.startswith("winpod · cluster")] == [
        f"winpod · cluster {EU}",
        f"winpod · cluster {US}",
    ]
    text = json.dumps(view["blocks"], ensure_ascii=False)
    us_part = text[text.index(f"winpod · cluster {US}") :]
    eu_part = text[: text.index(f"winpod · cluster {US}")]
    assert "hns-reset" in us_part and "hns-reset" not in eu_part  # the action waits in prod-us


def test_an_on_demand_sweep_and_an_rdp_request_name_their_cluster(
    serve: Callable[..., RunningBot],
) -> None:
    bot = serve()

    assert bot.command(f"sweep cluster={US}", channel="C0SWEEP").status == 200
    (summary,) = bot.wait_for(
        lambda: [m for m in bot.messages("C0SWEEP") if "Sweep:" in str(m.get("text"))],
        what="the sweep summary",
    )
    assert str(summary["text"]).startswith(f"[{US}] Sweep:")

    assert bot.command(f"rdp open {BROKEN} cluster={US}", channel="C0RDP").status == 200
    (request,) = bot.wait_for(lambda: bot.messages("C0RDP"), what="the RDP request")
    assert str(request["text"]).startswith(f"[{US}] "), request["text"]
    assert "asks to" in str(request["text"])
