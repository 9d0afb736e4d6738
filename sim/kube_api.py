"""The simulated Kubernetes API server that the official Python client and kubectl use unchanged.

Discovery (`/version`, `/api`, `/apis`, OpenAPI v3 and v2 path indexes), get/list/create/replace/
patch/delete with label and field selectors and resourceVersion conflicts, the `/status`
subresource, server-side printing (Table), pod exec over WebSocket (sim/exec_ws.py) and Service
address allocation plus a load-balancer controller (sim/lb.py), watches (`?watch=1`: chunked
JSON event lines, bookmarks, 410 Gone past the compacted history) and `limit`/`continue` paging.
Every request needs the bearer token; errors are `Status` bodies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import copy
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sim import cni, hostprocess, runtime, tables
from sim.exec_ws import handle_exec
from sim.faults import Faults, KubeTraffic
from sim.lb import LoadBalancerController, admit_service
from sim.world import (
    BY_PLURAL,
    CUSTOM_RESOURCES,
    RESOURCES,
    ApiError,
    Change,
    Obj,
    Resource,
    World,
    field_matcher,
    json_patch,
    label_matcher,
    merge_patch,
    not_found,
    now_iso,
    strategic_merge_patch,
)

SERVER_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.4",
    "gitCommit": "a51b3b711150f57ffc1f526a640ec058514ed596",
    "gitTreeState": "clean",
    "buildDate": "2024-08-14T19:02:46Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Resources whose status is written only through `/status`, as in Kubernetes.
WITH_STATUS = frozenset(
    {
        "namespaces",
        "nodes",
        "pods",
        "services",
        "daemonsets",
        "deployments",
        "statefulsets",
        "replicasets",
    }
)
# DELETE answers with the deleted object for these, with a Status for the rest (as upstream).
RETURNS_DELETED_OBJECT = frozenset({"pods", "services", "serviceaccounts"})
IN_CATEGORY_ALL = frozenset(
    {"pods", "services", "daemonsets", "deployments", "statefulsets", "replicasets"}
)
VERBS = ["create", "delete", "get", "list", "patch", "update"]
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
MAX_BODY_BYTES = 16 * 1024 * 1024
# A watch without timeoutSeconds ends after this long, as the API server's default
# (--min-request-timeout 1800 s) does; bookmarks go out this often when asked for.
WATCH_TIMEOUT_S = 1800.0
BOOKMARK_INTERVAL_S = 1.0
_EXEC_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/exec/?$")


def _timestamp(value: Any) -> str:
    """RFC 3339 for the datetimes YAML makes of unquoted timestamps in a scenario file."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=_timestamp).encode()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type="application/json")


def _status_response(error: ApiError) -> web.Response:
    return _json(error.status(), error.code)


def _group_versions() -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for resource in RESOURCES:
        seen[(resource.group, resource.version)] = None
    return list(seen)


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


# --- discovery --------------------------------------------------------------------------------


def resource_list(group: str, version: str) -> Obj:
    """`APIResourceList` for one group version, subresources included."""
    entries: list[Obj] = []
    for resource in RESOURCES:
        if (resource.group, resource.version) != (group, version):
            continue
        entry: Obj = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": VERBS,
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.plural in IN_CATEGORY_ALL:
            entry["categories"] = ["all"]
        entries.append(entry)
        if resource.plural in WITH_STATUS:
            entries.append(
                {
                    "name": f"{resource.plural}/status",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if resource.plural == "pods":
            entries.append(
                {
                    "name": "pods/exec",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodExecOptions",
                    "verbs": ["create", "get"],
                }
            )
            entries.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _api_group(group: str) -> Obj:
    versions = [
        {"groupVersion": f"{g}/{v}", "version": v} for g, v in _group_versions() if g == group
    ]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def api_group_list(absent: frozenset[str] = frozenset()) -> Obj:
    groups = sorted({g for g, _ in _group_versions() if g and g not in absent})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in _api_group(g).items() if k not in ("kind", "apiVersion")}
            for g in groups
        ],
    }


