"""How much history a logical host keeps, and how much output a job may leave: the
limits shared by the settings (ajs3.yaml), the definitions and the purge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: JP1 keeps 1 to 99 generations of a jobnet, up to 999 with the extended setting.
RUNS_MAX = 999
#: At most about 100 years of history by age.
DAYS_MAX = 36_500
#: What a logical host keeps without a ``keep`` in its settings: JP1's largest usual
#: number of generations, no age limit.
DEFAULT_RUNS = 99
#: The default cap of each of a job's stdout and stderr (bytes).
DEFAULT_OUTPUT_LIMIT = 64 * 1024 * 1024
#: The smallest cap one may set (room for a few lines) and the largest (1 TiB).
OUTPUT_LIMIT_MIN = 1024
OUTPUT_LIMIT_MAX = 1 << 40
#: Seconds between two background purge rounds by default, and the bounds.
DEFAULT_PURGE_INTERVAL = 60.0
PURGE_INTERVAL_MIN = 1.0
PURGE_INTERVAL_MAX = 86_400.0

KEEP_KEYS = ("runs", "days")


@dataclass(frozen=True)
class Keep:
    """Keep the newest ``runs`` ended runs of a jobnet, and none that ended more than
    ``days`` ago (None: no limit of that kind; both None: keep everything)."""

    runs: int | None = None
    days: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.runs is None and self.days is None

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "days": self.days}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Keep:
        return Keep(runs=data.get("runs"), days=data.get("days"))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_keep(value: Any) -> Keep | str:
    """A ``keep`` mapping checked: the Keep, or what is wrong with it (for a message)."""
    if not isinstance(value, dict) or not value:
        return "a mapping with runs (1 to 999) and/or days (a number above 0)"
    unknown = sorted(str(k) for k in value if k not in KEEP_KEYS)
    if unknown:
        return f"a mapping of runs and days (unknown: {', '.join(unknown)})"
    runs, days = value.get("runs"), value.get("days")
    if runs is not None and (not is_int(runs) or not 1 <= runs <= RUNS_MAX):
        return f"a mapping whose runs is an integer from 1 to {RUNS_MAX} (not {runs!r})"
    if days is not None and (
        not (is_int(days) or isinstance(days, float)) or not 0 < days <= DAYS_MAX
    ):
        return f"a mapping whose days is a number above 0, at most {DAYS_MAX} (not {days!r})"
    return Keep(runs=runs, days=None if days is None else float(days))
