"""Bad input, generated: `/winpod` text, names, config files and button payloads are each
answered with a clear message — never another exception, a 500, a traceback, or a call to the
cluster with an invalid name. Every property counts the cases it ran (README: the totals)."""

from __future__ import annotations

import json
import os
import string
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bot_process import RunningBot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_kit import (
    Lab,
    ack_text,
    click_body,
    post_oversized,
    request_mark,
    requests_since,
    tracebacks,
    until,
)
from sim_process import SEED, RunningSim

from bot.commands import UsageError, default_commands
from bot.serve import MAX_BODY_BYTES
from config.settings import ConfigError, Settings, load_settings
from handlers import names
from handlers.errors import BadInput

APPROVERS = ("U0APPROVER1", "U0APPROVER2")  # the simulator's winpod.yaml: never fuzzed users
CHANNEL = "C0FUZZ"
MAX_PROBLEM = 300  # a usage error is one short line, whatever was typed
IN_PROCESS = {"parse": 800, "names": 500, "pod refs": 500, "config": 250, "garbage": 250}
OVER_THE_WIRE = {"buttons": 50, "slash": 30, "signed payloads": 120}


def fuzz(examples: int) -> Any:
    """Deterministic: a fixed derandomised run and no example database between runs."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# --- an oracle for DNS-1123 names, written without regular expressions ------------------------

ALNUM = set(string.ascii_lowercase + string.digits)


def _dashed(part: str) -> bool:
    return bool(part) and part[0] in ALNUM and part[-1] in ALNUM and set(part) <= ALNUM | {"-"}


def is_label(value: str) -> bool:
    return len(value) <= 63 and _dashed(value)


def is_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_dashed(part) for part in value.split("."))


def is_pod_ref(value: str) -> bool:
    parts = value.strip().split("/")
    return len(parts) == 2 and is_label(parts[0]) and is_subdomain(parts[1])


# --- strategies -------------------------------------------------------------------------------

METACHARACTERS = [";", "|", "&", "&&", "$(", ")", "`", "'", '"', "\\", ">", "<", "\n", "\r"]
METACHARACTERS += ["\t", "$", "{", "}", "*", "?", "~", "#", "%", "!", "\x00", "\u2028", "..", "/"]
LOOKALIKES = ["а", "е", "ı", "Ｋ", "\u200b", "\ufeff", "ß"]  # Cyrillic a/e, dotless i, …
label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
subdomain = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda s: len(s) <= 253)


def _mutate(value: str, how: str, where: int) -> str:
    at = where % (len(value) + 1)
    return {
        "newline": value + "\n",
        "inner newline": value[:at] + "\n" + value[at:],
        "space": value[:at] + " " + value[at:],
        "upper": value[:at] + value[at:].upper(),
        "dash end": value + "-",
        "dot start": "." + value,
        "too long": value + "a" * 254,
        "lookalike": value[:at] + LOOKALIKES[where % len(LOOKALIKES)] + value[at:],
        "metacharacter": value[:at] + METACHARACTERS[where % len(METACHARACTERS)] + value[at:],
        "empty": "",
    }[how]


MUTATIONS = ["newline", "inner newline", "space", "upper", "dash end", "dot start", "too long"]
MUTATIONS += ["lookalike", "metacharacter", "empty"]
mutated = st.builds(_mutate, subdomain, st.sampled_from(MUTATIONS), st.integers(0, 300))
any_name = st.one_of(label, subdomain, mutated, st.text(max_size=80))

SUBCOMMANDS = [s.name for s in default_commands().all()]
word = st.one_of(
    st.sampled_from([*SUBCOMMANDS, "HELP", "Diagnose", "rm", "-rf", "open", "close", "list"]),
    st.sampled_from(["ttl=1h", "from=10.0.0.0/8", "ttl=", "=x", "20", "0", "201", "²", "١٢"]),
    any_name,
    st.builds(lambda ns, pod: f"{ns}/{pod}", any_name, any_name),
    st.lists(
        st.sampled_from([*METACHARACTERS, "web", "iis-0", "whoami", "calc.exe"]), max_size=6
    ).map("".join),
    st.text(alphabet="ab", min_size=100, max_size=600),
)
command_text = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda words, separator: separator.join(words),
        st.lists(word, max_size=6),
        st.sampled_from([" ", "  ", "\t", "\n", " \r\n "]),
    ),
)

SECTIONS: dict[str, list[str]] = {
    name: list(getattr(field.annotation, "model_fields", {}))
    for name, field in Settings.model_fields.items()
}
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=24),
    st.sampled_from(["env", "15m", "0s", "-1h", "1e400", "99999999999d", "https://x/", "ntlm"]),
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
odd_key = st.one_of(
    st.sampled_from(
        ["_env_prefix", "_secrets_dir", "_cli_parse_args", "_case_sensitive", "_env_file"]
    ),
    st.text(max_size=12),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
)


def _section(name: str, fields: list[str]) -> Any:
    if not fields:  # a plain setting such as dry_run
        return st.tuples(st.just(name), value)
    body = st.dictionaries(st.sampled_from(fields) | st.text(max_size=12), value, max_size=4)
    return st.tuples(st.just(name), body | value)


config_mapping = st.lists(
    st.one_of(*(_section(n, f) for n, f in SECTIONS.items()), st.tuples(odd_key, value)),
    max_size=5,
).map(dict)
YAML_PIECES = [":", "- ", " ", "\n", "[", "]", "{", "}", "&a ", "*a", "'", '"', "slack", "port"]
YAML_PIECES += ["!!python/object:os.system ", "%YAML 1.1\n", "---\n", "...", "\t", "#", "|", ">"]
YAML_PIECES += ["?", "1e400", "!!binary ", "!!set ", "<<: ", "~", "\x00", "\ufeff", "\x85"]
yamlish = st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join)
garbage = st.one_of(
    st.binary(max_size=300), st.text(max_size=300).map(str.encode), yamlish.map(str.encode)
)


# --- 1. /winpod text through the parser ---------------------------------------------------------


def test_any_winpod_text_parses_or_is_a_short_clear_usage_error() -> None:
    table = default_commands()
    forms = {"/winpod help"} | {f"/winpod {s.usage}" for s in table.all()}
    cases: list[str] = []

    @fuzz(IN_PROCESS["parse"])
    @given(command_text)
    def prop(text: str) -> None:
        cases.append(text)
        try:
            subcommand, args = table.parse(text)
        except UsageError as exc:
            assert 0 < len(exc.problem) <= MAX_PROBLEM, exc.problem
            assert exc.problem.isprintable(), exc.problem  # one line, nothing invisible
            assert exc.right_form in forms
            return
        assert subcommand.name in SUBCOMMANDS
        if "pod" in args:
            assert is_pod_ref(args["pod"]), args
        if "node" in args:
            assert is_subdomain(args["node"].strip()), args
        if "last" in args:
            assert args["last"].isascii() and 1 <= int(args["last"]) <= 200

    prop()
    assert len(cases) == IN_PROCESS["parse"]


# --- 2. names -----------------------------------------------------------------------------------


def _refused_clearly(call: Callable[[], object]) -> str | None:
    """None when accepted; the message when refused with BadInput (anything else escapes)."""
    try:
        call()
    except BadInput as exc:
        message = str(exc)
        assert len(message) <= MAX_PROBLEM and message.isprintable(), message
        return message
    return None


def test_names_are_accepted_exactly_when_they_are_dns_names() -> None:
    cases: list[str] = []

    @fuzz(IN_PROCESS["names"])
    @given(any_name)
    def prop(name: str) -> None:
        cases.append(name)
        refused = _refused_clearly(lambda: names.namespace_name(name))
        assert (refused is None) == is_label(name), (name, refused)
        if refused is None:
            assert names.namespace_name(name) == name
        else:
            assert "is not a valid namespace" in refused
        refused = _refused_clearly(lambda: names.node_name(name))
        assert (refused is None) == is_subdomain(name.strip()), (name, refused)
        if refused is None:
            assert names.node_name(name) == name.strip()
        else:
            assert "is not a valid node name" in refused

    prop()
    assert len(cases) == IN_PROCESS["names"]


@fuzz(200)
@given(label, subdomain)
def test_every_valid_name_is_accepted_unchanged(namespace: str, pod: str) -> None:
    assert names.namespace_name(namespace) == namespace
    assert names.node_name(pod) == pod
    assert names.pod_ref(f"{namespace}/{pod}") == (namespace, pod)


def test_pod_references_are_accepted_exactly_when_both_names_are_valid() -> None:
    cases: list[str] = []

    @fuzz(IN_PROCESS["pod refs"])
    @given(st.one_of(st.builds(lambda a, b: f"{a}/{b}", any_name, any_name), any_name))
    def prop(reference: str) -> None:
        cases.append(reference)
        refused = _refused_clearly(lambda: names.pod_ref(reference))
        assert (refused is None) == is_pod_ref(reference), (reference, refused)

    prop()
    assert len(cases) == IN_PROCESS["pod refs"]


# --- 3. config files ----------------------------------------------------------------------------


@pytest.fixture
def no_winpod_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file speaks: environment overrides would mask what it says."""
    for key in list(os.environ):
        if key.startswith("WINPOD_"):
            monkeypatch.delenv(key)


