"""The rows of the journal as the engine holds them: a unit run, a jobnet run."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from ajs3.model import Status, UnitKind


@dataclass
class UnitRun:
    """One unit in one run of its root jobnet, as stored."""

    id: int
    jobnet_run: int
    path: str
    kind: UnitKind
    status: Status
    attempt: int = 0
    retries: int = 0
    run_id: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    verdict: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    not_before: float | None = None
    pid: int | None = None
    pid_start: int | None = None
    pgid: int | None = None
    epoch: int | None = None
    reason: str = ""
    #: the execution host a job runs on (None: the logical host's node)
    exec_host: str | None = None

    @staticmethod
    def from_row(row: sqlite3.Row) -> UnitRun:
        data = {k: row[k] for k in row.keys() if k in UNIT_RUN_FIELDS}  # noqa: SIM118
        data["kind"] = UnitKind(data["kind"])
        data["status"] = Status(data["status"])
        return UnitRun(**data)

    @staticmethod
    def from_values(row: tuple[Any, ...]) -> UnitRun:
        """From a row of :data:`UNIT_RUN_COLUMNS`, in their order (faster than a named
        row: a run of 10,000 units is read back as it is registered)."""
        return UnitRun(row[0], row[1], row[2], _KINDS[row[3]], _STATUSES[row[4]], *row[5:])

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: the columns of a unit run
UNIT_RUN_FIELDS = {f.name for f in fields(UnitRun)}
#: the same, in the order of UnitRun's fields, for :meth:`UnitRun.from_values`
UNIT_RUN_COLUMNS = ", ".join(f.name for f in fields(UnitRun))
_KINDS = {k.value: k for k in UnitKind}
_STATUSES = {s.value: s for s in Status}
#: the columns :meth:`ajs3.journal.store.Journal.set_status` may write beside the status
WRITABLE = UNIT_RUN_FIELDS - {"id", "jobnet_run", "path", "kind", "status", "reason"}


@dataclass
class JobnetRun:
    """One registration of a root jobnet."""

    id: int
    jobnet: str
    def_version: int
    scheduled_at: float
    registered_at: float
    interrupted: bool
