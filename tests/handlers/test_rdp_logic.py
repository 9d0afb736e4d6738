"""RDP access decisions on plain data and an in-memory cluster: names, TTLs, source ranges, the
objects winpod creates, and which Services it may extend, close or expire."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import RDPSettings, Settings
from handlers import rdp
from handlers.errors import BadInput, NotFound
from handlers.transports import KubeObject

NAMESPACE = "winpod"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# Kubernetes' own validation: a Service name is a DNS-1035 label, a label value ≤ 63 characters.
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG_NODE = "win-" + "n" * 70 + ".corp.example.com"


def settings(**rdp_settings: Any) -> Settings:
    return Settings(rdp=RDPSettings(**rdp_settings))


def valid_service_name(name: str) -> bool:
    return len(name) <= 63 and bool(DNS_1035_LABEL.match(name))


def valid_labels(labels: dict[str, str]) -> bool:
    return all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values())


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("akswin000001", "winpod-rdp-akswin000001"),
        ("win01.corp.example.com", "winpod-rdp-win01-corp-example-com"),
    ],
)
def test_a_short_node_name_shows_in_the_service_name(node: str, expected: str) -> None:
    assert rdp.service_name(node) == expected
    assert valid_service_name(expected)


@pytest.mark.parametrize(
    "node",
    [
        "a" * 52,  # exactly 63 with the prefix: kept whole
        "a" * 53,
        LONG_NODE,
        "x" * 253,
        "a" * 52 + "-" + "b" * 10,  # cut right after a '-': the name must not end with one
    ],
)
def test_every_node_name_gives_a_valid_service_name(node: str) -> None:
    name = rdp.service_name(node)
    assert valid_service_name(name), name
    assert name.startswith("winpod-rdp-")


def test_long_node_names_with_a_common_prefix_get_different_service_names() -> None:
    first, second = LONG_NODE, LONG_NODE.replace(".corp.", ".lab.")
    assert rdp.service_name(first) != rdp.service_name(second)
    assert rdp.service_name(first) == rdp.service_name(first)  # stable across restarts


# --- TTL ------------------------------------------------------------------------------------


def test_ttl_defaults_to_rdp_default_ttl() -> None:
    assert rdp.parse_ttl(None, settings(default_ttl="45m")) == timedelta(minutes=45)


@pytest.mark.parametrize(("text", "seconds"), [("2m", 120), ("1m", 60), ("4h", 14400)])
def test_ttl_up_to_the_maximum_is_accepted(text: str, seconds: int) -> None:
    assert rdp.parse_ttl(text, settings()) == timedelta(seconds=seconds)


def test_ttl_over_the_maximum_is_refused_naming_the_maximum() -> None:
    with pytest.raises(BadInput, match=r"ttl 5h is longer than rdp.max_ttl \(4h\)"):
        rdp.parse_ttl("5h", settings())
    with pytest.raises(BadInput, match=r"rdp.max_ttl \(1h30m\)"):
        rdp.parse_ttl("91m", settings(max_ttl="90m"))
    with pytest.raises(BadInput, match=r"ttl 5h is longer"):  # a default over the maximum
        rdp.parse_ttl(None, settings(default_ttl="5h"))


@pytest.mark.parametrize("text", ["25h", "1d", "2d", "241m", "28h"])
def test_ttl_over_the_maximum_counts_whole_days(text: str) -> None:
    # timedelta.seconds drops the days: 25 h would pass as 1 h
    with pytest.raises(BadInput, match=r"longer than rdp.max_ttl \(4h\)"):
        rdp.parse_ttl(text, settings())


@pytest.mark.parametrize("text", ["0.5s", "5s", "59s", "250ms"])
def test_a_ttl_under_a_minute_is_refused_when_asked(text: str) -> None:
    with pytest.raises(BadInput, match=r"shorter than 1m"):
        rdp.parse_ttl(text, settings())


@pytest.mark.parametrize("text", ["soon", "-5m", "0", "5 parsecs", "9" * 30 + "d"])
def test_a_ttl_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(BadInput, match="ttl"):
        rdp.parse_ttl(text, settings())


# --- source ranges --------------------------------------------------------------------------


def test_source_ranges_default_to_the_configured_ones() -> None:
    configured = settings(source_ranges=["198.51.100.0/24", "192.0.2.7/32"])
    assert rdp.source_ranges(None, configured) == ["198.51.100.0/24", "192.0.2.7/32"]


def test_requested_ranges_are_normalised_and_may_be_several() -> None:
    ranges = rdp.source_ranges("192.0.2.0/24, 2001:DB8::/120, 203.0.113.9", settings())
    assert ranges == ["192.0.2.0/24", "2001:db8::/120", "203.0.113.9/32"]


@pytest.mark.parametrize("cidr", ["192.0.2.9/24", "198.51.100.7/16", "2001:db8::1/64"])
def test_a_range_with_host_bits_is_refused_rather_than_widened(cidr: str) -> None:
    with pytest.raises(BadInput, match="bits set past"):
        rdp.source_ranges(cidr, settings())


@pytest.mark.parametrize(
    "cidrs",
    [
        "0.0.0.0/1,128.0.0.0/1",  # the whole internet in two pieces
        ",".join(f"{i}.0.0.0/8" for i in range(1, 9)),
        "198.51.0.0/16,198.52.0.0/16",
        "2001:db8::/64",
        "198.18.0.0/15",
    ],
)
def test_ranges_reaching_more_than_rdp_max_addresses_together_are_refused(cidrs: str) -> None:
    with pytest.raises(BadInput, match=r"rdp.max_addresses"):
        rdp.source_ranges(cidrs, settings())


def test_ranges_at_rdp_max_addresses_pass_and_overlaps_count_once() -> None:
    assert rdp.source_ranges("198.51.0.0/16", settings()) == ["198.51.0.0/16"]
    twice = rdp.source_ranges("198.51.0.0/16,198.51.100.0/24", settings())
    assert twice == ["198.51.0.0/16", "198.51.100.0/24"]
    with pytest.raises(BadInput, match=r"rdp.max_addresses"):
        rdp.source_ranges("198.51.0.0/16,203.0.113.0/24", settings())
    assert rdp.source_ranges("203.0.113.0/24", settings(max_addresses=256))
    with pytest.raises(BadInput, match=r"257 addresses"):
        rdp.source_ranges("203.0.113.0/24,192.0.2.1", settings(max_addresses=256))


def test_wide_ranges_listed_in_rdp_source_ranges_may_be_requested() -> None:
    wide = settings(source_ranges=["0.0.0.0/1", "128.0.0.0/1"])
    assert rdp.source_ranges("0.0.0.0/1,128.0.0.0/1", wide) == ["0.0.0.0/1", "128.0.0.0/1"]
    with pytest.raises(BadInput, match=r"rdp.max_addresses"):  # listed and unlisted together
        rdp.source_ranges("0.0.0.0/1,64.0.0.0/2", settings(source_ranges=["0.0.0.0/1"]))


@pytest.mark.parametrize(
    ("cidr", "private"),
    [("10.0.0.0/7", "10.0.0.0/8"), ("172.0.0.0/8", "172.16.0.0/12"), ("192.168.0.0/15", "")],
)
def test_a_range_mixing_a_private_block_with_public_addresses_is_refused(
    cidr: str, private: str
) -> None:
    with pytest.raises(BadInput, match=f"private range {private}"):
        rdp.source_ranges(cidr, settings(max_addresses=2**40))


@pytest.mark.parametrize("cidr", ["::ffff:0:0/96", "::ffff:198.51.100.0/120"])
def test_ipv4_written_as_ipv6_is_refused(cidr: str) -> None:
    with pytest.raises(BadInput, match="IPv4 written as IPv6"):
        rdp.source_ranges(cidr, settings(max_addresses=2**40))


def test_private_ranges_themselves_pass() -> None:
    assert rdp.source_ranges("10.0.0.0/17,192.168.1.0/24", settings()) == [
        "10.0.0.0/17",
        "192.168.1.0/24",
    ]


def test_no_range_anywhere_is_refused_with_the_fix() -> None:
    with pytest.raises(BadInput, match=r"from=CIDR or configure rdp.source_ranges"):
        rdp.source_ranges(None, settings())


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "10.1.2.3/0"])
def test_the_whole_internet_is_refused_unless_configured(cidr: str) -> None:
    with pytest.raises(BadInput, match="whole internet"):
        rdp.source_ranges(cidr, settings(source_ranges=["198.51.100.0/24"]))


def test_the_whole_internet_is_allowed_when_rdp_source_ranges_lists_it() -> None:
    open_world = settings(source_ranges=["0.0.0.0/0"])
    assert rdp.source_ranges(None, open_world) == ["0.0.0.0/0"]
    assert rdp.source_ranges("0.0.0.0/0", open_world) == ["0.0.0.0/0"]


@pytest.mark.parametrize(
    "cidr", ["198.51.100.0/33", "300.1.1.0/24", "office", "198.51.100.0/24,", "x" * 500]
)
def test_a_malformed_cidr_is_refused_with_an_example(cidr: str) -> None:
    with pytest.raises(BadInput, match=r"is not a CIDR such as 198\.51\.100\.0/24") as caught:
        rdp.source_ranges(cidr, settings())
    assert len(str(caught.value)) < 120  # a pasted blob is not echoed back whole


# --- the objects ----------------------------------------------------------------------------


def test_manifests_are_a_selectorless_load_balancer_and_endpoints_on_the_node() -> None:
    expires = NOW + timedelta(minutes=30)
    service, endpoint_slice, endpoints = rdp.manifests(
        "akswin000001", "10.240.0.5", NAMESPACE, ["198.51.100.0/24"], expires, "U0ASKER"
    )
    name = "winpod-rdp-akswin000001"
    assert service["metadata"]["name"] == name
    assert service["metadata"]["namespace"] == NAMESPACE
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert "selector" not in spec
    assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in spec["ports"]] == [
        (3389, 3389, "TCP")
    ]
    labels = service["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "winpod"
    assert labels["winpod.io/rdp"] == "true"
    assert labels["winpod.io/node"] == "akswin000001"
    annotations = service["metadata"]["annotations"]
    assert annotations["winpod.io/expires-at"] == "2026-11-28T12:30:00Z"
    assert annotations["winpod.io/requested-by"] == "U0ASKER"

    slice_labels = endpoint_slice["metadata"]["labels"]
    assert endpoint_slice["apiVersion"] == "discovery.k8s.io/v1"
    assert endpoint_slice["metadata"]["name"] == name
    assert slice_labels["kubernetes.io/service-name"] == name
    # The EndpointSlice controller would take over (and empty) a slice carrying its own value.
    assert slice_labels["endpointslice.kubernetes.io/managed-by"] != (
        "endpointslice-controller.k8s.io"
    )
    assert endpoint_slice["addressType"] == "IPv4"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [["10.240.0.5"]]
    assert [p["port"] for p in endpoint_slice["ports"]] == [3389]

    assert endpoints["kind"] == "Endpoints"
    assert endpoints["metadata"]["name"] == name  # v1 Endpoints pair with a Service by name
    [subset] = endpoints["subsets"]
    assert subset["addresses"] == [{"ip": "10.240.0.5"}]
    assert [p["port"] for p in subset["ports"]] == [3389]


def test_an_ipv6_node_address_gives_an_ipv6_endpoint_slice() -> None:
    _, endpoint_slice, _ = rdp.manifests(
        "akswin000001", "fd00::5", NAMESPACE, ["2001:db8::/64"], NOW, "U0ASKER"
    )
    assert endpoint_slice["addressType"] == "IPv6"


@pytest.mark.parametrize("node", ["akswin000001", "win01.corp.example.com", LONG_NODE])
def test_every_object_carries_labels_the_api_server_accepts(node: str) -> None:
    for obj in rdp.manifests(node, "10.240.0.5", NAMESPACE, ["198.51.100.0/24"], NOW, "U0ASKER"):
        assert valid_labels(obj["metadata"]["labels"]), obj["metadata"]["labels"]
        assert valid_service_name(obj["metadata"]["name"])


# --- open, close and expire on an in-memory cluster -------------------------------------------


class FakeCluster:
    """Objects by (kind, namespace, name); label selectors of the form k=v,k=v."""

    context = "fake"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], KubeObject] = {}

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        try:
            return copy.deepcopy(self.objects[(kind, namespace, name)])
        except KeyError:
            raise NotFound(f"{kind} {name} not found") from None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind
            and ns == namespace
            and all(
                (obj["metadata"].get("labels") or {}).get(key) == value
                for key, value in wanted.items()
            )
        ]

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject:
        self.objects[(kind, namespace, body["metadata"]["name"])] = copy.deepcopy(body)
        return body

    def patch(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        obj = self.objects[(kind, namespace, name)]
        for section, values in body.items():
            for key, value in values.items():
                target = obj.setdefault(section, {})
                if isinstance(value, dict):
                    target.setdefault(key, {}).update(value)
                else:
                    target[key] = value
        return obj

    def replace(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        self.objects[(kind, namespace, name)] = copy.deepcopy(body)
        return body

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        if self.objects.pop((kind, namespace, name), None) is None:
            raise NotFound(f"{kind} {name} not found")

    def kinds(self) -> list[tuple[str, str]]:
        return sorted((kind, name) for kind, _, name in self.objects)


def open_for(
    cluster: FakeCluster, node: str, expires: datetime, address: str = "10.240.0.5"
) -> tuple[str, bool]:
    return rdp.open_access(
        cluster, NAMESPACE, node, address, ["198.51.100.0/24"], expires, "U0ASKER"
    )


def expiry(cluster: FakeCluster, node: str) -> str:
    service = cluster.get("Service", rdp.service_name(node), NAMESPACE)
    return str(service["metadata"]["annotations"][rdp.EXPIRES])


def foreign(name: str, labels: dict[str, str] | None = None) -> KubeObject:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels or {},
            "annotations": {rdp.EXPIRES: "2000-01-01T00:00:00Z"},
        },
        "spec": {"type": "LoadBalancer"},
    }


def test_opening_twice_extends_the_session_instead_of_failing() -> None:
    cluster = FakeCluster()
    assert open_for(cluster, "akswin000001", NOW) == ("winpod-rdp-akswin000001", False)
    assert cluster.kinds() == [
        ("EndpointSlice", "winpod-rdp-akswin000001"),
        ("Service", "winpod-rdp-akswin000001"),
    ]
    later = NOW + timedelta(hours=1)
    assert open_for(cluster, "akswin000001", later) == ("winpod-rdp-akswin000001", True)
    assert expiry(cluster, "akswin000001") == "2026-11-28T13:00:00Z"


def test_a_service_of_the_same_name_that_is_not_winpods_is_never_taken_over() -> None:
    cluster = FakeCluster()
    cluster.create("Service", foreign("winpod-rdp-x"), NAMESPACE)
    with pytest.raises(BadInput, match="not winpod's"):
        open_for(cluster, "x", NOW)
    with pytest.raises(BadInput, match="not winpod's"):
        rdp.close_access(cluster, NAMESPACE, "x")
    assert cluster.kinds() == [("Service", "winpod-rdp-x")]


def test_nodes_sharing_a_service_name_never_extend_or_close_each_others_session() -> None:
    cluster = FakeCluster()
    open_for(cluster, "win01.corp", NOW, address="10.240.0.5")
    assert rdp.service_name("win01-corp") == rdp.service_name("win01.corp")
    with pytest.raises(BadInput, match=r"gives RDP to node win01\.corp, not win01-corp"):
        open_for(cluster, "win01-corp", NOW + timedelta(hours=1), address="10.240.0.6")
    with pytest.raises(BadInput, match=r"gives RDP to node win01\.corp, not win01-corp"):
        rdp.close_access(cluster, NAMESPACE, "win01-corp")
    [session] = rdp.sessions(cluster, NAMESPACE)
    assert (session.node, rdp.describe(session)["expiresAt"]) == (
        "win01.corp",
        "2026-11-28T12:00:00Z",
    )


def test_close_removes_the_service_and_its_endpoints_and_says_when_nothing_was_open() -> None:
    cluster = FakeCluster()
    open_for(cluster, "akswin000001", NOW)
    cluster.create(  # what an API without discovery.k8s.io would have got instead
        "Endpoints", {"metadata": {"name": "winpod-rdp-akswin000001"}}, NAMESPACE
    )
    assert rdp.close_access(cluster, NAMESPACE, "akswin000001") is True
    assert cluster.kinds() == []
    assert rdp.close_access(cluster, NAMESPACE, "akswin000001") is False


def test_reconcile_closes_only_expired_sessions_winpod_labelled() -> None:
    cluster = FakeCluster()
    open_for(cluster, "akswin000001", NOW - timedelta(seconds=1))
    open_for(cluster, "akswin000002", NOW + timedelta(minutes=5))
    open_for(cluster, LONG_NODE, NOW - timedelta(minutes=5))
    cluster.create("Service", foreign("winpod-rdp-x"), NAMESPACE)
    cluster.create(
        "Service",
        foreign("winpod-rdp-y", {"winpod.io/rdp": "true", "winpod.io/node": "y"}),
        NAMESPACE,
    )
    closed = rdp.reconcile(cluster, NAMESPACE, NOW)
    assert sorted(s.node for s in closed) == sorted(["akswin000001", LONG_NODE])
    assert [name for kind, name in cluster.kinds() if kind == "Service"] == [
        "winpod-rdp-akswin000002",
        "winpod-rdp-x",
        "winpod-rdp-y",
    ]
    assert rdp.reconcile(cluster, NAMESPACE, NOW) == []


def test_a_session_lists_its_node_expiry_ranges_and_the_command_to_connect() -> None:
    cluster = FakeCluster()
    open_for(cluster, LONG_NODE, NOW)
    [session] = rdp.sessions(cluster, NAMESPACE)
    assert session.node == LONG_NODE  # the whole name, though no label can hold it
    assert session.connect == "(no address yet)"
    name = rdp.service_name(LONG_NODE)
    cluster.objects[("Service", NAMESPACE, name)]["status"] = {
        "loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}
    }
    [session] = rdp.sessions(cluster, NAMESPACE)
    assert session.connect == "mstsc.exe /v:203.0.113.7"
    assert rdp.describe(session) == {
        "node": LONG_NODE,
        "service": name,
        "expiresAt": "2026-11-28T12:00:00Z",
        "sourceRanges": ["198.51.100.0/24"],
        "address": "203.0.113.7",
    }


@pytest.mark.parametrize(
    ("ingress", "shown"),
    [
        ([{"ip": "<!channel> <https://evil.example|connect here>"}], "(no address yet)"),
        ([{"hostname": "lb.example.com/evil?x="}], "(no address yet)"),
        (
            [{"ip": "203.0.113.7:3389"}, {"hostname": "rdp.example.com"}],
            "mstsc.exe /v:rdp.example.com",
        ),
        ([{"hostname": "RDP.Example.com"}], "mstsc.exe /v:rdp.example.com"),
    ],
)
def test_only_a_plain_load_balancer_address_is_shown(
    ingress: list[dict[str, str]], shown: str
) -> None:
    cluster = FakeCluster()
    open_for(cluster, "akswin000001", NOW)
    name = rdp.service_name("akswin000001")
    cluster.objects[("Service", NAMESPACE, name)]["status"] = {"loadBalancer": {"ingress": ingress}}
    [session] = rdp.sessions(cluster, NAMESPACE)
    assert session.connect == shown
    expected = None if shown.startswith("(") else shown.split(":", 1)[1]
    assert rdp.wait_for_address(cluster, NAMESPACE, name, timedelta(0)) == expected