@pytest.mark.usefixtures("no_winpod_env")
def test_any_config_mapping_loads_or_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "winpod.yaml"
    cases: list[dict[Any, Any]] = []

    @fuzz(IN_PROCESS["config"])
    @given(config_mapping)
    def prop(data: dict[Any, Any]) -> None:
        cases.append(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        try:
            load_settings(path)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            assert lines[0] == f"invalid configuration ({path}):", lines
            assert len(lines) > 1
            named = [line for line in lines[1:] if line.startswith("  ") and ": " in line]
            assert len(named) == len(lines) - 1, lines
            shown = [str(k) if str(k).isprintable() else repr(str(k)) for k in data]
            assert any(line[2:].startswith(key) for key in shown for line in named), lines

    prop()
    assert len(cases) == IN_PROCESS["config"]


@pytest.mark.usefixtures("no_winpod_env")
def test_a_garbage_config_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "winpod.yaml"
    cases: list[bytes] = []

    @fuzz(IN_PROCESS["garbage"])
    @given(garbage)
    def prop(content: bytes) -> None:
        cases.append(content)
        path.write_bytes(content)
        try:
            load_settings(path)
        except ConfigError as exc:
            assert str(path) in str(exc)

    prop()
    assert len(cases) == IN_PROCESS["garbage"]


@pytest.mark.usefixtures("no_winpod_env")
@pytest.mark.parametrize("depth", [100, 5000])
def test_deeply_nested_yaml_is_a_config_error_not_a_recursion_error(
    tmp_path: Path, depth: int
) -> None:
    path = tmp_path / "winpod.yaml"
    path.write_text("slack: " + "[" * depth + "]" * depth)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert str(path) in str(refused.value)


# --- 4. over the wire: button payloads and slash commands against `winpod serve` ---------------


@pytest.fixture(scope="module")
def sim(lab: Lab) -> RunningSim:
    return lab.sim(SEED)


@pytest.fixture(scope="module")
def bot(lab: Lab, sim: RunningSim) -> RunningBot:
    """One replica with no timed work after its first sweep: from then on, any request to the
    cluster is one that a fuzzed click or command caused."""
    return lab.quiet_bot(sim, "fuzz")


@pytest.fixture(scope="module")
def offers(bot: RunningBot) -> list[str]:
    """Real offer ids (from a real diagnosis), so fuzzed clicks also hit stored offers."""
    assert bot.command("diagnose shop/api-0", channel=CHANNEL).status == 200
    message = until(
        lambda: next((m for m in bot.messages(CHANNEL) if m.get("edited")), None),
        60,
        "the diagnosis",
    )
    return [
        str(e["value"])
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if str(e.get("action_id", "")).startswith("remediate:")
    ]


@pytest.fixture
def quiet_cluster(sim: RunningSim, bot: RunningBot, offers: list[str]) -> Iterator[None]:
    """Nothing that the test sends may reach the Kubernetes API or pod exec."""
    mark = request_mark(sim)
    yield
    reached = requests_since(sim, mark, "kube") + requests_since(sim, mark, "exec")
    assert reached == [], [(r["method"], r["path"]) for r in reached]
    assert not tracebacks(bot.log)
    assert bot.process.poll() is None


def ephemeral_attempts(sim: RunningSim) -> int:
    calls = sim.control("GET", f"/sim/v1/slack/calls?method=chat.postEphemeral&channel={CHANNEL}")
    return len(calls["calls"])


@pytest.mark.wire
@pytest.mark.usefixtures("quiet_cluster")
def test_fuzzed_button_payloads_get_200_or_4xx_and_a_reply_never_a_500(
    bot: RunningBot, sim: RunningSim, offers: list[str]
) -> None:
    prefixes = ("remediate:", "approve:", "reject:")
    action_id = st.one_of(
        st.builds(lambda p, s: p + s, st.sampled_from(prefixes), st.text(max_size=40)),
        st.text(max_size=60),
    )
    value = st.one_of(st.sampled_from(offers), st.text(max_size=80), st.just(""))
    user = st.one_of(
        st.from_regex(r"U[A-Z0-9]{2,12}", fullmatch=True), st.text(min_size=1, max_size=20)
    ).filter(lambda u: u not in APPROVERS)
    before = ephemeral_attempts(sim)
    handled: list[str] = []
    statuses: list[int] = []

    @fuzz(OVER_THE_WIRE["buttons"])
    @given(action_id, value, user)
    def prop(action: str, offer: str, clicker: str) -> None:
        response = bot.post(click_body(action, offer, user=clicker, channel=CHANNEL))
        statuses.append(response.status)
        assert response.status == 200 or 400 <= response.status < 500, response
        if action.startswith(prefixes):
            handled.append(action)

    prop()
    assert len(statuses) == OVER_THE_WIRE["buttons"]
    assert len(handled) >= 10  # enough clicks reached the approval flow itself
    # Each click the flow handled is answered: an ephemeral "why not" to the clicker.
    until(
        lambda: ephemeral_attempts(sim) - before >= len(handled),
        60,
        f"{len(handled)} ephemeral answers",
    )
    assert bot.messages(CHANNEL)[1:] == []  # nothing new in the channel: only the diagnosis


SHELL_TEXTS = [
    "diagnose web/iis-0; rm -rf /",
    "diagnose web/$(whoami)",
    "diagnose `whoami`/iis-0",
    "diagnose web/iis-0 | calc.exe",
    "diagnose web/iis-0 && shutdown /r",
    "diagnose 'web/iis-0",
    'diagnose "web/iis-0',
    "diagnose 'web\n/iis-0'",
    "diagnose web/iis-0\nrm -rf /",
    "node akswin000001;calc.exe",
    "node 'akswin000001 & calc'",
    "node $(Invoke-WebRequest evil)",
    "node `Stop-Computer`",
    "node 'akswin000001\nStop-Computer'",
    "explain dns-after-reboot;whoami",
    "rdp open akswin000001;rm ttl=1h",
    "audit 5 | tee",
    "diagnose ${IFS}web/iis-0",
]


@pytest.mark.wire
@pytest.mark.usefixtures("quiet_cluster")
@pytest.mark.parametrize("text", SHELL_TEXTS, ids=[repr(t)[:40] for t in SHELL_TEXTS])
def test_shell_and_powershell_metacharacters_get_an_ephemeral_usage_error(
    bot: RunningBot, text: str
) -> None:
    response = bot.command(text, channel=CHANNEL)
    assert response.status == 200
    answer = ack_text(response)
    assert answer.startswith(":warning: ")
    assert "`/winpod " in answer  # the form that would have worked


@pytest.mark.wire
@pytest.mark.usefixtures("quiet_cluster")
def test_fuzzed_slash_commands_that_do_not_parse_are_answered_in_place(
    bot: RunningBot,
) -> None:
    table = default_commands()

    def refused(text: str) -> bool:
        try:
            table.parse(text)
        except UsageError:
            return True
        return False

    sent: list[str] = []

    @fuzz(OVER_THE_WIRE["slash"])
    @given(command_text.filter(refused))
    def prop(text: str) -> None:
        sent.append(text)
        response = bot.command(text, channel=CHANNEL)
        assert response.status == 200, response
        assert ack_text(response).startswith(":warning: ")

    prop()
    assert len(sent) == OVER_THE_WIRE["slash"]


# --- 5. signed payloads of Slack's shapes with wrong types, huge and nested values ------------

# Placeholders written out in the body text: JSON nested this deep (json.dumps recurses), and
# strings this long (so that hypothesis never has to show a megabyte of example)
DEEP, HUGE = "__DEEP__", "__HUGE__"
HUGE_SIZES = (5_000, 900_000, 1_200_000)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
hostile = st.one_of(
    st.recursive(
        scalar,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    st.sampled_from(HUGE_SIZES).map(lambda size: f"{HUGE}{size}"),  # up to past 1 MiB
    st.sampled_from([40, 900, 20_000]).map(lambda depth: f"{DEEP}{depth}"),
)
# (kind, the payload as Slack sends it, the paths of its fields a case may replace)
SHAPES: dict[str, tuple[dict[str, Any], list[tuple[str, ...]]]] = {
    "block_actions": (
        json.loads(
            urllib.parse.parse_qs(click_body("remediate:x", "1", user="U0FUZZ", channel=CHANNEL))[
                "payload"
            ][0]
        ),
        [
            ("type",),
            ("user",),
            ("user", "id"),
            ("team",),
            ("api_app_id",),
            ("container",),
            ("container", "channel_id"),
            ("container", "message_ts"),
            ("channel",),
            ("channel", "id"),
            ("message",),
            ("message", "ts"),
            ("message", "blocks"),
            ("actions",),
            ("actions", 0),
            ("actions", 0, "action_id"),
            ("actions", 0, "value"),
            ("state",),
        ],
    ),
    "view_submission": (
        {
            "type": "view_submission",
            "user": {"id": "U0FUZZ"},
            "team": {"id": "T0WINPODSIM"},
            "api_app_id": "A0WINPOD",
            "view": {"type": "modal", "callback_id": "x", "state": {"values": {}}},
        },
        [
            ("type",),
            ("user",),
            ("view",),
            ("view", "type"),
            ("view", "callback_id"),
            ("view", "state"),
            ("view", "state", "values"),
        ],
    ),
    "slash_command": (
        {
            "command": "/winpod",
            "text": "help",
            "channel_id": CHANNEL,
            "user_id": "U0FUZZ",
            "team_id": "T0WINPODSIM",
            "api_app_id": "A0WINPOD",
            "trigger_id": "1.2.3",
        },
        [("command",), ("text",), ("channel_id",), ("user_id",), ("team_id",), ("api_app_id",)],
    ),
    "event_callback": (
        {
            "type": "event_callback",
            "team_id": "T0WINPODSIM",
            "api_app_id": "A0WINPOD",
            "event": {"type": "app_mention", "user": "U0FUZZ", "text": "hi", "channel": CHANNEL},
        },
        [
            ("type",),
            ("team_id",),
            ("event",),
            ("event", "type"),
            ("event", "text"),
            ("event", "user"),
        ],
    ),
}


def _replaced(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`payload` with the field at `path` set to `value` (a missing parent becomes `value`)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(payload, dict):
        return {**payload, head: _replaced(payload.get(head), rest, value)}
    if isinstance(payload, list) and isinstance(head, int) and head < len(payload):
        return [_replaced(p, rest, value) if i == head else p for i, p in enumerate(payload)]
    return value


def _written_out(text: str) -> str:
    """Write out every DEEP placeholder as JSON nested that deep, every HUGE one as a string
    that long."""
    for depth in (40, 900, 20_000):
        text = text.replace(json.dumps(f"{DEEP}{depth}"), '{"a": [' * depth + "1" + "]}" * depth)
    for size in HUGE_SIZES:
        text = text.replace(f"{HUGE}{size}", "a" * size)
    return text


def _body(kind: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The request body and content type Slack would use for `kind`."""
    if kind == "event_callback":
        return _written_out(json.dumps(payload)), "application/json"
    if kind == "slash_command":
        # a form holds strings: a wrong type arrives as its text, a list as repeated fields
        fields = [
            (key, _written_out(item if isinstance(item, str) else json.dumps(item)))
            for key, value in payload.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        return urllib.parse.urlencode(fields), "application/x-www-form-urlencoded"
    form = urllib.parse.urlencode({"payload": _written_out(json.dumps(payload))})
    return form, "application/x-www-form-urlencoded"


@pytest.mark.wire
@pytest.mark.usefixtures("quiet_cluster")
def test_fuzzed_signed_payloads_of_every_shape_never_get_a_500(bot: RunningBot) -> None:
    kinds: list[str] = []
    statuses: list[int] = []
    shape = st.sampled_from(sorted(SHAPES)).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            st.lists(st.tuples(st.sampled_from(SHAPES[kind][1]), hostile), min_size=1, max_size=3),
        )
    )

    @fuzz(OVER_THE_WIRE["signed payloads"])
    @given(shape)
    def prop(case: tuple[str, list[tuple[tuple[Any, ...], Any]]]) -> None:
        kind, replacements = case
        payload = SHAPES[kind][0]
        for path, value in replacements:
            payload = _replaced(payload, path, value)
        body, content_type = _body(kind, payload)
        started = time.monotonic()
        if len(body.encode()) > MAX_BODY_BYTES:
            status = post_oversized(bot, body, content_type)
            assert status == 413, (kind, replacements, status)
        else:
            response = bot.post(body, content_type=content_type)
            status = response.status
            assert status < 500, (kind, replacements, status, response.body[:200])
        kinds.append(kind)
        statuses.append(status)
        assert time.monotonic() - started < 10, kind

    prop()
    assert len(statuses) == OVER_THE_WIRE["signed payloads"]
    assert set(kinds) == set(SHAPES)  # every shape was tried
    assert 413 in statuses and 400 in statuses  # huge and malformed cases were among them
    assert bot.get("/healthz")[0] == 200
