"""The control protocol of a logical host, defined once: every request, its fields and
who may send it.

One request per connection: one JSON object on one line in, one JSON object on one
line out (``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {...}}``).
The client (:mod:`ajs3.service.client`) checks what it sends against :data:`OPS`, the
daemon checks what it reads against the same table before anything else happens, and
tests/unit/test_protocol.py fails when the daemon's handlers or the client's methods
and this table disagree. docs/control.md describes the protocol for people.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ajs3.errors import AjsError, Code

#: The largest request line the daemon reads (a `define` carries whole YAML files).
MAX_REQUEST = 16 * 1024 * 1024
#: A request must be read in full within this many seconds of its connection being
#: accepted: a deadline per request, not per read, so a client sending a byte now and
#: then cannot hold its connection open.
REQUEST_DEADLINE = 10.0
#: The longest text field other than file contents (unit paths, keys, names).
MAX_TEXT = 4096
#: The most definition files one `define` may carry.
MAX_FILES = 10_000
#: How an idempotency key looks (the client makes a uuid4 hex).
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
#: The envelope field a client acting for someone else (``ajs3 web``) sends with any
#: request: who it acts for. It is not a field of any :class:`Op`: the daemon checks
#: the peer's own role as always and keeps the name in the audit row's args beside
#: the peer's uid and user (docs/control.md).
ON_BEHALF = "on_behalf"
#: How an on-behalf name looks: a word, an address or a ``kind:name`` (no spaces).
ON_BEHALF_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")


class Access(StrEnum):
    """Who may send a request (see ajs3.service.access and docs/control.md)."""

    #: anyone who can reach the socket: the liveness probe only
    PUBLIC = "public"
    #: viewers, operators, root and the daemon's own user
    READ = "read"
    #: operators, root and the daemon's own user; audited
    CHANGE = "change"
    #: root and the daemon's own user only (stopping the logical host is the cluster's
    #: or its administrator's business); audited
    ADMIN = "admin"

    @property
    def changes_state(self) -> bool:
        return self in (Access.CHANGE, Access.ADMIN)


class Kind(StrEnum):
    """The JSON type of a field's value."""

    TEXT = "text"
    INT = "int"
    #: an int or a finite float
    NUMBER = "number"
    BOOL = "bool"
    #: a list of texts
    TEXTS = "texts"
    #: a list of {"name": text, "text": text}: definition files and their contents
    FILES = "files"


@dataclass(frozen=True)
class Field:
    """One field of a request. An optional field may be absent or null."""

    name: str
    kind: Kind
    required: bool = False
    #: the values a TEXT field may take (None: any text)
    choices: tuple[str, ...] | None = None
    #: a NUMBER or INT must be at least this (None: no bound)
    low: float | None = None
    #: a NUMBER or INT must be at most this (None: no bound)
    high: float | None = None
    #: a TEXT must match this pattern
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Op:
    """One request the daemon handles."""

    name: str
    access: Access
    fields: tuple[Field, ...]
    summary: str
    #: the request carries a ``key``: a retry with the same key returns the first
    #: answer instead of doing it again
    idempotent: bool = False

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


_RUN = Field("run", Kind.INT, low=1)
_UNIT = Field("unit", Kind.TEXT, required=True)
_MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z
#: why an operator does it: kept in the journal with who and when
_REASON = Field("reason", Kind.TEXT)

OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("ping", Access.PUBLIC, (), "liveness of the daemon and its loop"),
        Op("why", Access.READ, (_RUN, _UNIT), "the readiness rules that hold a unit back"),
        Op(
            "show",
            Access.READ,
            (Field("target", Kind.TEXT), _RUN, Field("all", Kind.BOOL)),
            "what `ajs3 show --json` prints: the jobnets and runs, or one run's units",
        ),
        Op(
            "events",
            Access.READ,
            (_RUN, _UNIT),
            "a unit's status changes in a run (times, attempts, reasons) and its host",
        ),
        Op(
            "log",
            Access.READ,
            (
                Field("target", Kind.TEXT, required=True),
                _RUN,
                Field("stderr", Kind.BOOL),
                #: a byte offset: the output from there on (at most a MiB), to follow it
                Field("from", Kind.INT, low=0),
            ),
            "the last MiB of a unit's or a run id's standard output (or error), or the "
            "bytes from an offset on, and whether its job has ended",
        ),
        Op(
            "define",
            Access.CHANGE,
            (
                Field("files", Kind.FILES, required=True),
                Field("sources", Kind.TEXTS),
            ),
            "validate definition files with the loader and apply them as one new version",
        ),
        Op(
            "entry",
            Access.CHANGE,
            (
                Field("jobnet", Kind.TEXT, required=True),
                Field("at", Kind.NUMBER, low=0.0, high=_MAX_TIME),
                Field("hold", Kind.BOOL),
                Field("key", Kind.TEXT, required=True, pattern=KEY_RE),
                #: the run's values, NAME=VALUE each (ajs3.engine.runvars)
                Field("vars", Kind.TEXTS),
            ),
            "register a run of a root jobnet",
            idempotent=True,
        ),
        Op("hold", Access.CHANGE, (_RUN, _UNIT), "hold a unit that has not started"),
        Op(
            "release",
            Access.CHANGE,
            (
                _RUN,
                _UNIT,
                Field("as", Kind.TEXT, choices=("normal", "abnormal")),
            ),
            "release a held unit, or decide a unit of unknown end",
        ),
        Op(
            "kill",
            Access.CHANGE,
            (
                _RUN,
                Field("unit", Kind.TEXT),
                Field("jobnet", Kind.TEXT),
            ),
            "kill a running job or every job of a jobnet run",
        ),
        Op(
            "rerun",
            Access.CHANGE,
            (
                _RUN,
                Field("jobnet", Kind.TEXT),
                Field("mode", Kind.TEXT, required=True, choices=("failed", "from", "only")),
                Field("unit", Kind.TEXT),
            ),
            "rerun a jobnet run from its failed units, from a unit, or one unit",
        ),
        Op("purge", Access.CHANGE, (), "start a retention purge round now (docs/retention.md)"),
        Op(
            "purge_status",
            Access.READ,
            (Field("plan", Kind.BOOL),),
            "the retention purge's rounds; with plan, what a purge would remove now",
        ),
        Op(
            "suspend",
            Access.CHANGE,
            (Field("jobnet", Kind.TEXT, required=True), _REASON),
            "suspend a root jobnet: no new scheduled run of it starts (JP1's ajssuspend)",
        ),
        Op(
            "resume",
            Access.CHANGE,
            (Field("jobnet", Kind.TEXT, required=True), _REASON),
            "end a suspension; what fell due meanwhile follows the catch-up policy",
        ),
        Op(
            "plan_change",
            Access.CHANGE,
            (
                Field("jobnet", Kind.TEXT, required=True),
                Field("action", Kind.TEXT, required=True, choices=("skip", "move", "add")),
                #: ISO 8601; without an offset, in the jobnet's time zone
                Field("when", Kind.TEXT, required=True),
                Field("to", Kind.TEXT),
                _REASON,
            ),
            "skip, move or add one scheduled run of a root jobnet (JP1's ajsplan)",
        ),
        Op(
            "chgstat",
            Access.CHANGE,
            (
                _RUN,
                _UNIT,
                #: a status value (ajs3.model.Status); one chgstat may not set is AJS3-E405
                Field("status", Kind.TEXT, required=True),
                Field("reason", Kind.TEXT, required=True, pattern=re.compile(r"\s*\S")),
            ),
            "set a unit's status by hand, with a reason, within the transition table",
        ),
        Op(
            "reload",
            Access.CHANGE,
            (
                Field(
                    "log_level",
                    Kind.TEXT,
                    required=True,
                    choices=("debug", "info", "warning", "error"),
                ),
            ),
            "change the daemon's log level",
        ),
        Op(
            "notify_test",
            Access.CHANGE,
            (Field("route", Kind.TEXT, required=True),),
            "send a test event on one notification route",
        ),
        Op(
            "notify_status",
            Access.READ,
            (),
            "per notification route: events waiting, failures in a row, last error",
        ),
        Op(
            "plan",
            Access.READ,
            (
                Field("jobnet", Kind.TEXT),
                Field("from", Kind.NUMBER, required=True, low=0.0, high=_MAX_TIME),
                Field("to", Kind.NUMBER, required=True, low=0.0, high=_MAX_TIME),
            ),
            "what `ajs3 plan --from --to` prints: the runs due in a period, with the plan "
            "changes and suspensions that touch them",
        ),
        Op(
            "structure",
            Access.READ,
            (Field("jobnet", Kind.TEXT, required=True),),
            "a root jobnet's units as a tree: kinds, relations, recovery and hold marks "
            "(no commands), for the console's graph",
        ),
        Op(
            "timeline",
            Access.READ,
            (
                Field("jobnet", Kind.TEXT),
                Field("from", Kind.NUMBER, required=True, low=0.0, high=_MAX_TIME),
                Field("to", Kind.NUMBER, required=True, low=0.0, high=_MAX_TIME),
            ),
            "the jobnet runs scheduled or started in a period: times, status, delays",
        ),
        Op(
            "changes",
            Access.READ,
            (),
            "marks that move whenever a status, a run, an operator's change or the "
            "definitions change: what the console's live updates poll",
        ),
        Op(
            "metrics",
            Access.READ,
            (),
            "the figures `ajs3 web` exports at /metrics, read from the journal and the loop",
        ),
        Op(
            "stop",
            Access.ADMIN,
            (
                Field("jobs", Kind.TEXT, choices=("leave", "wait", "kill")),
                Field("timeout", Kind.NUMBER, low=0.0, high=86_400.0),
            ),
            "stop the daemon; what to do with running jobs",
        ),
    )
}


