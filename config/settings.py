"""Typed settings for winpod, validated once at start-up from YAML plus environment overrides.

Precedence, highest first: `WINPOD_<SECTION>__<KEY>` environment variables, the YAML file
(`--config FILE`, else `$WINPOD_CONFIG`), then the defaults below. Secrets are `SecretStr` and
should come from the environment (or a file the operator mounts), never from committed YAML.
"""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.addresses import plain_host, shown

ENV_PREFIX = "WINPOD_"
CONFIG_ENV_VAR = "WINPOD_CONFIG"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_LONGEST_S = 1e9  # about 31 years: beyond any interval, and now + it is still a valid datetime


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class UnknownCluster(ConfigError):
    """A command named a cluster winpod does not serve (a usage error: exit 2)."""

    def __init__(self, name: str, known: list[str]) -> None:
        shown_name = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
        super().__init__(f"unknown cluster {shown_name!r}; the clusters are: {', '.join(known)}")
        self.known = known


def parse_duration(value: Any) -> timedelta:
    """Accept `90`, `90s`, `15m`, `4h`, `1d`, `250ms` or a timedelta; plain numbers are seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 4h")
    if isinstance(value, int | float):
        seconds = float(min(value, _LONGEST_S))  # float() of a huge int would overflow
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m or 4h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    # past it, timedelta or `now + duration` raises OverflowError, which pydantic does not catch
    if seconds >= _LONGEST_S:
        raise ValueError("longer than any duration winpod can use")
    return timedelta(seconds=seconds)


def _env_placeholder_to_none(value: Any) -> Any:
    """`bot_token: env` in YAML documents that the value comes from the environment."""
    if isinstance(value, str) and value.strip().lower() in {"env", "env-or-null", ""}:
        return None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Secret = Annotated[SecretStr | None, BeforeValidator(_env_placeholder_to_none)]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Group):
    bot_token: Secret = Field(None, description="xoxb- token; from WINPOD_SLACK__BOT_TOKEN")
    signing_secret: Secret = Field(None, description="verifies every request Slack sends")
    app_token: Secret = Field(None, description="xapp- token; when set, Socket Mode is used")
    api_url: str = Field("https://slack.com/api/", description="base of the Slack Web API")
    alert_channel: str | None = Field(None, description="channel id for sweep alerts")
    allowed_channels: list[str] = Field(
        default_factory=list,
        description="channel ids where /winpod and its buttons work; empty: all",
    )
    team_id: str | None = Field(
        None, description="workspace id (T…); when set, requests from any other are refused"
    )
    api_app_id: str | None = Field(
        None, description="Slack app id (A…); when set, requests for any other app are refused"
    )
    timeout: Duration = Field(timedelta(seconds=15), description="one Web API call's limit")
    rate_limit_retries: int = Field(
        5, ge=0, le=20, description="retries of a 429, each after Slack's Retry-After"
    )
    error_retries: int = Field(
        2, ge=0, le=10, description="retries of a 5xx or a broken connection (backing off)"
    )

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"


class KubernetesSettings(_Group):
    context: str | None = Field(None, description="kubeconfig context; null: the current one")
    namespace: str = Field("winpod", description="the bot's own namespace (Leases, RDP, keeper)")
    kubeconfig: str | None = Field(
        None, description="kubeconfig path; null: in-cluster, else $KUBECONFIG or ~/.kube/config"
    )
    leader_election: bool = Field(
        True, description="elect a leader on a Lease; false only for a single replica"
    )


class WinRMSettings(_Group):
    scheme: Literal["https", "http"] = Field("https", description="https unless you must")
    port: int = Field(5986, ge=1, le=65535, description="5986 is WinRM over HTTPS")
    transport: Literal["ntlm", "basic", "kerberos", "credssp"] = Field("ntlm")
    username: Secret = Field(None, description="local or domain account on the nodes")
    password: Secret = Field(None)
    ca_bundle: str | None = Field(None, description="PEM file trusted for the nodes' certificates")
    verify: bool = Field(True, description="validate the node's certificate")
    allow_unverified: bool = Field(
        False,
        description="let verify: false stand while WinRM credentials are set (anyone on the "
        "path could take them); without it winpod refuses to start",
    )
    address_type: Literal["InternalIP", "ExternalIP", "Hostname", "InternalDNS"] = Field(
        "InternalIP", description="which Node address to connect to"
    )
    operation_timeout_s: int = Field(20, ge=1, description="WS-Management OperationTimeout")
    read_timeout_s: int = Field(30, ge=2, description="HTTP read timeout; above the operation's")

    @model_validator(mode="after")
    def _verified_when_credentials_are_sent(self) -> WinRMSettings:
        if not self.verify and not self.allow_unverified and self.username is not None:
            raise ValueError(
                "verify is false while WinRM credentials are set: they would go to whoever "
                "answers; set winrm.ca_bundle to the CA of the nodes' certificates, or "
                "winrm.allow_unverified: true if you accept that"
            )
        return self

    @field_validator("read_timeout_s")
    @classmethod
    def _read_after_operation(cls, value: int, info: Any) -> int:
        operation = info.data.get("operation_timeout_s", 20)
        if value <= operation:
            raise ValueError(f"must be greater than operation_timeout_s ({operation})")
        return value


class HyperVSettings(_Group):
    host_annotation: str = Field(
        "winpod.io/hyperv-host", description="node annotation naming the node VM's Hyper-V host"
    )
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="allow-list: Hyper-V host name -> its address; when set, only these hosts "
        "receive scripts, whatever a node annotation names",
    )

    @field_validator("hosts")
    @classmethod
    def _plain_hosts(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            if plain_host(name) is None or plain_host(address) is None:
                raise ValueError(
                    f"{shown(name)}: {shown(address)} is not a host name and a plain host name "
                    "or IP address (no port, path or scheme)"
                )
        return {name.lower(): str(plain_host(address)) for name, address in value.items()}


class NodeSettings(_Group):
    """How winpod reaches a Windows node's PowerShell (SPEC §9)."""

    transport: Literal["auto", "hostprocess", "winrm"] = Field(
        "auto",
        description="auto: WinRM when winrm.username is set, else a HostProcess pod (managed "
        "clusters rarely let a pod reach a node's WinRM port)",
    )
    hostprocess_image: str = Field(
        "mcr.microsoft.com/oss/kubernetes/windows-host-process-containers-base-image:v1.0.0",
        min_length=1,
        description="image of the HostProcess pods that run node scripts; it must be pullable "
        "on every Windows node (a HostProcess container uses the host's own file system)",
    )
    script_timeout: Duration = Field(
        timedelta(seconds=120),
        description="how long one node script may take in a HostProcess pod, from creating "
        "the pod to reading its log (a script that restarts kubelet waits for it too); "
        "leftover winpod pods older than this are deleted",
    )

    @field_validator("script_timeout")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s (a HostProcess pod alone takes seconds to start)")
        return value


