"""The node-PowerShell adapter that needs nothing but the Kubernetes API (SPEC §9): each script
runs in a short-lived HostProcess pod on the node, its result read from the pod's log.

The pod is the script's own detached run: a script that restarts kubelet cuts every log or exec
stream, yet the container keeps running on the host. So winpod waits for the pod to finish,
bounded by `node.script_timeout` (reads that fail while kubelet is away are retried), and reads
the log then. A pod that started and never reported back is `OutcomeUnknown`, never a success.
Whatever happened, the pod is deleted; leftovers are reaped (`reap_leftovers`).
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from handlers.errors import (
    BadInput,
    NotFound,
    OutcomeUnknown,
    Refused,
    TimedOut,
    Unreachable,
    WinpodError,
)
from handlers.i18n import _
from handlers.node_scripts import for_the_wire, script_name_of
from handlers.transports import (
    Cluster,
    CommandResult,
    KubeObject,
    NodeTarget,
    PodLogs,
    powershell_output,
)

MANAGED_BY = "app.kubernetes.io/managed-by"
NODE_LABEL = "winpod.io/node"
SCRIPT_LABEL = "winpod.io/script"
LEFTOVER_SELECTOR = f"{MANAGED_BY}=winpod,{SCRIPT_LABEL}"
CONTAINER = "script"
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
# Waiting reasons that mean the image will not arrive without a change of `node.hostprocess_image`.
_IMAGE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
POLL_S = 0.2
_CLIXML_MARKER = "#< CLIXML"
_CLIXML = re.compile(r"#< CLIXML\s*|<Objs\b.*?</Objs>", re.S)


def pod_manifest(
    name: str, namespace: str, node: str, image: str, script: str, deadline_s: int
) -> KubeObject:
    """The pod that runs `script` on `node` as SYSTEM, in the host's network and file system."""
    encoded = base64.b64encode(for_the_wire(script).encode("utf-16-le")).decode("ascii")
    labels = {MANAGED_BY: "winpod", SCRIPT_LABEL: script_name_of(script) or "unnamed"}
    if _LABEL_VALUE.fullmatch(node):  # node names may be longer than a label value
        labels[NODE_LABEL] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,  # bound at once: no scheduler, whatever the node's taints say
            "hostNetwork": True,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_s,
            "automountServiceAccountToken": False,
            "securityContext": {
                "windowsOptions": {"hostProcess": True, "runAsUserName": "NT AUTHORITY\\SYSTEM"}
            },
            # Windows pools are tainted (os=windows:NoSchedule and the like) and a node under
            # repair may be too (NoExecute would evict the script mid-run).
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {"name": CONTAINER, "image": image, "command": ["powershell.exe", *_FLAGS, encoded]}
            ],
        },
    }