class BadRequest(AjsError, ValueError):
    """A request that is not a valid request of :data:`OPS` (AJS3-E310)."""

    code = Code.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(
            f"bad request: {message}",
            hint="see docs/control.md for the requests "
            "and their fields; the ajs3 command always sends valid ones",
        )


@dataclass(frozen=True)
class Request:
    """A request checked against its :class:`Op`: every declared field is present
    (None for an absent optional one), no other field is."""

    op: Op
    fields: dict[str, Any]
    #: who a client acting for someone else says it acts for (:data:`ON_BEHALF`)
    on_behalf: str | None = None

    def to_line(self) -> bytes:
        message = {"op": self.op.name, **{k: v for k, v in self.fields.items() if v is not None}}
        if self.on_behalf is not None:
            message[ON_BEHALF] = self.on_behalf
        return json.dumps(message, ensure_ascii=True, allow_nan=False).encode() + b"\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode(line: bytes) -> Any:
    """The JSON value of one request line (any JSON value), or BadRequest."""
    if len(line) > MAX_REQUEST:
        raise BadRequest(f"larger than {MAX_REQUEST} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"not JSON: {str(exc)[:200]}") from None


def check(message: Any) -> Request:
    """The request ``message`` (a decoded JSON value) if it is a valid one, or BadRequest."""
    if not isinstance(message, dict):
        raise BadRequest(f"a request is a JSON object, not {_json_type(message)}")
    name = message.get("op")
    if not isinstance(name, str):
        raise BadRequest("the request has no text 'op'")
    op = OPS.get(name)
    if op is None:
        raise BadRequest(f"unknown operation {name[:64]!r} (known: {', '.join(sorted(OPS))})")
    on_behalf = message.get(ON_BEHALF)
    if on_behalf is not None and (
        not isinstance(on_behalf, str) or not ON_BEHALF_RE.match(on_behalf)
    ):
        raise BadRequest(f"{name}: {ON_BEHALF!r} must match {ON_BEHALF_RE.pattern}")
    unknown = sorted(
        str(k)[:64] for k in message if k not in ("op", ON_BEHALF) and k not in op.field_names
    )
    if unknown:
        raise BadRequest(f"{name}: unknown field(s) {unknown} (known: {list(op.field_names)})")
    fields: dict[str, Any] = {}
    for f in op.fields:
        value = message.get(f.name)
        if value is None:
            if f.required:
                raise BadRequest(f"{name}: field {f.name!r} is required")
            fields[f.name] = None
            continue
        fields[f.name] = _value(name, f, value)
    return Request(op, fields, on_behalf)


def build(name: str, **values: Any) -> Request:
    """A request built by a client; the same checks as the daemon's (BadRequest)."""
    return check({"op": name, **values})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _value(op: str, f: Field, value: Any) -> Any:
    where = f"{op}: field {f.name!r}"
    if f.kind is Kind.TEXT:
        return _text(where, f, value)
    if f.kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise BadRequest(f"{where} must be true or false, not {_json_type(value)}")
        return value
    if f.kind in (Kind.INT, Kind.NUMBER):
        ok = isinstance(value, int) or (f.kind is Kind.NUMBER and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            want = "an integer" if f.kind is Kind.INT else "a number"
            raise BadRequest(f"{where} must be {want}, not {_json_type(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{where} must be finite")
        if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
            raise BadRequest(f"{where} must be between {f.low} and {f.high}")
        return float(value) if f.kind is Kind.NUMBER else value
    if f.kind is Kind.TEXTS:
        if not isinstance(value, list) or len(value) > MAX_FILES:
            raise BadRequest(f"{where} must be a list of at most {MAX_FILES} strings")
        return [_text(where, f, item) for item in value]
    return _files(where, value)


def _text(where: str, f: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, not {_json_type(value)}")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise BadRequest(f"{where} must be printable text of at most {MAX_TEXT} characters")
    if f.choices is not None and value not in f.choices:
        raise BadRequest(f"{where} must be one of {list(f.choices)}, not {value[:64]!r}")
    if f.pattern is not None and not f.pattern.match(value):
        raise BadRequest(f"{where} does not match {f.pattern.pattern}")
    return value


def _files(where: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise BadRequest(f"{where} must be a list of at most {MAX_FILES} files")
    files = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "text"}:
            raise BadRequest(f"{where}: each file is an object with 'name' and 'text'")
        name, text = item["name"], item["text"]
        if not isinstance(name, str) or not name or len(name) > MAX_TEXT or not name.isprintable():
            raise BadRequest(f"{where}: a file's name must be printable text")
        if not isinstance(text, str) or not _utf8(text):
            raise BadRequest(f"{where}: the text of {name[:200]!r} must be a UTF-8 string")
        files.append({"name": name, "text": text})
    return files


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate, sent as a JSON escape
    return True


def answer_ok(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result}


def answer_error(exc: AjsError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


def encode_answer(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, ensure_ascii=True, default=str).encode() + b"\n"


def handler_arg(field: str) -> str:
    """The keyword of a handler for a protocol field (``as`` is ``as_``)."""
    return field + "_" if keyword.iskeyword(field) else field


def audit_args(req: Request) -> dict[str, Any]:
    """What the audit keeps of a request's fields: not the key (a column of its own),
    and of definition files their names, sizes and digests (the journal keeps the
    definitions themselves)."""
    args = {k: v for k, v in req.fields.items() if k != "key"}
    if req.on_behalf is not None:
        args[ON_BEHALF] = req.on_behalf
    if req.op.name == "define":
        args["files"] = [
            {
                "name": f["name"],
                "bytes": len(f["text"].encode()),
                "sha256": hashlib.sha256(f["text"].encode()).hexdigest(),
            }
            for f in args["files"]
        ]
    return args
