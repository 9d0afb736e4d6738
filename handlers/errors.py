"""The project's own errors: what went wrong, whether retrying can help, and the exit code."""

from __future__ import annotations


class WinpodError(Exception):
    """Base of every error winpod reports to a person; the message is safe to show."""

    exit_code = 3
    retryable = False


class BadInput(WinpodError):
    """The request itself is wrong (malformed name, unknown id): retrying will not help."""

    exit_code = 2


class NotFound(BadInput):
    """The named object does not exist in the cluster."""


class Unreachable(WinpodError):
    """The cluster, a node or a pod could not be reached: retrying later may help."""

    retryable = True


class TimedOut(Unreachable):
    """The peer accepted the request but did not answer in time."""


class ExecFailed(Unreachable):
    """The pod's runtime could not start the command (a wedged HCS, a missing binary): nothing
    ran in the container. The message quotes the runtime's own words."""


class Refused(WinpodError):
    """The peer answered but refused: bad credentials or missing permission."""


class Conflict(WinpodError):
    """Someone else changed the object first (a stale resourceVersion): re-read and retry."""

    retryable = True


class ChannelLost(Unreachable):
    """The connection broke after a command had started on the node: it may have run."""


class OutcomeUnknown(WinpodError):
    """A remediation started on the node, and its result could not be read: it may have
    succeeded or failed. The message says what is known; look at the node before retrying."""


class Expired(WinpodError):
    """The API server no longer has the history asked for (410 Gone): list again."""

    retryable = True
