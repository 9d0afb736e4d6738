"""The real cluster and pod-exec adapters over the official `kubernetes` client."""

from __future__ import annotations

import builtins
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import certifi
import urllib3
import websocket
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream.ws_client import (
    ERROR_CHANNEL,
    STDERR_CHANNEL,
    STDOUT_CHANNEL,
    V4_CHANNEL_PROTOCOL,
    websocket_proxycare,
)

from config.settings import KubernetesSettings
from handlers.errors import (
    BadInput,
    Conflict,
    ExecFailed,
    Expired,
    NotFound,
    Refused,
    TimedOut,
    Unreachable,
    WinpodError,
)
from handlers.i18n import _
from handlers.transports import CommandResult, KubeObject, WatchEvent

# kind -> (API class, plural used in method names, namespaced)
_KINDS: dict[str, tuple[type[Any], str, bool]] = {
    "Namespace": (k8s.CoreV1Api, "namespace", False),
    "Node": (k8s.CoreV1Api, "node", False),
    "Pod": (k8s.CoreV1Api, "pod", True),
    "Event": (k8s.CoreV1Api, "event", True),
    "Service": (k8s.CoreV1Api, "service", True),
    "Endpoints": (k8s.CoreV1Api, "endpoints", True),
    "EndpointSlice": (k8s.DiscoveryV1Api, "endpoint_slice", True),
    "DaemonSet": (k8s.AppsV1Api, "daemon_set", True),
    "Deployment": (k8s.AppsV1Api, "deployment", True),
    "StatefulSet": (k8s.AppsV1Api, "stateful_set", True),
    "ReplicaSet": (k8s.AppsV1Api, "replica_set", True),
    "Lease": (k8s.CoordinationV1Api, "lease", True),
    "RuntimeClass": (k8s.NodeV1Api, "runtime_class", False),
}
# Custom resources: kind -> (group, version, plural); all cluster-scoped. Their CRD may be
# missing from a cluster, which answers 404 for the whole resource (NotFound here).
_CUSTOM_KINDS: dict[str, tuple[str, str, str]] = {
    "GMSACredentialSpec": ("windows.k8s.io", "v1", "gmsacredentialspecs"),
}
API_TIMEOUT_S = (5.0, 30.0)  # (connect, read): a dead API server must not hang a diagnosis
# Lists are read in pages of this many objects, so no reply (and no parsed list) is
# fleet-sized; the API server's own default chunk for kubectl is 500 as well.
PAGE_SIZE = 500
# v4 carries the exit status as JSON on channel 3; every API server since 1.4 speaks it.
EXEC_PROTOCOL = V4_CHANNEL_PROTOCOL


