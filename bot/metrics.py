"""Prometheus metrics, in a registry owned by one running bot (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from handlers.model import Diagnosis


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "winpod_commands",
            "Slash commands and CLI commands by subcommand and outcome",
            ["subcommand", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "winpod_ack_seconds",
            "Time from receiving a Slack request to acknowledging it",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3),
            registry=self.registry,
        )
        self.diagnosis_seconds = Histogram(
            "winpod_diagnosis_seconds",
            "Duration of one diagnosis",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.findings = Counter(
            "winpod_findings",
            "Findings reported, by check and severity",
            ["check", "severity"],
            registry=self.registry,
        )
        self.remediations = Counter(
            "winpod_remediations",
            "Remediations by id and outcome",
            ["remediation", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "winpod_errors",
            "Errors talking to the outside, by peer, kind and cluster (empty for Slack)",
            ["peer", "kind", "cluster"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "winpod_work_in_flight",
            "Background jobs running or queued",
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "winpod_sweep_seconds",
            "Duration of one post-reboot DNS sweep",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.sweep_nodes = Gauge(
            "winpod_sweep_nodes",
            "Windows nodes by state in the last sweep of each cluster",
            ["cluster", "state"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "winpod_leader",
            "1 while this replica holds the leader lease",
            registry=self.registry,
        )

    def error(self, peer: str, kind: str, cluster: str = "") -> None:
        """One failed call to `peer`: a cluster's API, exec, WinRM or HostProcess pods (with the
        cluster's name), or Slack (no cluster)."""
        self.errors.labels(peer, kind, cluster).inc()

    def observe_diagnosis(self, diagnosis: Diagnosis) -> None:
        self.diagnosis_seconds.labels(diagnosis.target.kind.lower()).observe(
            diagnosis.duration_ms / 1000
        )
        for finding in diagnosis.findings:
            self.findings.labels(finding.check, finding.severity).inc()

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
