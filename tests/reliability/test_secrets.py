"""Secrets: every bot log, CLI output and recorded Slack call of the reliability run is scanned
for the configured tokens and passwords (by the lab, as each module ends); the last test of the
whole run fails on any hit, on any invalid name sent to the cluster and on any traceback."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from reliability_kit import SecretScan, invalid_segments, live_markup, secret_forms

SECRET = "xoxb-sim-0123456789abcdef01234567"
PASSWORD = "Pw-s3cr3t/with+odd&chars"


@pytest.mark.parametrize(
    "leak",
    [
        f'{{"level": "error", "message": "auth failed for {SECRET}"}}',
        json.dumps({"params": {"text": f"password is {PASSWORD}"}}),
        f"GET /callback?token={urllib.parse.quote(PASSWORD, safe='')}",
        f"winpod: WinRM refused {PASSWORD}\n",
    ],
)
def test_the_scanner_finds_a_secret_as_is_json_escaped_or_url_encoded(leak: str) -> None:
    scan = SecretScan()
    hits = scan.scan("bot log", "planted", leak, {SECRET, PASSWORD})
    assert len(hits) == 1
    assert SECRET not in hits[0] and PASSWORD not in hits[0]  # the report never repeats it


def test_the_scanner_passes_clean_text_and_masked_secrets() -> None:
    scan = SecretScan()
    clean = f"token {SECRET[:8]}… refused; password ********"
    assert scan.scan("bot log", "clean", clean, {SECRET, PASSWORD}) == []
    assert scan.scanned["bot log"] == 1
    assert PASSWORD in secret_forms(PASSWORD)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/api/v1/namespaces/shop/pods/api-0/exec", []),
        ("/apis/coordination.k8s.io/v1/namespaces/winpod/leases/winpod-leader", []),
        ("/api/v1/namespaces/web\n/pods/iis-0", ["web\n"]),
        ("/api/v1/nodes/akswin000001;calc.exe", ["akswin000001;calc.exe"]),
        ("/api/v1/namespaces/Web/pods/$(whoami)", ["Web", "$(whoami)"]),
    ],
)
def test_an_invalid_name_in_a_cluster_request_is_spotted(path: str, bad: list[str]) -> None:
    assert invalid_segments({"method": "GET", "path": path}) == bad


@pytest.mark.parametrize(
    ("text", "live"),
    [
        ("fine &lt;!channel&gt; &lt;@U0EVIL&gt;", []),
        (":lock: <@U0APPROVER1> closed RDP", []),
        ("Approvers: <!subteam^S0OPS>, <@U0APPROVER2>", []),
        ("<!subteam^S0EVIL>", ["<!subteam^S0EVIL>"]),
        ("<https://kubernetes.io/docs/x|docs 2> · <https://github.com/k/k/issues/1|docs>", []),
        ("event: <!channel> now", ["<!channel>"]),
        ("<!here|here>", ["<!here|here>"]),
        ("ask <@U0EVIL> to approve", ["<@U0EVIL>"]),
        (
            "<https://evil.example/approve|Re-approve here>",
            ["<https://evil.example/approve|Re-approve here>"],
        ),
        ("<http://x", ["<http://x"]),
    ],
)
def test_live_markup_from_outside_is_spotted_and_winpods_own_is_not(
    text: str, live: list[str]
) -> None:
    assert live_markup(text) == live


def test_no_secret_invalid_name_or_traceback_anywhere_in_the_run(secret_scan: SecretScan) -> None:
    """Moved to the very end of the run by conftest.py, after every lab has been closed."""
    if secret_scan.labs_closed == 0:
        pytest.skip("no other reliability module ran in this session: nothing was scanned")
    assert secret_scan.hits == []
    assert secret_scan.bad_paths == []
    assert secret_scan.tracebacks == []
    assert secret_scan.markup == []  # no outside text became a mention, broadcast or link
    # Every kind of output was looked at, not just some.
    assert {"bot log", "Slack calls"} <= set(secret_scan.scanned), secret_scan.scanned
    print(f"scanned for secrets: {dict(secret_scan.scanned)}")  # shown with -s / -rP