def openapi_v3_index() -> Obj:
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=sim1"}
            for g, v in _group_versions()
        }
    }


def openapi_v3_document(group: str, version: str) -> Obj:
    """Paths and operations only, no schemas: enough for kubectl to see that the server
    validates fields itself (`fieldValidation` on PATCH), so it skips client-side validation."""
    query_params = [
        {
            "name": name,
            "in": "query",
            "description": description,
            "schema": {"type": "string", "uniqueItems": True},
        }
        for name, description in (
            ("dryRun", "When present, modifications are not persisted (All)."),
            ("fieldManager", "Name of the actor making the change (accepted, not tracked)."),
            ("fieldValidation", "Ignore, Warn or Strict (accepted; unknown fields are kept)."),
        )
    ]
    paths: dict[str, Obj] = {}
    for resource in RESOURCES:
        if (resource.group, resource.version) != (group, version):
            continue
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        prefix = "/" + _gv_path(group, version)
        collection = (
            f"{prefix}/namespaces/{{namespace}}/{resource.plural}"
            if resource.namespaced
            else f"{prefix}/{resource.plural}"
        )

        def operation(action: str, kind: str, resource: Resource = resource, gvk: Obj = gvk) -> Obj:
            return {
                "operationId": f"{action}{kind}",
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": query_params,
                "tags": [_gv_path(resource.group, resource.version)],
                "responses": {"200": {"description": "OK"}},
            }

        paths[collection] = {
            "get": operation("list", resource.kind),
            "post": operation("post", resource.kind),
        }
        paths[collection + "/{name}"] = {
            verb: operation(action, resource.kind)
            for verb, action in (
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            )
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (winpod simulator)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v2_document() -> Obj:
    """Swagger 2.0 with one PATCH operation per kind: kubectl before 1.29 reads this (and only
    in protobuf) to decide that the server validates fields itself."""
    paths: dict[str, Obj] = {}
    for resource in RESOURCES:
        prefix = "/" + _gv_path(resource.group, resource.version)
        item = (
            f"{prefix}/namespaces/{{namespace}}/{resource.plural}/{{name}}"
            if resource.namespaced
            else f"{prefix}/{resource.plural}/{{name}}"
        )
        paths[item] = {
            "patch": {
                "operationId": f"patch{resource.kind}",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "type": "string",
                        "uniqueItems": True,
                    }
                ],
                "x-kubernetes-group-version-kind": {
                    "group": resource.group,
                    "version": resource.version,
                    "kind": resource.kind,
                },
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (winpod simulator)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
    }


def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb(number: int, payload: bytes | str) -> bytes:
    """One length-delimited protobuf field (strings and embedded messages alike)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _pb_varint(number << 3 | 2) + _pb_varint(len(data)) + data


def openapi_v2_protobuf(document: Obj) -> bytes:
    """`document` (as built by `openapi_v2_document`) in gnostic's openapi_v2.Document
    encoding: field numbers from google/gnostic openapiv2/OpenAPIv2.proto."""
    path_items = b""
    for path, item in document["paths"].items():
        operation = item["patch"]
        # Operation.parameters > ParametersItem.parameter > Parameter.non_body_parameter >
        # NonBodyParameter.query_parameter_sub_schema {in, name, type}
        parameters = b"".join(
            _pb(8, _pb(1, _pb(2, _pb(3, _pb(2, p["in"]) + _pb(4, p["name"]) + _pb(6, p["type"])))))
            for p in operation["parameters"]
        )
        # Operation.vendor_extension > NamedAny {name, value: Any.yaml}
        gvk_yaml = yaml.safe_dump(operation["x-kubernetes-group-version-kind"])
        extension = _pb(13, _pb(1, "x-kubernetes-group-version-kind") + _pb(2, _pb(2, gvk_yaml)))
        # Operation.responses > NamedResponseValue {name, ResponseValue.response.description}
        responses = _pb(9, _pb(1, _pb(1, "200") + _pb(2, _pb(1, _pb(1, "OK")))))
        operation_pb = _pb(5, operation["operationId"]) + parameters + responses + extension
        # Paths.path > NamedPathItem {name, value: PathItem.patch}
        path_items += _pb(2, _pb(1, path) + _pb(2, _pb(8, operation_pb)))
    info = document["info"]
    # Document {swagger, info {title, version}, paths}
    return (
        _pb(1, document["swagger"])
        + _pb(2, _pb(1, info["title"]) + _pb(2, info["version"]))
        + _pb(8, path_items)
    )


# --- request targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a path under /api or /apis names."""

    group: str
    version: str
    resource: Resource | None = None  # None: the group version's discovery document
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def _unknown_path() -> ApiError:
    return ApiError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


