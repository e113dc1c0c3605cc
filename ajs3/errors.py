"""The one root exception of ajs3 and its stable error codes.

Every error a user can meet is an :class:`AjsError` with a code such as
``AJS3-E101``. Codes never change meaning once released, so people can search for
them and scripts can match them. The CLI turns these into messages and exit codes
in one place (``ajs3.cli.exits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    """Stable error codes. The value is what users see."""

    # definitions (E1xx)
    YAML_SYNTAX = "AJS3-E101"
    UNKNOWN_KEY = "AJS3-E102"
    WRONG_TYPE = "AJS3-E103"
    MISSING_KEY = "AJS3-E104"
    DUPLICATE_NAME = "AJS3-E105"
    UNKNOWN_NAME = "AJS3-E106"
    CYCLE = "AJS3-E107"
    BAD_VALUE = "AJS3-E108"
    BAD_NAME = "AJS3-E109"
    DEFINITION_FILE = "AJS3-E110"
    JP1_SYNTAX = "AJS3-E111"
    JP1_UNMAPPED = "AJS3-E112"
    #: an input beyond a parser's bounds (size, nesting depth, count)
    INPUT_LIMIT = "AJS3-E113"
    #: a definition or settings file that a user other than its owner may write
    UNSAFE_FILE = "AJS3-E114"
    #: a YAML tag (``!!python/...``, ``!foo``) on any node: refused, never ignored
    YAML_TAG = "AJS3-E115"
    #: a jobnet connector waits for a jobnet that is not defined
    CONNECTOR_TARGET_UNKNOWN = "AJS3-E120"
    #: a jobnet connector waits for a unit that is not a root jobnet
    CONNECTOR_TARGET_NOT_ROOT = "AJS3-E121"
    #: root jobnets that wait for each other through jobnet connectors
    CONNECTOR_CYCLE = "AJS3-E122"
    #: a file watch's path pattern that can not be watched (relative, a pattern in
    #: the directory part, ...)
    BAD_WATCH_PATTERN = "AJS3-E130"
    #: a file watch's condition that is not created / changed / deleted, or an option
    #: that does not go with its conditions
    BAD_WATCH_CONDITION = "AJS3-E131"
    #: a start condition where there can be none (not a root jobnet) or with a bad
    #: valid range (count limit, from/until)
    BAD_START_CONDITION = "AJS3-E132"
    #: a job's ``host:`` names no execution host or host group of the settings
    UNKNOWN_EXEC_HOST = "AJS3-E150"
    # data directory and journal (E2xx)
    DATADIR_MISSING = "AJS3-E201"
    DATADIR_NFS = "AJS3-E202"
    JOURNAL_TOO_NEW = "AJS3-E203"
    JOURNAL_CORRUPT = "AJS3-E204"
    DATADIR_ACCESS = "AJS3-E205"
    SETTINGS = "AJS3-E206"
    #: the data directory holds a logical host's files but no sound journal
    JOURNAL_MISSING = "AJS3-E207"
    #: the file system of the data directory is full
    DISK_FULL = "AJS3-E208"
    #: the data directory disappeared under a running daemon
    DATADIR_GONE = "AJS3-E209"
    #: the run directory is not owned by the daemon's user or others may write it
    RUNDIR_UNSAFE = "AJS3-E210"
    #: a path in the data or run directory is a symbolic link where a file must be
    UNSAFE_PATH = "AJS3-E211"
    # service (E3xx)
    LOCKED = "AJS3-E301"
    NOT_RUNNING = "AJS3-E302"
    START_FAILED = "AJS3-E303"
    CONTROL = "AJS3-E304"
    EPOCH_SUPERSEDED = "AJS3-E305"
    STOP_TIMEOUT = "AJS3-E306"
    ALREADY_RUNNING = "AJS3-E307"
    SUPERVISOR_MISSING = "AJS3-E308"
    #: the peer of the control socket is not allowed to do what it asked
    PERMISSION_DENIED = "AJS3-E309"
    #: a control request that is not a valid request (shape, types, size)
    BAD_REQUEST = "AJS3-E310"
    #: a control request not read in full within its deadline
    REQUEST_TIMEOUT = "AJS3-E311"
    #: the daemon serves its maximum number of connections already
    TOO_MANY_CLIENTS = "AJS3-E312"
    #: a job would run as root and the logical host's settings do not allow it
    ROOT_JOB_REFUSED = "AJS3-E313"
    #: a state-changing request was sent and no answer came: it may or may not have
    #: taken effect (for `entry`, repeating it with the same key is safe)
    OUTCOME_UNKNOWN = "AJS3-E314"
    #: a web request without a valid token or trusted header (HTTP 401)
    WEB_UNAUTHORIZED = "AJS3-E315"
    #: a web client whose role does not allow what it asked (a viewer's action: 403)
    WEB_FORBIDDEN = "AJS3-E316"
    #: a web request for no route, or with a query or body the route cannot read
    WEB_BAD_REQUEST = "AJS3-E317"
    #: `ajs3 web` cannot start: no token configured, address taken, TLS files unusable
    WEB_START = "AJS3-E318"
    #: an execution host cannot be reached over ssh (network, sshd, timeout)
    EXEC_HOST_UNREACHABLE = "AJS3-E330"
    #: an execution host refused the logical host's key or its host key is not known
    EXEC_HOST_AUTH = "AJS3-E331"
    #: an execution host speaks another protocol version than this ajs3
    EXEC_HOST_VERSION = "AJS3-E332"
    #: an execution host refused an epoch lower than the highest it has seen
    EXEC_HOST_EPOCH = "AJS3-E333"
    #: an execution host answered with something that is not the protocol, or refused
    EXEC_HOST_PROTOCOL = "AJS3-E334"
    # operations (E4xx)
    UNKNOWN_JOBNET = "AJS3-E401"
    UNKNOWN_UNIT = "AJS3-E402"
    BAD_STATE = "AJS3-E403"
    ENDED_ABNORMALLY = "AJS3-E404"
    BAD_TRANSITION = "AJS3-E405"
    BAD_ARGUMENT = "AJS3-E406"
    #: a value for a run (`entry --var`, a job's AJS3_VARS_OUT file) with a bad name,
    #: size or text: nothing of it was applied
    BAD_VARIABLE = "AJS3-E407"
    #: a plan change names a time that is not a run of the jobnet's plan, or one in the past
    NOT_IN_PLAN = "AJS3-E408"
    #: `ajs3 notify test` names a route the logical host's settings do not have
    UNKNOWN_ROUTE = "AJS3-E409"
    #: a notification could not be delivered on its route (`ajs3 notify test`)
    NOTIFY_FAILED = "AJS3-E410"
    # internal (E9xx)
    INTERNAL = "AJS3-E901"


class AjsError(Exception):
    """Root of every error a user can meet."""

    code: Code = Code.INTERNAL

    def __init__(self, message: str, *, code: Code | None = None, hint: str = "") -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.code.value}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code.value, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class Problem:
    """One problem found in a definition file."""

    code: Code
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code.value}: {self.message}"


class DefinitionError(AjsError, ValueError):
    """A set of definitions was rejected; carries every problem found at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.code.value))
        first = self.problems[0]
        count = len(self.problems)
        summary = f"{count} problem(s) in definitions; nothing was applied"
        super().__init__(summary, code=first.code, hint="fix every line listed and run again")

    def __str__(self) -> str:
        return "\n".join([super().__str__(), *(str(p) for p in self.problems)])

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["problems"] = [
            {"code": p.code.value, "file": p.file, "line": p.line, "message": p.message}
            for p in self.problems
        ]
        return data


class DataDirError(AjsError, OSError):
    code = Code.DATADIR_MISSING


class JournalError(AjsError):
    code = Code.JOURNAL_CORRUPT


class ServiceError(AjsError, RuntimeError):
    code = Code.CONTROL


class LockedError(ServiceError):
    code = Code.LOCKED


class NotRunningError(ServiceError):
    code = Code.NOT_RUNNING


class EpochSuperseded(ServiceError):
    """A newer owner has started this logical host; this process must stop writing."""

    code = Code.EPOCH_SUPERSEDED


class OperationError(AjsError, LookupError):
    code = Code.BAD_STATE


class TransitionError(AjsError):
    code = Code.BAD_TRANSITION
