"""Event jobs and start conditions: what a file watch looks for, and when a root
jobnet starts by itself each time one fires (JP1's file monitoring job ``flwj`` and
the start condition ``.CONDITION`` of a root jobnet).

The dataclasses are stored with the definitions (``to_dict``/``from_dict`` through
:class:`ajs3.definitions.units.Unit`); the readers check a definition file's
``watch:`` and ``start_condition:`` with coded problems at their lines (AJS3-E130
pattern, E131 condition, E132 start condition). The engine side is
:mod:`ajs3.engine.watches`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from yaml.nodes import Node, ScalarNode

from ajs3.definitions import schema
from ajs3.definitions.nodes import INT, STR, Ctx, Getter, line_of, short, suggest
from ajs3.errors import Code


class FileEvent(StrEnum):
    """What happens to a file that a watch waits for."""

    CREATED = "created"
    """A file matching the pattern appears (or another file takes its name)."""
    CHANGED = "changed"
    """A file known to the watch changes size or modification time."""
    DELETED = "deleted"
    """A file known to the watch disappears."""


#: Characters that make a path element a pattern (fnmatch's).
GLOB_CHARS = frozenset("*?[")
#: The longest pattern (PATH_MAX).
MAX_PATTERN = 4096
#: Event jobs of one start condition (JP1 allows 32).
MAX_WATCHES = 32
#: The largest count limit of a start condition (JP1's ``wc``: 1..999).
MAX_LIMIT = 1_000_000
#: The longest size-stable wait, seconds (a day).
MAX_STABLE = 86_400.0

WATCH_KEYS: tuple[str, ...] = ("path", "condition", "stable_for", "existing")
START_CONDITION_KEYS: tuple[str, ...] = ("watches", "limit", "from", "until")


@dataclass(frozen=True)
class Watch:
    """One file watch: a pattern (a directory, then a name that may hold ``*``, ``?``
    and ``[...]``), the events that count, and how long a file's size and time must
    hold still before it counts as created or changed."""

    path: str
    events: tuple[FileEvent, ...] = (FileEvent.CREATED,)
    #: Seconds a created or changed file must keep its size and time (0: at once).
    stable_for: float = 0.0
    #: A file already there when the watch begins counts as created (JP1's flco=y).
    existing: bool = False
    source: str = ""

    @property
    def directory(self) -> str:
        return self.path.rsplit("/", 1)[0] or "/"

    @property
    def pattern(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def spec(self) -> str:
        """What the journal keeps of it: a watch whose spec changed starts over."""
        events = ",".join(e.value for e in self.events)
        return f"{self.path}|{events}|{int(self.existing)}"

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Watch:
        return Watch(
            path=data["path"],
            events=tuple(FileEvent(e) for e in data["events"]),
            stable_for=float(data["stable_for"]),
            existing=bool(data["existing"]),
            source=data["source"],
        )


@dataclass(frozen=True)
class StartCondition:
    """A root jobnet's start condition: a run starts each time one of its watches
    fires (JP1's ``cond=or``), within its valid range: at most ``limit`` runs, and only
    for events between ``valid_from`` and ``valid_until`` (epoch seconds); None:
    unlimited."""

    watches: tuple[Watch, ...]
    limit: int | None = None
    valid_from: float | None = None
    valid_until: float | None = None
    source: str = ""

    def in_range(self, now: float) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now <= self.valid_until

    @staticmethod
    def from_dict(data: dict[str, Any]) -> StartCondition:
        return StartCondition(
            watches=tuple(Watch.from_dict(w) for w in data["watches"]),
            limit=data["limit"],
            valid_from=data["valid_from"],
            valid_until=data["valid_until"],
            source=data["source"],
        )


def pattern_problem(path: str) -> str | None:
    """Why ``path`` can not be watched, or None."""
    if len(path) > MAX_PATTERN:
        return f"it is longer than {MAX_PATTERN} characters"
    if not path.startswith("/"):
        return "it is not an absolute path; write it from / (e.g. /data/in/*.csv)"
    if path.endswith("/"):
        return "it names a directory; name the files in it (e.g. /data/in/*)"
    directory, _, name = path.rpartition("/")
    if name in (".", ".."):
        return f"its last part {name!r} is not a file name"
    if any(c in GLOB_CHARS for c in directory):
        return (
            "only its last part may be a pattern (*, ?, [...]); the directory must be written out"
        )
    if any(part in (".", "..") for part in directory.split("/")):
        return "it has '.' or '..' in its directory; write the directory out"
    if name.count("[") != name.count("]"):
        return "a '[' has no matching ']' in its last part"
    return None


def read_watch(ctx: Ctx, node: Node, what: str) -> Watch | None:
    """A ``watch:`` mapping (of a file-watch job, or an entry of a start condition)."""
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    ctx.check_keys(fields, WATCH_KEYS, what)
    if "path" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'path'; add e.g. path: /data/in/*.csv")
        return None
    path_node = fields["path"][1]
    path = ctx.text(path_node, f"'path' of {what}")
    ok = path is not None
    if path is not None:
        why = pattern_problem(path)
        if why is not None:
            ctx.report(
                Code.BAD_WATCH_PATTERN,
                path_node,
                f"'path' of {what} is {short(path_node)!r}: {why}",
            )
            ok = False
    events: tuple[FileEvent, ...] = (FileEvent.CREATED,)
    if "condition" in fields:
        got = _events(ctx, fields["condition"][1], f"'condition' of {what}")
        ok = ok and got is not None
        events = got or events
    stable = 0.0
    if "stable_for" in fields:
        stable_node = fields["stable_for"][1]
        got_stable = _seconds(ctx, stable_node, f"'stable_for' of {what}")
        ok = ok and got_stable is not None
        stable = got_stable or 0.0
        if stable and FileEvent.CREATED not in events and FileEvent.CHANGED not in events:
            ctx.report(
                Code.BAD_WATCH_CONDITION,
                stable_node,
                f"'stable_for' of {what} waits for a created or changed file to hold "
                "still, but the watch is only for deleted files; drop it",
            )
            ok = False
    existing = False
    if "existing" in fields:
        existing_node = fields["existing"][1]
        got_existing = ctx.boolean(existing_node, f"'existing' of {what}")
        ok = ok and got_existing is not None
        existing = bool(got_existing)
        if existing and FileEvent.CREATED not in events:
            ctx.report(
                Code.BAD_WATCH_CONDITION,
                existing_node,
                f"'existing: true' of {what} counts files already there as created, "
                "but the watch is not for created files; drop it or add 'created' to 'condition'",
            )
            ok = False
    if not ok or path is None:
        return None
    return Watch(
        path=path,
        events=events,
        stable_for=stable,
        existing=existing,
        source=f"{ctx.file}:{line_of(node)}",
    )


def read_filewatch(
    ctx: Ctx, value: Getter, label: str, line: int, typos: set[str]
) -> dict[str, object]:
    """The keys of a file-watch job (``type: filewatch``)."""
    node = value("watch")
    if node is None:
        if "watch" not in typos:
            ctx.report(
                Code.MISSING_KEY,
                line,
                f"{label} has no 'watch'; add e.g. "
                "watch: {path: /data/in/*.csv, condition: created}",
            )
        return {}
    watch = read_watch(ctx, node, f"'watch' of {label}")
    return {} if watch is None else {"watch": watch}


def _events(ctx: Ctx, node: Node, what: str) -> tuple[FileEvent, ...] | None:
    choices = [e.value for e in FileEvent]
    items = [node] if isinstance(node, ScalarNode) else ctx.sequence(node, what)
    if items is None:
        return None
    if not items:
        ctx.report(Code.BAD_WATCH_CONDITION, node, f"{what} is empty; give one of {choices}")
        return None
    found: list[FileEvent] = []
    bad = False
    for item in items:
        text = ctx.text(item, what)
        if text is None:
            bad = True
            continue
        if text not in choices:
            ctx.report(
                Code.BAD_WATCH_CONDITION,
                item,
                f"unknown condition {short(item)!r} in {what}{suggest(text, choices)}",
            )
            bad = True
            continue
        event = FileEvent(text)
        if event in found:
            ctx.report(Code.BAD_WATCH_CONDITION, item, f"{text!r} is listed twice in {what}")
            bad = True
            continue
        found.append(event)
    return None if bad else tuple(found)


_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


def _seconds(ctx: Ctx, node: Node, what: str) -> float | None:
    """Seconds (a number, 0 allowed) or a duration as the schedules write it ('30s')."""
    if not (isinstance(node, ScalarNode) and node.tag == STR):
        return ctx.number(node, what, 0.0, MAX_STABLE)
    text = str(node.value).replace(" ", "")
    if not schema.DURATION_RE.match(text) or len(text) > 32:
        ctx.report(
            Code.BAD_VALUE, node, f"{what} is {short(node)!r}; write seconds or e.g. 30s, 2m"
        )
        return None
    seconds = float(
        sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)(min|d|h|m|s)", text))
    )
    if seconds > MAX_STABLE:
        ctx.report(Code.BAD_VALUE, node, f"{what} is over a day ({MAX_STABLE:.0f} s); shorten it")
        return None
    return seconds


def read_start_condition(ctx: Ctx, node: Node, label: str) -> StartCondition | None:
    """``start_condition:`` of a root jobnet."""
    what = f"'start_condition' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    ctx.check_keys(fields, START_CONDITION_KEYS, what)
    if "watches" not in fields:
        ctx.report(
            Code.BAD_START_CONDITION,
            node,
            f"{what} has no 'watches'; list the file watches that start a run",
        )
        return None
    items = ctx.sequence(fields["watches"][1], f"'watches' of {what}")
    if items is None:
        return None
    ok = True
    if not items or len(items) > MAX_WATCHES:
        ctx.report(
            Code.BAD_START_CONDITION,
            fields["watches"][1],
            f"'watches' of {what} has {len(items)} entries; give 1 to {MAX_WATCHES}",
        )
        ok = False
    watches = [read_watch(ctx, item, f"watch {i + 1} of {what}") for i, item in enumerate(items)]
    limit: int | None = None
    if "limit" in fields:
        limit_node = fields["limit"][1]
        if isinstance(limit_node, ScalarNode) and limit_node.tag == STR:
            if limit_node.value != "unlimited":
                ctx.report(
                    Code.BAD_START_CONDITION,
                    limit_node,
                    f"'limit' of {what} is {short(limit_node)!r}; write a count of runs "
                    f"(1 to {MAX_LIMIT}) or 'unlimited'",
                )
                ok = False
        elif isinstance(limit_node, ScalarNode) and limit_node.tag == INT:
            raw = str(limit_node.value).replace("_", "")
            count = int(raw) if raw.isdigit() and len(raw) <= 8 else 0
            if not 1 <= count <= MAX_LIMIT:
                ctx.report(
                    Code.BAD_START_CONDITION,
                    limit_node,
                    f"'limit' of {what} is {short(limit_node)}; a count of runs is 1 to "
                    f"{MAX_LIMIT} (or write 'unlimited')",
                )
                ok = False
            else:
                limit = count
        else:
            ctx.report(
                Code.BAD_START_CONDITION,
                limit_node,
                f"'limit' of {what} must be a count of runs or 'unlimited'",
            )
            ok = False
    bounds: dict[str, float | None] = {"from": None, "until": None}
    for key in bounds:
        if key in fields:
            value = _instant(ctx, fields[key][1], f"'{key}' of {what}")
            ok = ok and value is not None
            bounds[key] = value
    low, high = bounds["from"], bounds["until"]
    if low is not None and high is not None and high <= low:
        ctx.report(
            Code.BAD_START_CONDITION,
            fields["until"][1],
            f"'until' of {what} is not after its 'from': the condition could never hold",
        )
        ok = False
    if not ok or any(w is None for w in watches):
        return None
    return StartCondition(
        watches=tuple(w for w in watches if w is not None),
        limit=limit,
        valid_from=low,
        valid_until=high,
        source=f"{ctx.file}:{line_of(node)}",
    )


def _instant(ctx: Ctx, node: Node, what: str) -> float | None:
    """An ISO 8601 date and time with its UTC offset (``2027-01-04T08:00:00+09:00``)."""
    if not isinstance(node, ScalarNode) or node.tag not in (STR, "tag:yaml.org,2002:timestamp"):
        ctx.report(Code.BAD_START_CONDITION, node, f"{what} must be a date and time in quotes")
        return None
    text = str(node.value)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        ctx.report(
            Code.BAD_START_CONDITION,
            node,
            f"{what} is {short(node)!r}; write a date and time with its offset, "
            "e.g. '2027-01-04T08:00:00+09:00'",
        )
        return None
    return when.timestamp()