class ApprovalSettings(_Group):
    approvers: list[str] = Field(
        default_factory=list, description="Slack user ids (U…) or user-group ids (S…)"
    )
    two_person: list[Literal["low", "medium", "high"]] = Field(
        default=["high"], description="risks that need two distinct approvers"
    )
    expire_after: Duration = Field(
        timedelta(minutes=15), description="a request not fully approved by then expires"
    )
    lock_ttl: Duration = Field(
        timedelta(minutes=15),
        description="how long one remediation holds its target before the lock frees itself "
        "(renewed while it runs; frees a target whose replica died)",
    )


class WorkSettings(_Group):
    workers: int = Field(
        16,
        ge=1,
        le=256,
        description="diagnoses and remediations running at once (each mostly waits on the network)",
    )
    queue_limit: int = Field(
        200, ge=0, le=10_000, description="jobs waiting beyond that; more are refused as busy"
    )
    check_timeout: Duration = Field(
        timedelta(seconds=45), description="one check's limit inside a diagnosis"
    )
    restart_timeout: Duration = Field(
        timedelta(minutes=2),
        description="how long a remediation waits for a pod it restarted to be Ready again",
    )


class SweepSettings(_Group):
    interval: Duration = Field(timedelta(minutes=5), description="time between sweeps")
    concurrency: int = Field(32, ge=1, le=1024, description="DNS probes running at once")
    probe_timeout: Duration = Field(timedelta(seconds=10), description="one probe's limit")


class RDPSettings(_Group):
    source_ranges: list[str] = Field(default_factory=list, description="CIDRs allowed to connect")
    max_addresses: int = Field(
        65_536,
        ge=1,
        le=2**128,
        description="most addresses a request's ranges may reach together (a /16) unless "
        "they are listed in source_ranges",
    )
    default_ttl: Duration = Field(timedelta(minutes=30))
    min_ttl: Duration = Field(
        timedelta(minutes=1),
        description="shortest TTL a request may ask for: shorter ones end before the load "
        "balancer answers or the approvers click",
    )
    max_ttl: Duration = Field(timedelta(hours=4))
    lb_timeout: Duration = Field(
        timedelta(minutes=3), description="how long to wait for the load balancer's address"
    )


