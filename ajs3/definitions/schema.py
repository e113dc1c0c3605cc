"""What a YAML definition file may contain: keys per unit type, names, limits.

Kept apart from the loader so that the format can be read (and extended) in one
place; ``docs/definitions.md`` describes the same tables for people.
"""

from __future__ import annotations

import re

from ajs3.model import Compare, UnitKind

# Patterns end in \Z, not $: "$" also matches before a final newline ("a\n").

#: A unit name (one path element), JP1-like but ASCII only.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
#: A job group path: "/" or "/a/b".
GROUP_RE = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})+\Z")
#: An environment variable name a job may set.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
#: Variables the engine sets for every run (docs/design.md rule 2); a job may not override them.
RESERVED_ENV_PREFIX = "AJS3_"

FILE_KEYS: tuple[str, ...] = ("group", "jobnets", "calendar", "calendars")

COMMON_KEYS: tuple[str, ...] = ("name", "type", "description", "after", "recovery", "hold")
JOB_KEYS: tuple[str, ...] = (
    *COMMON_KEYS,
    "command",
    "script",
    "shell",
    "cwd",
    "env",
    "user",
    "warning_threshold",
    "abnormal_threshold",
    "timeout",
    "kill_grace",
    "retry",
    "on_failover",
    "failover_check",
    "delay",
    "output_limit",
    "host",
)
JUDGE_KEYS: tuple[str, ...] = (*COMMON_KEYS, "condition")
OR_KEYS: tuple[str, ...] = COMMON_KEYS
#: A file-watch job (ajs3.definitions.events).
FILEWATCH_KEYS: tuple[str, ...] = (*COMMON_KEYS, "watch")
JOBNET_KEYS: tuple[str, ...] = (*COMMON_KEYS, "concurrency", "units", "delay", "host")
#: A jobnet connector (docs/definitions.md, Jobnet connectors).
CONNECTOR_KEYS: tuple[str, ...] = (*COMMON_KEYS, "waits_for", "match")
#: A root jobnet has no siblings, so no ``after`` and no ``recovery``.
ROOT_KEYS: tuple[str, ...] = (
    "name",
    "type",
    "description",
    "concurrency",
    "hold",
    "units",
    "schedule",
    "delay",
    "keep",
    "start_condition",
    "host",
)
#: The keys of ``delay:`` of a job or jobnet (docs/definitions.md).
DELAY_KEYS: tuple[str, ...] = ("start_by", "longest")

KEYS_BY_KIND: dict[UnitKind, tuple[str, ...]] = {
    UnitKind.JOB: JOB_KEYS,
    UnitKind.JUDGE: JUDGE_KEYS,
    UnitKind.OR: OR_KEYS,
    UnitKind.FILEWATCH: FILEWATCH_KEYS,
    UnitKind.JOBNET: JOBNET_KEYS,
    UnitKind.CONNECTOR: CONNECTOR_KEYS,
}
#: The values of ``type:`` (a group is made with ``group:``, not as a unit).
UNIT_TYPES: tuple[str, ...] = tuple(k.value for k in KEYS_BY_KIND)
ALL_UNIT_KEYS: frozenset[str] = frozenset(k for keys in KEYS_BY_KIND.values() for k in keys)

RETRY_KEYS: tuple[str, ...] = ("count", "interval", "on_exit_codes")

#: The keys of ``condition:`` besides ``op``, per comparison.
CONDITION_KEYS: dict[Compare, tuple[str, ...]] = {
    Compare.EQ: ("value",),
    Compare.NE: ("value",),
    Compare.GT: ("value",),
    Compare.GE: ("value",),
    Compare.LT: ("value",),
    Compare.LE: ("value",),
    Compare.IN_RANGE: ("low", "high"),
    Compare.OUT_RANGE: ("low", "high"),
    Compare.FILE_EXISTS: ("path",),
    Compare.FILE_MISSING: ("path",),
}
#: Comparisons on the predecessor's exit code (they need exactly one predecessor).
EXIT_CODE_OPS: frozenset[Compare] = frozenset(
    op for op, keys in CONDITION_KEYS.items() if "path" not in keys
)

# Limits. They keep a bad file from costing unbounded memory or time.
EXIT_CODE_MAX = 255
RETRY_COUNT_MAX = 100
CONCURRENCY_MAX = 100_000
#: Seconds; about 100 years, far beyond any sensible timeout, far below float trouble.
SECONDS_MAX = 3_153_600_000
#: Jobnets nested in jobnets, counting the root jobnet as 1.
MAX_DEPTH = 32
#: Levels of a job group path (``/a/b`` has 2).
MAX_GROUP_DEPTH = 32
#: YAML nodes visited in one file, aliases counted each time they are used.
MAX_NODES = 200_000
#: Size of one definition file: bytes of a file, characters of a text.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Collections (lists, mappings) nested in one YAML document, the file's own mapping
#: counted as 1. Jobnets nested MAX_DEPTH deep take about 2 * MAX_DEPTH + 5.
MAX_YAML_DEPTH = 100
#: Problems reported for one file; past them the file is not read further.
MAX_PROBLEMS = 100
#: Largest integer accepted where an integer is converted to text (env values, argv).
INT_TEXT_MAX = 2**63

# Schedules and calendars (docs/schedules.md).
SCHEDULE_KEYS: tuple[str, ...] = (
    "time_zone",
    "calendar",
    "rules",
    "overlap",
    "max_parallel",
    "catch_up",
    "catch_up_window",
)
RULE_KEYS: tuple[str, ...] = (
    "at",
    "every",
    "weekdays",
    "nth",
    "days",
    "open_days",
    "start",
    "end",
    "closed_days",
    "shift_limit",
    "repeat",
    "deadline",
)
REPEAT_KEYS: tuple[str, ...] = ("every", "until")
CALENDAR_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "open_weekdays",
    "closed_weekdays",
    "open_dates",
    "closed_dates",
    "base_time",
    "base_day",
    "base_month",
)
WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Schedule rules per jobnet (JP1/AJS3 allows 144).
MAX_RULES = 1000
#: Days a closed-day shift may move a run (JP1's shd: 1..31).
SHIFT_LIMIT_MAX = 31
#: Processing cycle "every N ...".
EVERY_MAX = 1000
MAX_PARALLEL = 1000
#: Latest start time of a rule: 47:59, as JP1 (a time on the next day).
AT_MAX_MINUTES = 47 * 60 + 59
TIME_RE = re.compile(r"^([0-9]{1,2}):([0-5][0-9])\Z")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
DURATION_RE = re.compile(r"^(?:[0-9]+(?:d|h|m|min|s))+\Z")
EVERY_RE = re.compile(r"^(?:([0-9]+) *)?(day|days|week|weeks|month|months)\Z")