def parse_target(path: str) -> Target | str:
    """A `Target`, or a group name for `/apis/<group>`; raises 404 for anything else."""
    parts = [p for p in path.split("/") if p]
    if parts[0] == "api" and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    elif parts[0] == "apis" and len(parts) == 2:
        if any(g == parts[1] for g, _ in _group_versions()):
            return parts[1]
        raise _unknown_path()
    else:
        raise _unknown_path()
    if (group, version) not in _group_versions():
        raise _unknown_path()
    if not rest:
        return Target(group, version)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _unknown_path()
    resource = BY_PLURAL.get(rest[0])
    if resource is None or (resource.group, resource.version) != (group, version):
        raise _unknown_path()
    name = rest[1] if len(rest) > 1 else None
    if namespace is not None and not resource.namespaced:
        raise _unknown_path()
    if namespace is None and resource.namespaced and name is not None:
        raise _unknown_path()
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and not (
        (subresource == "status" and resource.plural in WITH_STATUS)
        or (subresource in ("exec", "log") and resource.plural == "pods")
    ):
        raise _unknown_path()
    return Target(group, version, resource, namespace, name, subresource)


# --- bodies -----------------------------------------------------------------------------------


async def _read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "BadRequest", "the request body is empty")
    try:
        if "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(
            400,
            "BadRequest",
            f"the body of the request could not be decoded as "
            f"{request.content_type or 'JSON'}: {exc}",
        ) from None


def _check_kind(resource: Resource, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", f"the body must be a {resource.kind} object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind and kind != resource.kind:
        raise ApiError(
            400,
            "BadRequest",
            f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})",
        )
    if api_version and api_version != resource.api_version:
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({api_version}) does "
            f"not match the expected API version "
            f"({resource.api_version})",
        )
    return body


def _is_dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    unknown = [v for v in values if v != "All"]
    if unknown:
        raise ApiError(
            400, "BadRequest", f'dryRun: Unsupported value: {unknown[0]!r}: supported values: "All"'
        )
    return bool(values)


def _grace_period(request: web.Request, options: Any) -> int | None:
    """DeleteOptions.gracePeriodSeconds from the query or the body (None: the pod's own)."""
    value = request.query.get("gracePeriodSeconds")
    if value is None and isinstance(options, dict):
        value = options.get("gracePeriodSeconds")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "BadRequest", f"invalid gracePeriodSeconds: {value!r}") from None


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in ("true", "1")


def _int_query(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid {name} {raw!r}: must be an integer") from None
    if value < 0:
        raise ApiError(400, "BadRequest", f"invalid {name} {raw!r}: must not be negative")
    return value


def _object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}/{meta['name']}"