class StoreSettings(_Group):
    url: str = Field("sqlite:///./winpod.db", description="SQLAlchemy URL; PostgreSQL for HA")


# Sections a `clusters:` entry may override for its cluster (SPEC §12): those that hold node
# credentials and how nodes are reached. Any of them that Settings defines is honoured.
CLUSTER_SECTIONS = ("winrm", "node", "hyperv")
# The name of the one cluster of a config without `clusters:` (its `kubernetes` section).
SINGLE_CLUSTER = "default"
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


class ClusterSettings(BaseModel):
    """One cluster winpod serves; sections left out are the top-level ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="how people name it: `cluster=NAME`, `--cluster NAME`")
    kubeconfig: str | None = Field(
        None, description="kubeconfig path; null: kubernetes.kubeconfig (else $KUBECONFIG)"
    )
    context: str | None = Field(None, description="kubeconfig context; null: the current one")
    alert_channel: str | None = Field(
        None, description="channel id for this cluster's sweep alerts; null: slack.alert_channel"
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="the cluster's own winrm / node / hyperv sections (written at entry level); "
        "raw until merged by Settings.for_cluster, so kept out of repr and dumps (secrets)",
        repr=False,
        exclude=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            sections = {k: data.pop(k) for k in CLUSTER_SECTIONS if k in data}
            for name, section in sections.items():
                if not isinstance(section, dict):
                    raise ValueError(f"{name} must be a mapping of keys, like the top-level one")
            if sections:
                data["overrides"] = sections
        return data

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _CLUSTER_NAME.match(value):
            raise ValueError(
                "a cluster name is 1 to 40 lowercase letters, digits and '-' (like prod-eu)"
            )
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    slack: SlackSettings = SlackSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    winrm: WinRMSettings = WinRMSettings()
    hyperv: HyperVSettings = HyperVSettings()
    node: NodeSettings = NodeSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    work: WorkSettings = WorkSettings()
    sweep: SweepSettings = SweepSettings()
    rdp: RDPSettings = RDPSettings()
    store: StoreSettings = StoreSettings()
    clusters: list[ClusterSettings] = Field(
        default_factory=list,
        description="the clusters winpod serves; empty: the one `kubernetes` section, "
        f"named {SINGLE_CLUSTER!r}",
    )
    default_cluster: str | None = Field(
        None, description="the cluster a command without cluster=NAME means; null: the first"
    )
    dry_run: bool = Field(False, description="show what would run; run nothing")
    locale: Literal["en", "zh-CN"] = Field(
        "en", description="the language of every message, reply and CLI text (SPEC §13)"
    )
    housekeeping_interval: Duration = Field(
        timedelta(seconds=30),
        description="how often the leader expires pending actions and closes expired RDP; "
        "also the longest an expired RDP session opened elsewhere can stay open",
    )

    _cluster: str | None = PrivateAttr(None)  # set by for_cluster
    _top_level: Settings | None = PrivateAttr(None)  # what for_cluster merged over

    @property
    def cluster(self) -> str:
        """The cluster this view of the settings is for (`for_cluster`), else the default."""
        return self._cluster or self.resolve_cluster(None)

    @field_validator("clusters")
    @classmethod
    def _clusters_valid(cls, value: list[ClusterSettings], info: Any) -> list[ClusterSettings]:
        """Names listed once; each cluster's own sections valid once merged over the top-level
        ones (checked at start-up, not when a command first reaches that cluster)."""
        names = [c.name for c in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        for cluster in value:
            for section, values in cluster.overrides.items():
                if section not in cls.model_fields:
                    raise ValueError(f"{cluster.name}: this winpod has no {section} section")
                base = info.data.get(section)
                if not isinstance(base, BaseModel):
                    continue  # invalid itself (reported on its own) or declared later
                try:
                    type(base).model_validate({**base.model_dump(), **values})
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(_key(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                    )
                    raise ValueError(f"{cluster.name}.{section}: {problems}") from None
        return value

    @field_validator("default_cluster")
    @classmethod
    def _default_listed(cls, value: str | None, info: Any) -> str | None:
        clusters = info.data.get("clusters")
        if value is not None and clusters is not None:
            names = [c.name for c in clusters] or [SINGLE_CLUSTER]
            if value not in names:
                raise ValueError(f"{value!r} is not one of the clusters ({', '.join(names)})")
        return value

    @property
    def cluster_names(self) -> list[str]:
        """The clusters winpod serves, in the order listed; the first is the home cluster."""
        return [c.name for c in self.clusters] or [SINGLE_CLUSTER]

    @property
    def home_cluster(self) -> str:
        """Where the leader's Lease lives: the cluster winpod runs in (the entry with neither
        kubeconfig nor context, which in a pod is the in-cluster config), else the first."""
        if self.kubernetes.kubeconfig is None:
            for entry in self.clusters:
                if entry.kubeconfig is None and entry.context is None:
                    return entry.name
        return self.cluster_names[0]

    @property
    def many_clusters(self) -> bool:
        return bool(self.clusters)

    def resolve_cluster(self, name: str | None) -> str:
        """The cluster a command means: `name`, else default_cluster, else the first; an unknown
        name is a ConfigError that lists the clusters."""
        if name is None:
            return self.default_cluster or self.cluster_names[0]
        if name not in self.cluster_names:
            raise UnknownCluster(name, self.cluster_names)
        return name

    def alert_channel_of(self, cluster: str) -> str | None:
        for entry in self.clusters:
            if entry.name == cluster and entry.alert_channel:
                return entry.alert_channel
        return self.slack.alert_channel

    def for_cluster(self, name: str) -> Settings:
        """These settings as one cluster sees them: its kubeconfig and context in
        `kubernetes`, and its own sections (winrm, node, hyperv) over the top-level ones."""
        self.resolve_cluster(name)
        top = self._top_level or self  # one cluster's view never lends its sections to another
        entry = next((c for c in self.clusters if c.name == name), None)
        if entry is None:  # the single cluster of a config without `clusters:`
            return top
        update: dict[str, Any] = {}
        kube: dict[str, Any] = {"context": entry.context}
        if entry.kubeconfig is not None:
            kube["kubeconfig"] = entry.kubeconfig
        update["kubernetes"] = top.kubernetes.model_copy(update=kube)
        for section, values in entry.overrides.items():
            base: BaseModel = getattr(top, section)
            merged = {**base.model_dump(), **values}
            try:
                update[section] = type(base).model_validate(merged)
            except ValidationError as exc:
                raise ConfigError(_describe(exc, f"clusters.{name}.{section}")) from None
        view = top.model_copy(update=update)
        view._cluster, view._top_level = name, top
        return view

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings, file_secret_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    except RecursionError:  # PyYAML's parser recurses once per level of nesting
        raise ConfigError(f"config file {path} nests too deeply to be a configuration") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections (slack:, winrm:, …)")
    return data


def _key(part: object) -> str:
    """A key as written, unless it holds line breaks or other invisible characters."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in error.errors():
        key = ".".join(_key(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (see config/winpod.example.yaml for the keys)"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from `path`, else `$WINPOD_CONFIG`, else defaults; env overrides win."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV_VAR) or None
    data = _read_yaml(Path(chosen)) if chosen else {}
    source = str(chosen) if chosen else "defaults and environment"
    # Keys become keyword arguments: a non-string one is a TypeError, and `_env_prefix`,
    # `_cli_parse_args`, … would be taken as pydantic-settings options instead of sections.
    strange = [key for key in data if not isinstance(key, str) or key.startswith("_")]
    if strange:
        lines = [
            f"  {_key(key)}: unknown key (see config/winpod.example.yaml for the keys)"
            for key in strange
        ]
        raise ConfigError("\n".join([f"invalid configuration ({source}):", *lines]))
    _cluster_secrets_from_env(data)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _cluster_secrets_from_env(data: dict[str, Any]) -> None:
    """A cluster's own node credentials come from the environment like the top-level ones:
    `WINPOD_CLUSTER_<NAME>__<SECTION>__<KEY>` (NAME upper-cased, `-` as `_`), e.g.
    `WINPOD_CLUSTER_PROD_EU__WINRM__PASSWORD`; they win over that cluster's YAML."""
    clusters = data.get("clusters")
    if not isinstance(clusters, list):
        return
    for entry in clusters:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        prefix = f"{ENV_PREFIX}CLUSTER_{entry['name'].upper().replace('-', '_')}__"
        for variable, value in os.environ.items():
            if not variable.upper().startswith(prefix):
                continue
            parts = variable[len(prefix) :].lower().split("__")
            if len(parts) != 2 or parts[0] not in CLUSTER_SECTIONS:
                raise ConfigError(
                    f"{variable}: expected {prefix}<SECTION>__<KEY> with SECTION one of "
                    f"{', '.join(s.upper() for s in CLUSTER_SECTIONS)}"
                )
            section = entry.get(parts[0])
            section = dict(section) if isinstance(section, dict) else {}
            section[parts[1]] = value
            entry[parts[0]] = section


def format_duration(value: timedelta) -> str:
    """`4h`, `15m`, `1h30m`, `45s`: the way durations are written in the config."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
