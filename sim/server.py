"""Starts every simulated server on loopback, writes the files a client needs, prints `sim ready`.

Servers: the Kubernetes API (HTTPS, bearer token, pod exec), one WinRM endpoint per Windows host
on that host's own 127.0.x.y address (HTTPS), the Slack Web API and the control API (HTTP).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import secrets
import signal
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml
from aiohttp import web

from sim import control, hostprocess, kube_api, kube_proxy, slack_api, winrm
from sim.faults import Faults
from sim.scenario import BOT_NAMESPACE, ScenarioError, load_scenario
from sim.slack_api import SlackState
from sim.world import World

LOOPBACK = "127.0.0.1"


class SimStartError(Exception):
    """The simulator cannot start (port in use, bad scenario): exit code 2."""


@dataclass
class Credentials:
    """What clients present: a bearer token for the API, a WinRM account, Slack secrets."""

    kube_token: str = field(default_factory=lambda: "sim-" + secrets.token_urlsafe(24))
    winrm_username: str = "winpod"
    winrm_password: str = field(default_factory=lambda: "Pw-" + secrets.token_urlsafe(16))
    slack_bot_token: str = field(default_factory=lambda: "xoxb-sim-" + secrets.token_hex(12))
    slack_signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    slack_app_token: str = field(default_factory=lambda: "xapp-1-sim-" + secrets.token_hex(12))


@dataclass
class Ports:
    kube: int = 0
    control: int = 0
    slack: int = 0
    winrm: int = 0


@dataclass
class Simulator:
    world: World
    out_dir: Path
    credentials: Credentials = field(default_factory=Credentials)
    faults: Faults = field(default_factory=Faults)
    slack: SlackState = field(default_factory=SlackState)
    ports: Ports = field(default_factory=Ports)
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def start(self, requested: Ports | None = None) -> None:
        requested = requested or Ports()
        ca = trustme.CA(organization_name="winpod simulator")
        api_cert = ca.issue_cert(LOOPBACK, "localhost")
        host_addresses = sorted({h.address for h in self.world.hosts.values()})
        winrm_cert = ca.issue_cert(*(host_addresses or [LOOPBACK]), "localhost")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(str(self.out_dir / "ca.pem"))
        api_ssl = _server_context(api_cert)
        winrm_ssl = _server_context(winrm_cert)

        kube_proxy.install(self.world)
        hostprocess.install(self.world)
        kube_app = kube_api.build_app(self.world, self.faults, self.credentials.kube_token)
        self.ports.kube = await self._serve(kube_app, [LOOPBACK], requested.kube, api_ssl)
        slack_app = slack_api.build_app(self.slack, self.faults, self.credentials)
        self.ports.slack = await self._serve(slack_app, [LOOPBACK], requested.slack, None)
        winrm_app = winrm.build_app(self.world, self.faults, self.credentials)
        winrm_app[winrm.TLS_CERTIFICATE] = winrm_cert.cert_chain_pems[0].bytes()
        addresses = [h.address for h in self.world.hosts.values() if h.winrm_enabled]
        self.ports.winrm = await self._serve_everywhere(
            winrm_app, addresses, requested.winrm, winrm_ssl
        )
        control_app = control.build_app(self)
        self.ports.control = await self._serve(control_app, [LOOPBACK], requested.control, None)
        self._write_files()

    async def _serve(
        self,
        app: web.Application,
        addresses: list[str],
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        for address in addresses:
            site = web.TCPSite(
                runner, address, port, ssl_context=ssl_context, backlog=1024, reuse_address=True
            )
            try:
                await site.start()
            except OSError as exc:
                raise SimStartError(f"cannot listen on {address}:{port}: {exc.strerror}") from None
            if port == 0:
                server = site._server
                assert isinstance(server, asyncio.base_events.Server)
                port = server.sockets[0].getsockname()[1]
        return port

    async def _serve_everywhere(
        self,
        app: web.Application,
        addresses: list[str],
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> int:
        """One port on every host address. With port 0 the first address picks a free port;
        if another program holds it on a later address, try again with a new one."""
        for _ in range(10 if port == 0 else 1):
            try:
                return await self._serve(app, addresses, port, ssl_context)
            except SimStartError:
                if port != 0:
                    raise
                await self._runners.pop().cleanup()
        raise SimStartError(f"no port was free on all {len(addresses)} host addresses")

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    @property
    def urls(self) -> dict[str, Any]:
        return {
            "kube_api": f"https://{LOOPBACK}:{self.ports.kube}",
            "control": f"http://{LOOPBACK}:{self.ports.control}",
            "slack_api": f"http://{LOOPBACK}:{self.ports.slack}/api/",
            "winrm_port": self.ports.winrm,
        }

    def _write_files(self) -> None:
        ca_pem = (self.out_dir / "ca.pem").read_bytes()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "winpod-sim",
            "clusters": [
                {
                    "name": "winpod-sim",
                    "cluster": {
                        "server": self.urls["kube_api"],
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "winpod-sim-admin", "user": {"token": self.credentials.kube_token}}],
            "contexts": [
                {
                    "name": "winpod-sim",
                    "context": {
                        "cluster": "winpod-sim",
                        "user": "winpod-sim-admin",
                        "namespace": "default",
                    },
                }
            ],
        }
        _write_private(self.out_dir / "kubeconfig", yaml.safe_dump(kubeconfig, sort_keys=False))
        hyperv = {h.name: h.address for h in self.world.hosts.values() if h.role == "hyperv"}
        bot_config = {
            "slack": {
                "bot_token": self.credentials.slack_bot_token,
                "signing_secret": self.credentials.slack_signing_secret,
                "api_url": self.urls["slack_api"],
                "alert_channel": "C0ALERTS",
                "allowed_channels": [],
            },
            "kubernetes": {
                "context": "winpod-sim",
                "namespace": BOT_NAMESPACE,
                "kubeconfig": str((self.out_dir / "kubeconfig").resolve()),
            },
            "winrm": {
                "scheme": "https",
                "port": self.ports.winrm,
                "transport": "ntlm",
                "username": self.credentials.winrm_username,
                "password": self.credentials.winrm_password,
                "ca_bundle": str((self.out_dir / "ca.pem").resolve()),
                "verify": True,
                "address_type": "InternalIP",
                "operation_timeout_s": 20,
                "read_timeout_s": 30,
            },
            "hyperv": {"host_annotation": "winpod.io/hyperv-host", "hosts": hyperv},
            "approvals": {
                "approvers": ["U0APPROVER1", "U0APPROVER2"],
                "two_person": ["high"],
                "expire_after": "15m",
            },
            "sweep": {"interval": "5m", "concurrency": 32, "probe_timeout": "10s"},
            "rdp": {"source_ranges": ["198.51.100.0/24"], "default_ttl": "30m", "max_ttl": "4h"},
            "store": {"url": f"sqlite:///{(self.out_dir / 'winpod.db').resolve()}"},
            "dry_run": False,
        }
        _write_private(self.out_dir / "winpod.yaml", yaml.safe_dump(bot_config, sort_keys=False))
        # The app-level token stays out of winpod.yaml so the bot defaults to HTTP mode there;
        # tests opt into Socket Mode by passing it on.
        sim_json = {**self.urls, "slack_app_token": self.credentials.slack_app_token}
        (self.out_dir / "sim.json").write_text(json.dumps(sim_json, indent=2) + "\n")


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


async def run(scenario: Path, out_dir: Path, ports: Ports | None = None) -> None:
    """Load, serve until SIGINT/SIGTERM, stop cleanly."""
    world = load_scenario(scenario)
    # The loaded world lives as long as the process: keep the cyclic collector from scanning it
    # again and again (a fleet of 20,000 pods made its pauses show in the benchmarks).
    gc.freeze()
    simulator = Simulator(world=world, out_dir=out_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await simulator.start(ports)
        print("sim ready", flush=True)
        await stop.wait()
    finally:
        await simulator.stop()


def main(scenario: str, out_dir: str, ports: Ports | None = None) -> int:
    """Entry point for `winpod sim` and `python -m sim`: returns the exit code."""
    _raise_fd_limit()
    try:
        asyncio.run(run(Path(scenario), Path(out_dir), ports))
    except (ScenarioError, SimStartError) as exc:
        print(f"winpod sim: {exc}", file=sys.stderr)
        return 2
    return 0


def _raise_fd_limit() -> None:
    """One listening socket per simulated host: thousands of hosts need more descriptors."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