def _encode_continue(resource_version: int, key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": key})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(400, "BadRequest", "continue key is not valid") from None


class Watch:
    """One watch request: chunked JSON lines `{"type": …, "object": …}` until timeoutSeconds.

    Without a resourceVersion (or with "0") it starts with ADDED for every matching object;
    with one it replays the changes after it, or sends an ERROR event with a 410 `Status`
    when the history no longer reaches back (the client must list again). MODIFIED changes
    that move an object into or out of the selectors are sent as ADDED or DELETED.
    """

    def __init__(
        self, api: KubeApi, request: web.Request, resource: Resource, namespace: str | None
    ) -> None:
        self.api, self.request, self.resource, self.namespace = api, request, resource, namespace
        query = request.query
        self.labels_ok = label_matcher(query.get("labelSelector"))
        self.fields_ok = field_matcher(query.get("fieldSelector"))
        self.bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        self.timeout_s = float(_int_query(request, "timeoutSeconds") or WATCH_TIMEOUT_S)
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def _matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels_ok(meta.get("labels") or {}) and self.fields_ok(obj)

    def _event(self, change: Change) -> tuple[str, Obj] | None:
        if change.plural != self.resource.plural:
            return None
        now, before = self._matches(change.obj), self._matches(change.before)
        if change.type == "MODIFIED" and now != before:
            return ("ADDED" if now else "DELETED"), change.obj
        return (change.type, change.obj) if now else None

    async def serve(self) -> web.StreamResponse:
        world = self.api.world
        start = self.request.query.get("resourceVersion", "")
        if start not in ("", "0") and not start.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {start!r}")
        # Subscribing and reading the state happen with no await between them: no change is
        # missed or sent twice.
        world.watchers.add(self.queue.put_nowait)
        try:
            replay: list[tuple[str, Obj]] | None
            if start in ("", "0"):
                replay = [
                    ("ADDED", obj)
                    for obj in world.list(self.resource.plural, self.namespace)
                    if self._matches(obj)
                ]
            else:
                changes = world.changes_since(int(start))
                replay = (
                    None
                    if changes is None
                    else [e for e in (self._event(c) for c in changes) if e is not None]
                )
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(self.request)
            if replay is None:
                await self._send(response, "ERROR", encode(self._gone(int(start))))
                return response
            for kind, obj in replay:
                await self._send(response, kind, self._encoded(obj))
            await self._follow(response)
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        finally:
            world.watchers.discard(self.queue.put_nowait)

    async def _follow(self, response: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while (left := deadline - loop.time()) > 0:
            wait = min(left, BOOKMARK_INTERVAL_S) if self.bookmarks else left
            try:
                change = await asyncio.wait_for(self.queue.get(), wait)
            except TimeoutError:
                if self.bookmarks and deadline - loop.time() > 0:
                    await self._send(response, "BOOKMARK", encode(self._bookmark()))
                continue
            if change is None:  # closed through the control API
                return
            event = self._event(change)
            if event is not None:
                await self._send(response, event[0], self._encoded(event[1]))

    def _bookmark(self) -> Obj:
        return {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": str(self.api.world.resource_version)},
        }

    def _gone(self, start: int) -> Obj:
        return ApiError(
            410,
            "Expired",
            f"too old resource version: {start} ({self.api.world.compacted_rv + 1})",
        ).status()

    async def _send(self, response: web.StreamResponse, kind: str, encoded: bytes) -> None:
        line = b'{"type":"' + kind.encode() + b'","object":' + encoded + b"}\n"
        self.api.traffic.count(self.resource.plural, len(line), request=False)
        await response.write(line)

    def _encoded(self, obj: Obj) -> bytes:
        return self.api.encoded.encode_list(self.resource.plural, [obj])[1:-1]


class EncodedObjects:
    """Each stored object's JSON, encoded once and reused until the object is replaced.

    World replaces an object (a new dict, a new resourceVersion) on every write and never
    changes a stored one, so a cached encoding is valid while its entry still holds that very
    dict. This turns a LIST of 20,000 pods from encoding 18 MB into joining cached bytes.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._entries: dict[str, dict[int, tuple[Obj, bytes]]] = {}
        self._limits: dict[str, int] = {}

    def encode_list(self, plural: str, objects: list[Obj]) -> bytes:
        entries = self._entries.setdefault(plural, {})
        parts = []
        for obj in objects:
            entry = entries.get(id(obj))
            if entry is None or entry[0] is not obj:
                entry = (obj, encode(obj))
                entries[id(obj)] = entry
            parts.append(entry[1])
        if len(entries) > self._limits.get(plural, 1024):
            # Forget deleted and replaced objects; the limit doubles, so this stays cheap.
            live = {id(obj) for obj in self.world.iter(plural)}
            entries = {key: e for key, e in entries.items() if key in live}
            self._entries[plural] = entries
            self._limits[plural] = max(2 * len(entries), 1024)
        return b"[" + b",".join(parts) + b"]"


class KubeApi:
    """Request handlers over one `World`."""

    def __init__(self, world: World, traffic: KubeTraffic) -> None:
        self.world = world
        self.traffic = traffic
        self.encoded = EncodedObjects(world)

    # --- discovery ----------------------------------------------------------------------
    async def version(self, _: web.Request) -> web.Response:
        version = self.world.kubernetes_version
        major, minor = [*re.findall(r"\d+", version), "1", "30"][:2]
        return _json({**SERVER_VERSION, "major": major, "minor": minor, "gitVersion": version})

    async def core_versions(self, request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0] if request.host else "127.0.0.1"
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:443"}
                ],
            }
        )

    async def groups(self, _: web.Request) -> web.Response:
        listed = api_group_list(self._absent_groups())
        for group in listed["groups"]:
            group["versions"] = [
                v for v in group["versions"] if v["groupVersion"] not in self.world.unserved
            ]
        listed["groups"] = [g for g in listed["groups"] if g["versions"]]
        return _json(listed)

    def _absent_groups(self) -> frozenset[str]:
        """API groups that only uninstalled CRDs would serve."""
        return frozenset(
            resource.group
            for resource in RESOURCES
            if resource.plural in CUSTOM_RESOURCES
            and resource.plural not in self.world.installed_crds
        )

    async def openapi_v2(self, request: web.Request) -> web.Response:
        document = openapi_v2_document()
        if "protobuf" in request.headers.get("Accept", ""):
            return web.Response(
                body=openapi_v2_protobuf(document), content_type=OPENAPI_V2_PROTOBUF
            )
        return _json(document)

    async def openapi_v3(self, request: web.Request) -> web.Response:
        path = request.match_info.get("path", "").strip("/")
        if not path:
            return _json(openapi_v3_index())
        for group, version in _group_versions():
            if path == _gv_path(group, version):
                return _json(openapi_v3_document(group, version))
        raise _unknown_path()

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    # --- resources ----------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        target = parse_target(request.path)
        group_name = target if isinstance(target, str) else target.group
        if group_name in self._absent_groups():
            raise _unknown_path()  # as a cluster without the CRD answers
        if isinstance(target, str):
            group = _api_group(target)
            group["versions"] = [
                v for v in group["versions"] if v["groupVersion"] not in self.world.unserved
            ]
            if not group["versions"]:
                raise _unknown_path()
            group["preferredVersion"] = group["versions"][0]
            return _json(group)
        if f"{target.group}/{target.version}".lstrip("/") in self.world.unserved:
            raise _unknown_path()
        if target.resource is None:
            if request.method != "GET":
                raise ApiError(405, "MethodNotAllowed", "discovery documents are read-only")
            return _json(resource_list(target.group, target.version))
        resource, method = target.resource, request.method
        if target.subresource == "exec":
            assert target.namespace is not None and target.name is not None
            if method not in ("GET", "POST"):
                raise ApiError(405, "MethodNotAllowed", "pods/exec takes GET or POST")
            hostprocess.check_kubelet(
                self.world, self.world.get("pods", target.namespace, target.name)
            )
            return await handle_exec(request, self.world, target.namespace, target.name)
        if target.subresource == "log":
            assert target.namespace is not None and target.name is not None
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "pods/log takes GET")
            pod = self.world.get("pods", target.namespace, target.name)
            return web.Response(text=hostprocess.read_log(self.world, pod))
        if target.name is None:
            if method == "GET":
                return await self.list(request, resource, target.namespace)
            if method == "POST" and (target.namespace is not None or not resource.namespaced):
                return await self.create(request, resource, target.namespace)
        elif target.subresource == "status" and method in ("GET", "PUT", "PATCH"):
            return await self.write_or_get(request, target)
        elif target.subresource is None and method in ("GET", "PUT", "PATCH", "DELETE"):
            if method == "DELETE":
                return await self.delete(request, target)
            return await self.write_or_get(request, target)
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource "
            f"({method} {request.path})",
        )

    def _render(
        self, request: web.Request, resource: Resource, objects: list[Obj], single: bool
    ) -> web.Response:
        """Plain JSON, or a Table when kubectl asks for server-side printing."""
        table_version = tables.table_version(request.headers.get("Accept", ""))
        if table_version is None:
            if single:
                return _json(objects[0])
            head = encode(
                {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(self.world.resource_version)},
                }
            )
            body = (
                head[:-1] + b',"items":' + self.encoded.encode_list(resource.plural, objects) + b"}"
            )
            return web.Response(body=body, content_type="application/json")
        return _json(
            tables.build_table(
                resource,
                objects,
                version=table_version,
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=str(self.world.resource_version),
            )
        )

    async def list(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.StreamResponse:
        if _is_watch(request):
            return await Watch(self, request, resource, namespace).serve()
        query = request.query
        objects = self.world.list(
            resource.plural, namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        limit = _int_query(request, "limit")
        token = query.get("continue")
        if not limit and not token:
            return self._render(request, resource, objects, single=False)
        page, meta = self._page(objects, limit, token)
        table_version = tables.table_version(request.headers.get("Accept", ""))
        if table_version is not None:
            table = tables.build_table(
                resource,
                page,
                version=table_version,
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=meta["resourceVersion"],
            )
            table.setdefault("metadata", {}).update(meta)
            return _json(table)
        head = encode({"kind": f"{resource.kind}List", "apiVersion": resource.api_version})
        body = (
            head[:-1]
            + b',"metadata":'
            + encode(meta)
            + b',"items":'
            + self.encoded.encode_list(resource.plural, page)
            + b"}"
        )
        return web.Response(body=body, content_type="application/json")

    def _page(
        self, objects: builtins.list[Obj], limit: int, token: str | None
    ) -> tuple[builtins.list[Obj], Obj]:
        """One page of a list in key order (namespace, name), as etcd returns it, and the
        list's metadata. A continue token names the list's resourceVersion and the last key
        served; later pages show the objects as they are now (the real server keeps a
        snapshot until compaction)."""
        list_rv, after = self.world.resource_version, ""
        if token:
            list_rv, after = _decode_continue(token)
            if list_rv < self.world.compacted_rv:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                )
        ordered = sorted(objects, key=_object_key)
        remaining = [o for o in ordered if _object_key(o) > after] if after else ordered
        page = remaining[:limit] if limit else remaining
        meta: Obj = {"resourceVersion": str(list_rv)}
        if limit and len(remaining) > limit:
            meta["continue"] = _encode_continue(list_rv, _object_key(page[-1]))
            meta["remainingItemCount"] = len(remaining) - limit
        return page, meta

    async def create(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.Response:
        body = copy.deepcopy(_check_kind(resource, await _read_body(request)))
        self._admit(resource, body, None)
        if resource.plural == "pods":
            hostprocess.admit(
                self.world,
                namespace or (body.get("metadata") or {}).get("namespace") or "default",
                body,
            )
        if _is_dry_run(request):
            return _json(self._dry_run_create(resource, namespace, body), 201)
        created = self.world.create(resource.plural, namespace, body)
        if resource.plural == "pods" and hostprocess.is_hostprocess(created):
            self.traffic.hostprocess_pods += 1
            hostprocess.start(self.world, created)
        return _json(created, 201)

    def _dry_run_create(self, resource: Resource, namespace: str | None, body: Obj) -> Obj:
        """What create would store, after the same checks, without storing it."""
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if resource.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
            if self.world.find("namespaces", None, namespace) is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
        if meta.get("name") and self.world.find(resource.plural, namespace, meta["name"]):
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource.plural} "{meta["name"]}" already exists',
                {"name": meta["name"], "kind": resource.plural},
            )
        if not meta.get("name"):
            raise ApiError(
                422,
                "Invalid",
                f"{resource.kind} is invalid: metadata.name: "
                "Required value: name or generateName is required",
            )
        body.update(apiVersion=resource.api_version, kind=resource.kind)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        return body

    async def write_or_get(self, request: web.Request, target: Target) -> web.Response:
        """GET, PUT or PATCH of an object or of its `/status`."""
        resource = target.resource
        assert resource is not None and target.name is not None
        plural, namespace, name = resource.plural, target.namespace, target.name
        if request.method == "GET":
            return self._render(
                request, resource, [self.world.peek(plural, namespace, name)], single=True
            )
        current = self.world.find(plural, namespace, name)
        if request.method == "PUT":
            if current is None:
                raise not_found(resource, name)
            updated = copy.deepcopy(_check_kind(resource, await _read_body(request)))
        else:
            content_type = request.content_type
            patch = await _read_body(request)
            if current is None:
                if "apply-patch" not in content_type or target.subresource:
                    raise not_found(resource, name)
                # Server-side apply of an absent object creates it.
                body = copy.deepcopy(_check_kind(resource, patch))
                body.setdefault("metadata", {})["name"] = name
                self._admit(resource, body, None)
                if _is_dry_run(request):
                    return _json(self._dry_run_create(resource, namespace, body), 201)
                return _json(self.world.create(plural, namespace, body), 201)
            updated = copy.deepcopy(self._apply_patch(current, patch, content_type))
        if target.subresource == "status":
            # Only the status changes; the resourceVersion sent still guards the write.
            status_only = copy.deepcopy(current)
            status_only["status"] = updated.get("status") or {}
            status_only["metadata"]["resourceVersion"] = (updated.get("metadata") or {}).get(
                "resourceVersion"
            )
            updated = status_only
        elif resource.plural in WITH_STATUS:
            # Writes to the object itself cannot change its status, as on a real cluster.
            updated.pop("status", None)
            if "status" in current:
                updated["status"] = copy.deepcopy(current["status"])
        self._admit(resource, updated, current)
        if _is_dry_run(request):
            return _json(self._dry_run_update(resource, current, updated))
        return _json(self.world.replace(plural, namespace, name, updated))

    @staticmethod
    def _apply_patch(current: Obj, patch: Any, content_type: str) -> Any:
        if "json-patch" in content_type:
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
            return json_patch(current, patch)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "the patch must be a JSON object")
        if "strategic-merge-patch" in content_type or "apply-patch" in content_type:
            return strategic_merge_patch(current, patch)
        if "merge-patch" in content_type:
            return merge_patch(current, patch)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media "
            f"types include: application/json-patch+json, application/merge-patch+"
            f"json, application/apply-patch+yaml, application/strategic-merge-patch"
            f"+json (got {content_type!r})",
        )

    def _dry_run_update(self, resource: Resource, current: Obj, updated: Obj) -> Obj:
        sent = (updated.get("metadata") or {}).get("resourceVersion")
        meta = current["metadata"]
        if sent and sent != meta["resourceVersion"]:
            group = f".{resource.group}" if resource.group else ""
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {resource.plural}"
                f'{group} "{meta["name"]}": the object has been '
                "modified; please apply your changes to the latest "
                "version and try again",
                {"name": meta["name"], "group": resource.group, "kind": resource.plural},
            )
        updated_meta = updated.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "name", "namespace", "resourceVersion"):
            if fixed in meta:
                updated_meta[fixed] = meta[fixed]
        updated.update(apiVersion=resource.api_version, kind=resource.kind)
        return updated

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        resource = target.resource
        assert resource is not None and target.name is not None
        current = self.world.find(resource.plural, target.namespace, target.name)
        if current is None:
            raise not_found(resource, target.name)
        sent_options = (await request.read()).strip()
        options = await _read_body(request) if sent_options else {}
        preconditions = (options if isinstance(options, dict) else {}).get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            wanted, actual = preconditions.get(field), current["metadata"].get(field)
            if wanted and wanted != actual:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: "
                    f"{wanted}, {field} in object meta: {actual}",
                    {"name": target.name, "group": resource.group, "kind": resource.plural},
                )
        if _is_dry_run(request):
            deleted = copy.deepcopy(current)
        elif resource.plural == "pods" and (
            terminating := runtime.stays_terminating(
                self.world, current, _grace_period(request, options)
            )
        ):
            return _json(terminating)  # graceful: the pod stays until kubelet confirms
        else:
            deleted = self.world.delete(resource.plural, target.namespace, target.name)
            if resource.plural == "pods":
                cni.after_pod_deleted(self.world, deleted)
        if resource.plural in RETURNS_DELETED_OBJECT:
            return _json(deleted)
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": target.name,
                    "group": resource.group,
                    "kind": resource.plural,
                    "uid": deleted["metadata"]["uid"],
                },
            }
        )

    def _admit(self, resource: Resource, obj: Obj, current: Obj | None) -> None:
        """Defaults and allocations the real API server adds on write."""
        if resource.plural == "services":
            admit_service(self.world, obj, current)
        elif current is None and resource.plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif current is None and resource.plural == "namespaces":
            obj.setdefault("status", {}).setdefault("phase", "Active")


# --- middleware -------------------------------------------------------------------------------


def _faults_middleware(faults: Faults) -> Middleware:
    """The `exec` knobs for pod exec, the `kube` knobs for everything else."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        server = "exec" if _EXEC_PATH.match(request.path) else "kube"
        failed = await faults.apply(server, request)
        if failed is None:
            response = await handler(request)
            if server == "kube":
                body = response.body if isinstance(response, web.Response) else None
                faults.kube.count(
                    _resource_of(request.path),
                    len(body) if isinstance(body, bytes) else 0,
                    watch=_is_watch(request),
                )
            return response
        if failed.status == 429:  # a Kubernetes client expects a Status, not Slack's body
            error = ApiError(
                429,
                "TooManyRequests",
                "simulated rate limit: retry later",
                {"retryAfterSeconds": int(failed.headers.get("Retry-After", "1"))},
            )
            response = _status_response(error)
            response.headers["Retry-After"] = failed.headers.get("Retry-After", "1")
            return response
        return failed

    return middleware


def _resource_of(path: str) -> str:
    """The resource plural a request is about, for the per-resource counters."""
    try:
        target = parse_target(path) if path.startswith(("/api/", "/apis/")) else None
    except ApiError:
        return "unknown"
    if target is None or isinstance(target, str) or target.resource is None:
        return "discovery"
    return target.resource.plural


def _auth_middleware(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(sent, expected):
            return _status_response(ApiError(401, "Unauthorized", "Unauthorized"))
        return await handler(request)

    return middleware


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`ApiError` and aiohttp's own 404/405/413 become `Status` bodies, as clients expect."""
    try:
        return await handler(request)
    except ApiError as error:
        return _status_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}.get(
            exc.status, "BadRequest"
        )
        message = (
            "the server could not find the requested resource"
            if exc.status == 404
            else exc.text or exc.reason
        )
        return _status_response(ApiError(exc.status, reason, message))


def build_app(world: World, faults: Faults, token: str) -> web.Application:
    """The API server's aiohttp app; also starts the load-balancer controller on `world`."""
    LoadBalancerController(world).install()
    api = KubeApi(world, faults.kube)
    app = web.Application(
        middlewares=[_faults_middleware(faults), _auth_middleware(token), _errors_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    # The Python client asks for /version/ and /apis/ with a trailing slash.
    app.router.add_get("/version", api.version)
    app.router.add_get("/version/", api.version)
    app.router.add_get("/api", api.core_versions)
    app.router.add_get("/apis", api.groups)
    app.router.add_get("/apis/", api.groups)
    app.router.add_get("/openapi/v2", api.openapi_v2)
    app.router.add_get("/openapi/v3", api.openapi_v3)
    app.router.add_get("/openapi/v3/{path:.+}", api.openapi_v3)
    for probe in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(probe, api.healthz)
    app.router.add_route("*", "/api/{tail:.*}", api.dispatch)
    app.router.add_route("*", "/apis/{tail:.*}", api.dispatch)
    return app