def _translate(exc: Exception, what: str) -> WinpodError:
    """Map client exceptions to the project's own; never include headers or tokens."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = _status_message(exc)
        if status == 404:
            return NotFound(_("{what} not found").format(what=what))
        if status in (401, 403):
            return Refused(
                _("the Kubernetes API refused {what}: {why}").format(
                    what=what, why=message or exc.reason
                )
            )
        if status in (400, 422):
            return BadInput(
                _("the Kubernetes API rejected {what}: {why}").format(
                    what=what, why=message or exc.reason
                )
            )
        if status == 409:
            return Conflict(
                _("conflict on {what}: {why}").format(what=what, why=message or exc.reason)
            )
        if status == 410:
            return Expired(
                _("{what}: the API server no longer has that resourceVersion").format(what=what)
            )
        if status == 0:
            return Unreachable(f"{what}: {exc.reason}")
        return Unreachable(
            _("the Kubernetes API failed {what} ({status}): {why}").format(
                what=what, status=status, why=message or exc.reason
            )
        )
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return TimedOut(_("the Kubernetes API did not answer {what} in time").format(what=what))
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return Unreachable(
            _("cannot reach the Kubernetes API for {what}: {error}").format(
                what=what, error=type(exc).__name__
            )
        )
    return WinpodError(_("{what} failed: {error}").format(what=what, error=type(exc).__name__))


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def load_configuration(settings: KubernetesSettings) -> tuple[k8s.Configuration, str]:
    """In-cluster config when running in a pod (and no kubeconfig is named), else kubeconfig."""
    configuration = k8s.Configuration()
    if settings.kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return _harden(configuration), "in-cluster"
        except ConfigException:
            pass
    try:
        k8s_config.load_kube_config(
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
        )
        _contexts, active = k8s_config.list_kube_config_contexts(config_file=settings.kubeconfig)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = settings.kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise BadInput(
            _("cannot load the kubeconfig ({where}): {error}").format(where=where, error=exc)
        ) from None
    name = settings.context or (active or {}).get("name", "default")
    return _harden(configuration), str(name)


def _harden(configuration: k8s.Configuration) -> k8s.Configuration:
    configuration.retries = 1
    # The proxy the environment names, read once: the client re-applies the kubeconfig before
    # every request with a token, and each time re-read the whole environment for proxies
    # (13 % of a sweep's CPU).
    configuration.proxy = configuration.proxy
    return configuration


class KubeCluster:
    """`Cluster` over the official client; returns plain JSON dicts (no model objects)."""

    def __init__(self, configuration: k8s.Configuration, context: str) -> None:
        self._api_client = k8s.ApiClient(configuration)
        self._context = context
        self._apis: dict[type[Any], Any] = {}

    @property
    def context(self) -> str:
        return self._context

    def server_version(self) -> str:
        """The API server's `gitVersion` from `/version`, e.g. "v1.33.2"."""
        api = k8s.VersionApi(self._api_client)
        return str(self._call("reading /version", api.get_code).get("gitVersion") or "")

    def _custom(self) -> Any:
        if k8s.CustomObjectsApi not in self._apis:
            self._apis[k8s.CustomObjectsApi] = k8s.CustomObjectsApi(self._api_client)
        return self._apis[k8s.CustomObjectsApi]

    def _api(self, kind: str) -> tuple[Any, str, bool]:
        if kind not in _KINDS:
            raise BadInput(_("unsupported kind {kind}").format(kind=kind))
        api_class, plural, namespaced = _KINDS[kind]
        if api_class not in self._apis:
            self._apis[api_class] = api_class(self._api_client)
        return self._apis[api_class], plural, namespaced

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=API_TIMEOUT_S, **kwargs
            )
            # `read()` keeps no copy on the response (`.data` would), and the bytes go before
            # parsing: a list of every pod is megabytes, and the sweep's peak memory is here.
            text = response.read().decode("utf-8")
            return json.loads(text)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from None

    def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject:
        api, plural, namespaced = self._api(kind)
        what = f"{kind.lower()} {namespace}/{name}" if namespaced else f"{kind.lower()} {name}"
        if namespaced:
            result = self._call(what, getattr(api, f"read_namespaced_{plural}"), name, namespace)
        else:
            result = self._call(what, getattr(api, f"read_{plural}"), name)
        return dict(result)

    def _list_method(self, kind: str, namespace: str | None) -> tuple[Any, tuple[Any, ...]]:
        if kind in _CUSTOM_KINDS:  # custom resources: cluster-wide through CustomObjectsApi
            group, version, custom_plural = _CUSTOM_KINDS[kind]
            return self._custom().list_cluster_custom_object, (group, version, custom_plural)
        api, plural, namespaced = self._api(kind)
        if namespaced and namespace:
            return getattr(api, f"list_namespaced_{plural}"), (namespace,)
        if namespaced:
            return getattr(api, f"list_{plural}_for_all_namespaces"), ()
        return getattr(api, f"list_{plural}"), ()

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        items: list[KubeObject] = []
        for page, _token in self._pages(kind, namespace, label_selector, field_selector, PAGE_SIZE):
            items.extend(page)
        return items

    def list_pages(
        self, kind: str, label_selector: str | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[tuple[builtins.list[KubeObject], str]]:
        return self._pages(kind, None, label_selector, None, page_size)

    def _pages(
        self,
        kind: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        page_size: int,
    ) -> Iterator[tuple[builtins.list[KubeObject], str]]:
        method, args = self._list_method(kind, namespace)
        options: dict[str, Any] = {"limit": page_size}
        if label_selector:
            options["label_selector"] = label_selector
        if field_selector:
            options["field_selector"] = field_selector
        what = _("list of {kind}s").format(kind=kind.lower())
        token = None
        while True:
            if token:
                options["_continue"] = token
            result = self._call(what, method, *args, **options)
            metadata = result.get("metadata") or {}
            yield list(result.get("items") or []), str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue")
            if not token:
                return

    def watch(
        self,
        kind: str,
        resource_version: str,
        label_selector: str | None = None,
        timeout_s: int = 300,
    ) -> Iterator[WatchEvent]:
        """Events after `resource_version` (bookmarks included) until `timeout_s`; raises
        `Expired` when the server has compacted that far (410), as a watch reports it."""
        method, args = self._list_method(kind, None)
        options: dict[str, Any] = {
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_s,
            "_request_timeout": (API_TIMEOUT_S[0], timeout_s + API_TIMEOUT_S[1]),
        }
        if label_selector:
            options["label_selector"] = label_selector
        what = _("watch of {kind}s").format(kind=kind.lower())
        watcher = k8s_watch.Watch()
        try:
            for event in watcher.stream(method, *args, **options):
                yield WatchEvent(str(event["type"]), dict(event["raw_object"]))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from None
        finally:
            watcher.stop()

    def create(self, kind: str, body: KubeObject, namespace: str | None = None) -> KubeObject:
        api, plural, namespaced = self._api(kind)
        name = (body.get("metadata") or {}).get("name", "?")
        what = _("creating {kind} {name}").format(kind=kind.lower(), name=name)
        if namespaced:
            method = getattr(api, f"create_namespaced_{plural}")
            return dict(self._call(what, method, namespace, body))
        return dict(self._call(what, getattr(api, f"create_{plural}"), body))

    def patch(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        api, plural, namespaced = self._api(kind)
        what = _("patching {kind} {name}").format(kind=kind.lower(), name=name)
        # The generated client would default to json-patch; a dict body is a strategic merge.
        content = "application/strategic-merge-patch+json"
        if namespaced:
            method = getattr(api, f"patch_namespaced_{plural}")
            return dict(self._call(what, method, name, namespace, body, _content_type=content))
        method = getattr(api, f"patch_{plural}")
        return dict(self._call(what, method, name, body, _content_type=content))

    def replace(
        self, kind: str, name: str, body: KubeObject, namespace: str | None = None
    ) -> KubeObject:
        """PUT: with metadata.resourceVersion set, a stale write fails with Conflict."""
        api, plural, namespaced = self._api(kind)
        what = _("replacing {kind} {name}").format(kind=kind.lower(), name=name)
        if namespaced:
            method = getattr(api, f"replace_namespaced_{plural}")
            return dict(self._call(what, method, name, namespace, body))
        return dict(self._call(what, getattr(api, f"replace_{plural}"), name, body))

    def pod_log(self, name: str, namespace: str) -> str:
        """The log of the pod's (only) container; a kubelet that does not answer is
        `Unreachable` (the API server proxies the read to it)."""
        api, _plural, _namespaced = self._api("Pod")
        what = _("reading the log of pod {pod}").format(pod=f"{namespace}/{name}")
        try:
            response = api.read_namespaced_pod_log(
                name, namespace, _preload_content=False, _request_timeout=API_TIMEOUT_S
            )
            return str(response.read().decode("utf-8", "replace"))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from None

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        api, plural, namespaced = self._api(kind)
        what = _("deleting {kind} {name}").format(kind=kind.lower(), name=name)
        if namespaced:
            self._call(what, getattr(api, f"delete_namespaced_{plural}"), name, namespace)
        else:
            self._call(what, getattr(api, f"delete_{plural}"), name)


class KubePodExec:
    """`PodExec` over the exec WebSocket (`v4.channel.k8s.io`), spoken with websocket-client.

    The URL, the bearer token (refreshed by the client as for REST calls), the client
    certificate, the CA and the proxy all come from the cluster's client `Configuration`. The
    official client's `kubernetes.stream` was used until the sweep measured what it costs per
    exec: an `ApiClient`, a fresh SSL context that parses the CA file again, and a reset of
    websocket-client's log level that clears every logger's cache under logging's lock
    (bench/RESULTS.md, "Sweep figures after session 5"). Here one TLS context serves every
    exec of the cluster; the handshake stays per exec.
    """

    def __init__(self, configuration: k8s.Configuration) -> None:
        self._configuration = configuration
        scheme, _sep, rest = str(configuration.host).rstrip("/").partition("://")
        self._base = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
        self._sslopt: dict[str, Any] = {}
        if scheme == "https":
            self._sslopt["context"] = _ssl_context(configuration)
            if configuration.tls_server_name:
                self._sslopt["server_hostname"] = configuration.tls_server_name

    def _url(self, namespace: str, pod: str, container: str | None, argv: list[str]) -> str:
        query = [("command", arg) for arg in argv]
        query += [("stdout", "true"), ("stderr", "true"), ("stdin", "false"), ("tty", "false")]
        if container:
            query.append(("container", container))
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
        return f"{self._base}{path}?{urlencode(query)}"

    def _connect_options(self, url: str) -> dict[str, Any]:
        header = []
        token = self._configuration.auth_settings().get("BearerToken")
        if token and token.get("value"):
            header.append(f"authorization: {token['value']}")
        options: dict[str, Any] = {"header": header, "subprotocols": [EXEC_PROTOCOL]}
        if self._configuration.proxy or self._configuration.proxy_headers:
            options = websocket_proxycare(options, self._configuration, url, None)
        return options

    def run(
        self, namespace: str, pod: str, container: str | None, argv: list[str], timeout_s: float
    ) -> CommandResult:
        what = _("exec in pod {pod}").format(pod=f"{namespace}/{pod}")
        url = self._url(namespace, pod, container, argv)
        deadline = time.monotonic() + timeout_s
        received: dict[int, list[bytes]] = {
            STDOUT_CHANNEL: [],
            STDERR_CHANNEL: [],
            ERROR_CHANNEL: [],
        }
        ws = websocket.WebSocket(sslopt=self._sslopt, skip_utf8_validation=True)
        try:
            ws.connect(url, timeout=timeout_s, **self._connect_options(url))
            while True:
                ws.settimeout(max(deadline - time.monotonic(), 0.001))
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if data and data[0] in received:
                    received[data[0]].append(data[1:])
        except websocket.WebSocketConnectionClosedException:
            pass  # closed without a close frame: what the server sent is all there is
        except websocket.WebSocketBadStatusException as exc:
            raise _refused_exec(exc, what) from None
        except (websocket.WebSocketTimeoutException, TimeoutError):
            raise TimedOut(
                _("{what}: no answer within {seconds} s").format(
                    what=what, seconds=f"{timeout_s:g}"
                )
            ) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise Unreachable(f"{what}: {type(exc).__name__}") from None
        finally:
            ws.shutdown()  # the server's close frame, when it came, was answered by recv_data
        if not received[ERROR_CHANNEL]:
            raise Unreachable(
                _("{what}: the connection ended before the command's exit status").format(what=what)
            )
        stdout, stderr, status = (
            b"".join(received[channel]).decode("utf-8", "replace")
            for channel in (STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL)
        )
        return CommandResult(stdout, stderr, _exit_code(status, what))


def _ssl_context(configuration: k8s.Configuration) -> ssl.SSLContext:
    """The TLS settings of the REST calls (CA, client certificate, verification), loaded once."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or certifi.where())
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


# How much of the runtime's message an `ExecFailed` quotes.
EXEC_FAILURE_CHARS = 400


def _exit_code(status: str, what: str) -> int:
    """The exit code in the exec's status message (1 when it says nothing usable); a Failure
    that is not a command's exit (the runtime could not start it) raises `ExecFailed` with the
    runtime's words. The client's own `returncode` parses this JSON with PyYAML's pure-Python
    loader, which costs more CPU than the rest of the exec: it showed in the sweep benchmark."""
    try:
        body = json.loads(status)
    except (ValueError, TypeError):
        return 1
    if not isinstance(body, dict):
        return 1
    if body.get("status") == "Success":
        return 0
    if body.get("status") == "Failure" and body.get("reason") not in (None, "NonZeroExitCode"):
        message = str(body.get("message") or body.get("reason"))[:EXEC_FAILURE_CHARS]
        raise ExecFailed(
            _("{what}: the command could not start: {message}").format(what=what, message=message)
        )
    try:
        return int(body["details"]["causes"][0]["message"])
    except (TypeError, KeyError, IndexError, AttributeError, ValueError):
        return 1


def _refused_exec(exc: websocket.WebSocketBadStatusException, what: str) -> WinpodError:
    """The API server answered the exec's upgrade with an HTTP error instead of 101 (its
    headers and body are not quoted: they may echo the request)."""
    status = int(exc.status_code or 0)
    if status == 404:
        return NotFound(_("{what}: pod not found").format(what=what))
    if status in (401, 403):
        return Refused(_("{what}: refused by the Kubernetes API").format(what=what))
    if status == 400:
        return Refused(
            _("{what}: the API refused the exec (is the pod running?)").format(what=what)
        )
    words = str(getattr(exc, "status_message", "") or "").strip()[:80]
    return Unreachable(
        _("{what}: the Kubernetes API answered {status} {words}")
        .format(what=what, status=status, words=words)
        .rstrip()
    )
