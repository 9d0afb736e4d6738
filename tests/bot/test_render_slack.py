"""Diagnoses as Slack Block Kit: snapshots of real cases, and Slack's limits under stress."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.render_slack import (
    MESSAGE_TEXT_BUDGET,
    cut,
    diagnosis_message,
    error_message,
    escape,
    help_message,
    progress_message,
    queued_note,
    usage_error,
)
from handlers.model import Diagnosis, Finding, NodeFacts, RemediationRef, Severity, Target
from handlers.registry import default_registry, offer

ENTITY = re.compile(r"&(amp|lt|gt);")
SNAPSHOTS = Path(__file__).parent / "snapshots"
NODE = "akswin000002"
DNS_DOCS = (
    "https://github.com/Azure/acs-engine/issues/2027",
    "https://github.com/Azure/aks-engine/pull/3956",
)
HNS_IMPACT = (
    "Stops kubelet and kube-proxy on akswin000002 and rebuilds its HNS network: every pod on the "
    "node loses network for about a minute."
)

RISK = {spec.id: spec.risk for spec in default_registry().remediations()}


def assert_snapshot(name: str, message: tuple[str, list[dict[str, Any]]]) -> None:
    """Compare with tests/bot/snapshots/<name>.json; a missing snapshot is written and fails."""
    text, blocks = message
    data = {"text": text, "blocks": blocks}
    path = SNAPSHOTS / f"{name}.json"
    if not path.exists() or os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.fail(f"snapshot {path} written: review it, then run the tests again")
    assert json.loads(path.read_text(encoding="utf-8")) == data


def node_facts(name: str = NODE, build: int = 17763) -> NodeFacts:
    return NodeFacts(
        name=name,
        build=build,
        kernel_version=f"10.0.{build}.2061",
        os_image="Windows Server 2019 Datacenter",
        boot_id="8",
        windows=True,
    )


def pod(name: str = "iis-0", phase: str = "Running", reason: str | None = None) -> Target:
    return Target("Pod", name, "web", NODE, phase, reason)


def ok(check: str, title: str) -> Finding:
    return Finding(check, "ok", title, "", ("fine",))


def dns_after_reboot() -> Finding:
    return Finding(
        "dns-after-reboot",
        "error",
        "DNS through the cluster DNS Service fails (stale HNS policies)",
        "After a reboot the HNS load-balancer policy for the DNS Service IP is stale, so lookups "
        "through 10.0.0.10 fail while a kube-dns pod answers directly.",
        (
            "probe `nslookup kubernetes.default.svc.cluster.local` failed: DNS request timed out. "
            "/ timeout was 2 seconds.",
            "probe `nslookup kubernetes.default.svc.cluster.local 10.244.0.2` succeeded: "
            "Name: kubernetes.default.svc.cluster.local / Address: 10.0.0.1",
            f"node {NODE} boot ID 8",
            "event Rebooted 2024-05-02T07:14:00Z: Node akswin000002 has been rebooted, boot id: 8",
            f"HNS on {NODE}: 3 policy lists, load-balancer policy for DNS VIP 10.0.0.10: missing",
            f"1 running pod(s) on {NODE}",
        ),
        (
            offer("kube-proxy-restart", NODE),
            offer("hns-reset", NODE),
            offer("pod-dns-override", "web/iis-0"),
            offer("dns-keeper", "cluster"),
        ),
        DNS_DOCS,
    )


def dns_diagnosis() -> Diagnosis:
    findings = (
        dns_after_reboot(),
        Finding(
            "node-clusterip",
            "info",
            "The node cannot reach Service ClusterIPs",
            "A known limitation of Windows nodes, not a fault.",
        ),
        ok("image-os-mismatch", "Images fit the node's Windows build"),
        ok("pause-image", "The pause image fits the node"),
        ok("serviceaccount-token", "The ServiceAccount token is readable"),
    )
    return Diagnosis(pod(), node_facts(), findings, 412)


def offer_ids_for(diagnosis: Diagnosis) -> dict[tuple[str, str], str]:
    refs = [ref for f in diagnosis.findings for ref in f.remediations]
    return {(ref.id, ref.target): f"offer-{n}" for n, ref in enumerate(refs, start=1)}


def render(
    diagnosis: Diagnosis, impacts: dict[str, str] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    return diagnosis_message(diagnosis, offer_ids_for(diagnosis), impacts or {})


def dump(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def of_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [block for block in blocks if block["type"] == kind]


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [element for block in of_type(blocks, "actions") for element in block["elements"]]


def texts(value: Any) -> Iterator[str]:
    """Every text string in the blocks, however deeply nested."""
    if isinstance(value, list):
        for item in value:
            yield from texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from texts(item)


def mrkdwn_texts(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from mrkdwn_texts(item)
    elif isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            yield value["text"]
        for item in value.values():
            yield from mrkdwn_texts(item)


def assert_within_slack_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    assert sum(len(text) for text in texts(blocks)) <= MESSAGE_TEXT_BUDGET
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(element["text"]) <= 3000 for element in block["elements"])
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
    for button in buttons(blocks):
        assert len(button["text"]["text"]) <= 75
        if "confirm" in button:
            assert len(button["confirm"]["title"]["text"]) <= 100
            assert len(button["confirm"]["text"]["text"]) <= 300
    # slack_sdk parses the JSON back and validates every limit it knows while serialising.
    assert [block.to_dict() for block in Block.parse_all(blocks)] == blocks


# --- snapshots -----------------------------------------------------------------------------


def test_dns_after_reboot_snapshot() -> None:
    message = render(dns_diagnosis(), {"hns-reset": HNS_IMPACT})
    assert_snapshot("dns_after_reboot", message)


def test_healthy_pod_snapshot() -> None:
    findings = (
        ok("image-os-mismatch", "Images fit the node's Windows build"),
        ok("dns-after-reboot", "DNS works in the pod"),
        ok("apiserver-unreachable", "The pod reaches the Kubernetes API"),
    )
    message = render(Diagnosis(pod(), node_facts(), findings, 230))
    assert_snapshot("healthy", message)


def test_image_mismatch_snapshot() -> None:
    finding = Finding(
        "image-os-mismatch",
        "error",
        "Container image built for another Windows version",
        "A process-isolated container needs the host's Windows build. Use the ltsc2019 tag of the "
        "image, or pin the workload to nodes of build 20348 (ltsc2022).",
        (
            f"container iis: image mcr.microsoft.com/windows/servercore/iis:ltsc2022 is built for "
            f"20348 (ltsc2022); node {NODE} is 17763 (ltsc2019)",
            "event FailedCreatePodSandBox: Failed to create pod sandbox: rpc error: code = Unknown "
            "desc = hcs::CreateComputeSystem: The container operating system does not match the "
            "host operating system.",
        ),
        (offer("pin-windows-build", "web/iis-0"),),
        (
            "https://learn.microsoft.com/virtualization/windowscontainers/deploy-containers/version-compatibility",
        ),
    )
    diagnosis = Diagnosis(
        pod(phase="Pending", reason="ContainerCreating"), node_facts(), (finding,), 512
    )
    assert_snapshot("image_mismatch", render(diagnosis))


# --- what a reader of the channel sees -----------------------------------------------------


def test_dns_message_reads_top_down() -> None:
    text, blocks = render(dns_diagnosis(), {"hns-reset": HNS_IMPACT})
    assert text == "web/iis-0: 1 error, 0 warnings"
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == f"Pod web/iis-0 on {NODE} · build 17763"
    intro = blocks[1]["elements"][0]["text"]
    assert "Running" in intro
    assert "Windows Server 2019 Datacenter" in intro
    assert "boot ID `8`" in intro
    assert "412 ms" in intro
    sections = [block["text"]["text"] for block in of_type(blocks, "section")]
    assert sections[0].startswith(":red_circle: *DNS through the cluster DNS Service fails")
    assert "`dns-after-reboot`" in sections[0]
    assert sections[1].startswith(":information_source: *The node cannot reach")
    assert "<https://github.com/Azure/acs-engine/issues/2027|docs 1>" in dump(blocks)
    assert_within_slack_limits(blocks)


def test_ok_findings_collapse_into_one_line_after_the_problems() -> None:
    _, blocks = render(dns_diagnosis())
    ok_lines = [
        element["text"]
        for block in of_type(blocks, "context")
        for element in block["elements"]
        if element["text"].startswith(":white_check_mark:")
    ]
    assert ok_lines == [
        ":white_check_mark: Images fit the node's Windows build · The pause image fits the node · "
        "The ServiceAccount token is readable"
    ]
    assert blocks[-1]["elements"][0]["text"] == ok_lines[0]


def test_healthy_pod_has_one_context_line_and_no_buttons() -> None:
    findings = (ok("image-os-mismatch", "Images fit"), ok("dns-after-reboot", "DNS works"))
    text, blocks = render(Diagnosis(pod(), node_facts(), findings, 10))
    assert text == "web/iis-0: 0 errors, 0 warnings"
    assert [block["type"] for block in blocks] == ["header", "context", "divider", "context"]
    assert blocks[-1]["elements"][0]["text"] == ":white_check_mark: Images fit · DNS works"
    assert buttons(blocks) == []


def test_findings_are_shown_most_severe_first() -> None:
    findings = (
        Finding("node-clusterip", "info", "An info", ""),
        Finding("pause-image", "warning", "A warning", ""),
        ok("dns-after-reboot", "Fine"),
        Finding("image-os-mismatch", "error", "An error", ""),
    )
    _, blocks = render(Diagnosis(pod(), node_facts(), findings))
    markers = [block["text"]["text"].split(" ")[0] for block in of_type(blocks, "section")]
    assert markers == [":red_circle:", ":warning:", ":information_source:"]


def test_one_button_per_remediation_with_the_callers_offer_id() -> None:
    diagnosis = dns_diagnosis()
    _, blocks = render(diagnosis)
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in buttons(blocks)] == [
        ("remediate:kube-proxy-restart", "offer-1", f"Run kube-proxy-restart on {NODE}"),
        ("remediate:hns-reset", "offer-2", f"Run hns-reset on {NODE}"),
        ("remediate:pod-dns-override", "offer-3", "Run pod-dns-override on web/iis-0"),
        ("remediate:dns-keeper", "offer-4", "Run dns-keeper on cluster"),
    ]


def test_confirm_dialogs_exactly_on_medium_and_high_risk_buttons() -> None:
    _, blocks = render(dns_diagnosis(), {"hns-reset": HNS_IMPACT})
    for button in buttons(blocks):
        remediation = button["action_id"].split(":")[1]
        risk = RISK[remediation]
        assert ("confirm" in button) == (risk in ("medium", "high")), remediation
        assert button.get("style") == {"high": "danger", "low": "primary"}.get(risk), remediation
    by_id = {button["action_id"]: button for button in buttons(blocks)}
    hns = by_id["remediate:hns-reset"]["confirm"]
    assert hns["title"]["text"] == "Run hns-reset?"
    assert hns["text"]["text"] == HNS_IMPACT
    assert (hns["confirm"]["text"], hns["deny"]["text"]) == ("Request approval", "Cancel")
    generic = by_id["remediate:kube-proxy-restart"]["confirm"]["text"]["text"]
    assert NODE in generic
    assert "medium-risk" in generic


def test_a_remediation_offered_by_two_findings_gets_one_button_on_the_first() -> None:
    services = Finding(
        "node-services",
        "warning",
        "kubeproxy is not running",
        "",
        ("kubeproxy: Stopped",),
        (offer("kube-proxy-restart", NODE),),
    )
    diagnosis = Diagnosis(pod(), node_facts(), (dns_after_reboot(), services))
    _, blocks = render(diagnosis)
    restarts = [b for b in buttons(blocks) if b["action_id"].startswith("remediate:kube-proxy")]
    assert len(restarts) == 1
    # The warning's section is followed by its evidence, not by another actions block.
    assert len(of_type(blocks, "actions")) == 1


def test_the_same_remediation_on_two_targets_gets_distinct_action_ids() -> None:
    first = Finding(
        "dns-after-reboot",
        "error",
        "DNS fails on one",
        "",
        (),
        (offer("kube-proxy-restart", NODE),),
    )
    second = Finding(
        "dns-after-reboot",
        "error",
        "DNS fails on another",
        "",
        (),
        (offer("kube-proxy-restart", "akswin000003"),),
    )
    _, blocks = render(Diagnosis(pod(), node_facts(), (first, second)))
    assert [b["action_id"] for b in buttons(blocks)] == [
        "remediate:kube-proxy-restart",
        "remediate:kube-proxy-restart:2",
    ]


def test_a_remediation_without_an_offer_id_is_named_but_has_no_button() -> None:
    diagnosis = dns_diagnosis()
    offer_ids = offer_ids_for(diagnosis)
    del offer_ids[("hns-reset", NODE)]
    _, blocks = diagnosis_message(diagnosis, offer_ids, {})
    assert "remediate:hns-reset" not in [b["action_id"] for b in buttons(blocks)]
    assert f"`hns-reset` on {NODE} (not offerable here)" in dump(blocks)
    assert_within_slack_limits(blocks)


def test_evidence_is_escaped_for_mrkdwn() -> None:
    finding = Finding("pause-image", "error", "Bad <b>", "a & b", ("<script>&alert()",))
    _, blocks = render(Diagnosis(pod(), node_facts(), (finding,)))
    dumped = dump(blocks)
    assert "• &lt;script&gt;&amp;alert()" in dumped
    assert "<script>" not in dumped
    assert "*Bad &lt;b&gt;*" in dumped
    assert "a &amp; b" in dumped


def test_a_node_diagnosis_names_the_node_command() -> None:
    target = Target("Node", NODE, node=NODE)
    findings = tuple(
        Finding("node-services", "error", f"Problem {n}", "x" * 2900) for n in range(40)
    )
    text, blocks = render(Diagnosis(target, node_facts(), findings))
    assert blocks[0]["text"]["text"] == f"Node {NODE} · build 17763"
    assert text == f"{NODE}: 40 errors, 0 warnings"
    assert "run `winpod node akswin000002` for all" in blocks[-1]["elements"][0]["text"]
    assert_within_slack_limits(blocks)


def test_findings_that_do_not_fit_in_full_are_all_shown_briefly() -> None:
    findings = tuple(
        Finding("pause-image", "warning", f"Problem {n}", "x" * 2900, ("y" * 400,) * 6)
        for n in range(6)
    )
    _, blocks = render(Diagnosis(pod(), node_facts(), findings))
    assert_within_slack_limits(blocks)
    sections = [block["text"]["text"] for block in of_type(blocks, "section")]
    assert [text.split("*")[1] for text in sections] == [f"Problem {n}" for n in range(6)]
    assert all(len(text) <= 600 and "(cut: " in text for text in sections)
    assert "more findings not shown" not in dump(blocks)


# --- Slack's limits under stress ------------------------------------------------------------


def huge_diagnosis() -> Diagnosis:
    severities: tuple[Severity, ...] = ("error", "warning", "info")
    findings = tuple(
        Finding(
            f"check-{n}",
            severities[n % 3],
            f"Finding {n} " + "t" * 200,
            "s" * 4000,
            tuple(f"line {m} " + "e" * 492 for m in range(40)),
            tuple(
                RemediationRef(remediation, f"node-{n}", RISK[remediation])
                for remediation in (
                    "hns-reset",
                    "kube-proxy-restart",
                    "pod-dns-override",
                    "dns-keeper",
                    "fix-sandbox-image",
                )
            ),
            DNS_DOCS,
        )
        for n in range(120)
    )
    return Diagnosis(pod("big-0"), node_facts(), findings, 9000)


def test_a_huge_diagnosis_fits_in_one_message() -> None:
    text, blocks = render(huge_diagnosis())
    assert_within_slack_limits(blocks)
    assert text == "web/big-0: 40 errors, 40 warnings"
    shown = len(of_type(blocks, "section"))
    note = blocks[-1]["elements"][0]["text"]
    assert (
        note == f"… {120 - shown} more findings not shown; run `winpod diagnose web/big-0` for all"
    )
    evidence = of_type(blocks, "context")[1]["elements"][0]["text"]
    assert evidence.startswith("• line 0 eee")
    assert "more evidence lines not shown" in evidence
    assert "(cut: " in of_type(blocks, "section")[0]["text"]["text"]
    action_ids = [b["action_id"] for b in buttons(blocks)]
    assert len(action_ids) == len(set(action_ids))


def test_a_300_character_pod_name_still_fits() -> None:
    name = "iis-" + "x" * 296
    refs = (offer("hns-reset", f"web/{name}"), offer("pod-dns-override", f"web/{name}"))
    finding = Finding("dns-after-reboot", "error", name, name, (name,), refs)
    diagnosis = Diagnosis(pod(name), node_facts(), (finding,))
    offer_ids = {(r.id, r.target): "o" for r in refs}
    text, blocks = diagnosis_message(diagnosis, offer_ids, {})
    assert_within_slack_limits(blocks)
    header = blocks[0]["text"]["text"]
    assert header.startswith("Pod web/iis-xxx")
    assert header.endswith(f"… on {NODE} · build 17763")
    assert len(header) == 150
    assert all(b["text"]["text"].startswith("Run ") for b in buttons(blocks))
    assert text.startswith(f"web/{name}: 1 error")


# Texts full of characters that Slack's mrkdwn treats specially, and of every length.
slack_text = st.text(alphabet=st.sampled_from("ab <>&*_`|:\n"), max_size=4000)


@settings(max_examples=40, deadline=None)
@given(
    titles=st.lists(slack_text, min_size=1, max_size=30),
    evidence=st.lists(slack_text, max_size=50),
    target=slack_text,
)
def test_any_text_renders_within_the_limits(
    titles: list[str], evidence: list[str], target: str
) -> None:
    refs = tuple(RemediationRef(r, target, RISK[r]) for r in RISK)
    findings = tuple(
        Finding("check", "error", title, title, tuple(evidence), refs, (title,)) for title in titles
    )
    diagnosis = Diagnosis(Target("Pod", target, target, target), None, findings)
    offer_ids = {(r.id, r.target): "o" for r in refs}
    _, blocks = diagnosis_message(diagnosis, offer_ids, {r: target for r in RISK})
    assert_within_slack_limits(blocks)
    for text in mrkdwn_texts(blocks):
        assert not {"<", ">", "&"} & set(ENTITY.sub("", text))


@given(text=slack_text.map(escape), limit=st.integers(min_value=1, max_value=3000))
def test_cut_stays_within_the_limit_and_never_splits_an_escape(text: str, limit: int) -> None:
    result = cut(text, limit)
    assert len(result) <= limit
    assert "&" not in ENTITY.sub("", result)


# --- the other messages ---------------------------------------------------------------------


def test_progress_message_names_the_node_when_known() -> None:
    text, blocks = progress_message("web/iis-0", "akswin000001")
    assert text == "Diagnosing web/iis-0 on akswin000001…"
    assert (
        blocks[0]["text"]["text"]
        == ":hourglass_flowing_sand: Diagnosing web/iis-0 on akswin000001…"
    )
    assert progress_message("web/iis-0", None)[0] == "Diagnosing web/iis-0…"


def test_error_message_says_what_failed() -> None:
    text, blocks = error_message("pod web/x not found in context aks-prod")
    assert text == "pod web/x not found in context aks-prod"
    assert blocks == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ":x: pod web/x not found in context aks-prod"},
        }
    ]
    long_text, long_blocks = error_message("<" * 5000)
    assert_within_slack_limits(long_blocks)
    assert len(long_text) <= 3000


def test_help_lists_exactly_the_commands_given() -> None:
    commands = [
        (
            "/winpod diagnose NAMESPACE/POD",
            "One diagnosis of one pod.",
            "/winpod diagnose web/iis-0",
        ),
        ("/winpod help", "This list.", ""),
    ]
    text, blocks = help_message(commands)
    sections = [block["text"]["text"] for block in of_type(blocks, "section")]
    assert sections == [
        "`/winpod diagnose NAMESPACE/POD`\nOne diagnosis of one pod.\n"
        "_e.g._ `/winpod diagnose web/iis-0`",
        "`/winpod help`\nThis list.",
    ]
    assert text == "winpod commands: /winpod diagnose NAMESPACE/POD, /winpod help"
    _, many = help_message([(f"/winpod c{n}", "d", "e") for n in range(80)])
    assert_within_slack_limits(many)
    assert many[-1]["elements"][0]["text"] == "… 32 more commands not shown"


def test_usage_error_names_the_problem_and_the_right_form() -> None:
    reply = usage_error("`web` is not NAMESPACE/POD", "/winpod diagnose NAMESPACE/POD")
    assert reply.startswith(":warning: `web` is not NAMESPACE/POD\n")
    assert "`/winpod diagnose NAMESPACE/POD`" in reply
    assert "&lt;x&gt;" in usage_error("bad <x>", "/winpod help")


def test_queued_note_counts_the_diagnoses_ahead() -> None:
    assert "next in line" in queued_note(1)
    assert "2 diagnoses ahead" in queued_note(3)
    assert "1 diagnosis ahead" in queued_note(2)
