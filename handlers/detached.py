"""Node scripts that can cut their own connection run detached over WinRM: uploaded in pieces,
started as a scheduled task on the node, their result read back over fresh connections (a
HostProcess pod needs none of this: the pod is detached from winpod's connection by itself).

A script that resets the node's pod network can blip the WinRM connection that runs it. Run
directly, winpod would then know nothing of what happened. Detached, the script completes on
the node and writes its output to a file; winpod polls for it, reconnecting until
`result_timeout_s`. A result that cannot be read is never reported as success or failure:
`OutcomeUnknown` says what is known (started or not, the last error seen).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Any

from handlers import node_scripts
from handlers.errors import ChannelLost, OutcomeUnknown, Unreachable, WinpodError
from handlers.i18n import _
from handlers.transports import CommandResult, NodeShell, NodeTarget, powershell_output

# A base64 piece per upload command; the encoded command then stays well under 8,191.
CHUNK = 2000
# How long one upload, start or poll may take before it counts as lost.
STEP_TIMEOUT_S = 10.0
# How long to keep reconnecting for the result: a script's own waits plus a network blip.
RESULT_TIMEOUT_S = 180.0
POLL_S = 1.0


def run_detached(
    shell: NodeShell,
    target: NodeTarget,
    name: str,
    script: str,
    result_timeout_s: float = RESULT_TIMEOUT_S,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CommandResult:
    """Run `script` (winpod script `name`) detached on `target` and return what it printed."""
    address = target.address
    task_id = f"{name}-{secrets.token_hex(6)}"
    payload = base64.b64encode(script.encode("utf-8")).decode("ascii")
    for start in range(0, len(payload), CHUNK):
        # Before the start nothing has changed on the node: a failure here is a plain error.
        _step(shell, target, "detached-upload", Id=task_id, Chunk=payload[start : start + CHUNK])
    lost: str | None = None
    try:
        started = _step(shell, target, "detached-start", Id=task_id)
    except ChannelLost as exc:
        lost = str(exc)  # it may have started: look for its result
    else:
        if not started.get("started"):
            raise WinpodError(
                _("could not start {script} on {address}: {error}").format(
                    script=name, address=address, error=started.get("error") or _("no reason given")
                )
            )
    deadline = clock() + result_timeout_s
    state = "started" if lost is None else "perhaps started"
    while True:
        try:
            result = _step(shell, target, "detached-result", Id=task_id)
        except Unreachable as exc:
            lost = str(exc)
        else:
            state = str(result.get("state") or "unknown")
            if state == "done":
                return CommandResult(
                    str(result.get("stdout") or ""),
                    powershell_output.strip_clixml(str(result.get("stderr") or "")),
                    int(result.get("exitCode") or 0),
                )
        if clock() >= deadline:
            said = (
                _(
                    "outcome unknown: {script} was {state} on {address} as scheduled task "
                    "winpod-{task}, and no result could be read within {seconds} s (last error: "
                    "{error}); its result is in C:\\ProgramData\\winpod\\{task}.out on the node"
                )
                if lost
                else _(
                    "outcome unknown: {script} was {state} on {address} as scheduled task "
                    "winpod-{task}, and no result could be read within {seconds} s; its result is "
                    "in C:\\ProgramData\\winpod\\{task}.out on the node"
                )
            )
            raise OutcomeUnknown(
                said.format(
                    script=name,
                    state=state,
                    address=address,
                    task=task_id,
                    seconds=f"{result_timeout_s:.0f}",
                    error=lost,
                )
            )
        sleep(poll_s)


def _step(shell: NodeShell, target: NodeTarget, name: str, **params: str) -> dict[str, Any]:
    script = node_scripts.render(name, **params)
    return node_scripts.parse_output(name, shell.run_script(target, script, STEP_TIMEOUT_S))