class HostProcessShell:
    """`NodeShell` through the Kubernetes API: one HostProcess pod per script."""

    detached = True

    def __init__(
        self,
        cluster: Cluster,
        logs: PodLogs,
        namespace: str,
        image: str,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cluster, self._logs = cluster, logs
        self.namespace, self.image = namespace, image
        self._poll_s, self._clock, self._sleep = poll_s, clock, sleep
        self._windows: dict[str, bool] = {}  # node name -> whether it is a Windows node

    def describe(self, target: NodeTarget) -> str:
        return _("in a HostProcess pod on {node}").format(node=target.name)

    def run_script(self, target: NodeTarget, script: str, timeout_s: float) -> CommandResult:
        self._require_windows(target.name)
        script_name = script_name_of(script) or "script"
        name = f"winpod-{script_name}-{secrets.token_hex(4)}"[:63]
        body = pod_manifest(
            name, self.namespace, target.name, self.image, script, max(1, int(timeout_s))
        )
        self._create(body)
        try:
            return self._await_result(name, script_name, target.name, timeout_s)
        finally:
            with contextlib.suppress(WinpodError):
                self._cluster.delete("Pod", name, self.namespace)

    # --- steps --------------------------------------------------------------------------
    def _require_windows(self, node: str) -> None:
        if node not in self._windows:
            found = self._cluster.get("Node", node)
            info = (found.get("status") or {}).get("nodeInfo") or {}
            labels = (found.get("metadata") or {}).get("labels") or {}
            self._windows[node] = (
                labels.get("kubernetes.io/os") == "windows"
                or info.get("operatingSystem") == "windows"
            )
        if not self._windows[node]:
            raise BadInput(
                _(
                    "node {node} is not a Windows node: winpod's node scripts are PowerShell and "
                    "run only in HostProcess pods on Windows nodes"
                ).format(node=node)
            )

    def _create(self, body: KubeObject) -> None:
        try:
            self._cluster.create("Pod", body, self.namespace)
        except Refused as exc:
            raise refusal(str(exc), self.namespace) from None

    def _await_result(self, name: str, script: str, node: str, timeout_s: float) -> CommandResult:
        deadline = self._clock() + timeout_s
        started, last_error = False, ""
        while True:
            try:
                pod = self._cluster.get("Pod", name, self.namespace)
            except NotFound:
                raise self._lost(
                    script, node, started, _("the pod was deleted by someone else")
                ) from None
            except Unreachable as exc:  # the API server itself blipped: try again
                last_error, pod = str(exc), {}
            status = pod.get("status") or {}
            phase = status.get("phase")
            waiting = _waiting(pod)
            if waiting and waiting.get("reason") in _IMAGE_REASONS:
                raise Refused(
                    _(
                        "the HostProcess image {image} cannot be pulled on node {node} ({reason}: "
                        "{message}); set node.hostprocess_image to an image the node can pull"
                    ).format(
                        image=self.image,
                        node=node,
                        reason=waiting.get("reason"),
                        message=waiting.get("message") or _("no message"),
                    )
                )
            if phase in ("Succeeded", "Failed"):
                return self._result(pod, name, script, node, deadline)
            # kubelet sets startTime when it takes the pod on, before the container starts: a
            # script that stops kubelet may end before "Running" was ever reported
            started = started or phase == "Running" or bool(status.get("startTime"))
            if self._clock() >= deadline:
                if started:
                    raise self._lost(
                        script,
                        node,
                        True,
                        _("no result within {seconds} s").format(seconds=f"{timeout_s:.0f}"),
                    )
                why = self._why_pending(pod, name) or last_error or "Pending"
                raise TimedOut(
                    _(
                        "the HostProcess pod for {script} never started on node {node} within "
                        "{seconds} s ({why}); nothing ran on the node"
                    ).format(script=script, node=node, seconds=f"{timeout_s:.0f}", why=why)
                )
            self._sleep(self._poll_s)

    def _result(
        self, pod: KubeObject, name: str, script: str, node: str, deadline: float
    ) -> CommandResult:
        terminated = _terminated(pod)
        if terminated is None:  # a Failed pod whose container never ran (evicted, deadline)
            reason = (pod.get("status") or {}).get("reason") or "Failed"
            message = (pod.get("status") or {}).get("message") or ""
            raise self._lost(
                script,
                node,
                True,
                _("the pod ended as {reason} {message}")
                .format(reason=reason, message=message)
                .strip(),
            )
        exit_code = int(terminated.get("exitCode") or 0)
        while True:
            try:
                log = self._logs.pod_log(name, self.namespace)
                break
            except Unreachable as exc:  # kubelet not answering yet: its log waits on the node
                if self._clock() >= deadline:
                    raise OutcomeUnknown(
                        _(
                            "outcome unknown: {script} ended on node {node} with exit code "
                            "{code}, but its output could not be read ({error})"
                        ).format(script=script, node=node, code=exit_code, error=exc)
                    ) from None
                self._sleep(self._poll_s)
        stdout, stderr = split_log(log)
        return CommandResult(stdout, stderr, exit_code)

    def _lost(self, script: str, node: str, started: bool, why: str) -> WinpodError:
        if not started:
            return Unreachable(
                _("{script} did not run on node {node}: {why}").format(
                    script=script, node=node, why=why
                )
            )
        return OutcomeUnknown(
            _(
                "outcome unknown: {script} was started in a HostProcess pod on node {node}, and "
                "its result could not be read: {why}; look at the node before retrying"
            ).format(script=script, node=node, why=why)
        )

    def _why_pending(self, pod: KubeObject, name: str) -> str:
        """What the events and the pod's conditions say about a pod that did not start."""
        with contextlib.suppress(WinpodError):
            events = self._cluster.list(
                "Event", namespace=self.namespace, field_selector=f"involvedObject.name={name}"
            )
            for event in reversed(events):
                if event.get("type") == "Warning":
                    return _("event {reason}: {message}").format(
                        reason=event.get("reason"), message=event.get("message")
                    )
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("status") == "False" and condition.get("message"):
                return str(condition["message"])
        return ""


def refusal(message: str, namespace: str) -> Refused:
    """A 403 on creating the pod, with the fix: Pod Security admission, or missing RBAC."""
    if "PodSecurity" in message:
        return Refused(
            _(
                "namespace {namespace} does not admit HostProcess pods under Pod Security "
                "admission; label it: kubectl label namespace {namespace} {label}=privileged "
                "--overwrite ({message})"
            ).format(namespace=namespace, label=POD_SECURITY_LABEL, message=message)
        )
    return Refused(
        _(
            "winpod's ServiceAccount may not run HostProcess pods in namespace {namespace}: "
            "grant pods create, get, list, delete and pods/log get there (deploy/rbac.yaml) "
            "({message})"
        ).format(namespace=namespace, message=message)
    )


def split_log(log: str) -> tuple[str, str]:
    """The log interleaves both streams; PowerShell's CLIXML (progress and error records on
    stderr) is taken out of it, its error texts kept apart as stderr."""
    if _CLIXML_MARKER not in log:
        return log, ""
    records = "".join(_CLIXML.findall(log))
    return _CLIXML.sub("\n", log), powershell_output.strip_clixml(records)


def reap_leftovers(
    cluster: Cluster, namespace: str, older_than: timedelta, now: datetime | None = None
) -> list[str]:
    """Delete winpod's script pods older than `older_than` (a crash or restart left them);
    returns their names."""
    now = now or datetime.now(UTC)
    reaped = []
    for pod in cluster.list("Pod", namespace=namespace, label_selector=LEFTOVER_SELECTOR):
        meta = pod.get("metadata") or {}
        created = _parse_time(str(meta.get("creationTimestamp") or ""))
        if created is None or now - created < older_than:
            continue
        with contextlib.suppress(NotFound):
            cluster.delete("Pod", str(meta["name"]), namespace)
            reaped.append(str(meta["name"]))
    return reaped


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _container_status(pod: KubeObject) -> KubeObject:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), {})


def _waiting(pod: KubeObject) -> KubeObject | None:
    waiting = (_container_status(pod).get("state") or {}).get("waiting")
    return waiting if isinstance(waiting, dict) else None


def _terminated(pod: KubeObject) -> KubeObject | None:
    terminated = (_container_status(pod).get("state") or {}).get("terminated")
    return terminated if isinstance(terminated, dict) else None
