"""`serviceaccount-token` on the simulator: token reads on builds before and after 17074."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CheckCluster

pytestmark = pytest.mark.wire

SCENARIO = "check_serviceaccount_token.yaml"
CHECK = "serviceaccount-token"
PROBE = (
    r"probe `(Get-Content -Raw 'C:\var\run\secrets\kubernetes.io\serviceaccount\token').Length` "
)
OLD_BUILD = "node akswin1709 is 16299 (Windows Server 1709); the fix shipped in build 17074"
DOCS = ("https://github.com/moby/moby/issues/28401",)
JWT_HEADER = "eyJ"  # every ServiceAccount token starts with a base64url JSON header


def test_pod_on_1709_cannot_read_its_token(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/legacy-0", CHECK)

    assert finding.severity == "error"
    assert finding.title == "The pod cannot read its ServiceAccount token"
    assert "moby#28401" in finding.summary
    assert "nothing inside the pod can fix it" in finding.summary
    assert finding.evidence[0] == OLD_BUILD
    assert finding.evidence[1].startswith(PROBE + "failed: ")
    assert "Could not find a part of the path" in finding.evidence[1]
    assert finding.remediations == ()  # nothing automatic: the fix is a newer node OS
    assert finding.docs == DOCS


def test_pod_on_1809_reads_its_token_and_winpod_never_shows_it(cluster: CheckCluster) -> None:
    diagnosis = cluster.pod("web/app-0")
    finding = cluster.only(diagnosis, CHECK)

    assert finding.severity == "ok"
    assert finding.title == "ServiceAccount token readable"
    assert len(finding.evidence) == 1
    assert finding.evidence[0].startswith(PROBE + "succeeded: length ")
    assert int(finding.evidence[0].rsplit(" ", 1)[1]) > 100
    assert JWT_HEADER not in json.dumps(diagnosis.to_json())


def test_pending_pod_on_an_old_build_is_warned_about(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/legacy-1", CHECK)

    assert finding.severity == "warning"
    assert finding.title == "ServiceAccount token will be unreadable"
    assert "The token could not be probed" in finding.summary
    assert finding.evidence == (OLD_BUILD,)
    assert finding.docs == DOCS


def test_nano_server_on_a_fixed_build_cannot_be_probed_and_needs_not_be(
    cluster: CheckCluster,
) -> None:
    finding = cluster.pod_finding("web/nano-0", CHECK)

    assert finding.severity == "info"
    assert finding.summary == "the pod is not running or has no PowerShell to probe"


def test_a_pod_without_a_token_mount_is_not_applicable(cluster: CheckCluster) -> None:
    finding = cluster.pod_finding("web/legacy-notoken", CHECK)

    assert (finding.severity, finding.summary) == (
        "info",
        "the pod does not mount a ServiceAccount token",
    )


def test_node_diagnosis_judges_by_build(cluster: CheckCluster) -> None:
    old = cluster.node_finding("akswin1709", CHECK)
    fixed = cluster.node_finding("akswin1809", CHECK)

    assert old.severity == "error"
    assert old.title == "Pods on this node cannot read their ServiceAccount token"
    assert old.evidence == (OLD_BUILD,)
    assert fixed.severity == "ok"
    assert fixed.summary == (
        "node akswin1809 is 17763 (Windows Server 2019 / 1809); the fix shipped in build 17074"
    )
