"""The journal: every definition, registration, run and status change of a logical host.

Rules kept here (docs/design.md):

- synchronous=FULL and WAL: a committed change survives a crash of the node. The one
  exception is a transaction opened with ``durable=False`` (the scheduler's step, ADR
  0034): it commits without an fsync, and :meth:`Journal.sync` (or the supervisor
  server, or any later commit) makes it durable before anything acts on it.
- Every status change goes through :meth:`Journal.set_status`, which checks it
  against :data:`ajs3.model.TRANSITIONS` and writes an event. No other code writes
  statuses.
- Every write transaction first checks that this process's epoch is still the newest;
  a process of an older epoch (a node that was cut off but not fenced) cannot record
  anything over the new owner's (:class:`ajs3.errors.EpochSuperseded`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.errors import Code, EpochSuperseded, JournalError
from ajs3.journal.files import (
    JOURNAL_FILE,
    WAL_HIGH_WATER,
    DiskFull,
    WalFile,
    check_datadir,
    grow_wal,
    is_disk_full,
    journal_files_private,
    logical_host_traces,
)
from ajs3.journal.rows import UNIT_RUN_COLUMNS, UNIT_RUN_FIELDS, WRITABLE, JobnetRun, UnitRun
from ajs3.journal.schema import MIGRATIONS, SCHEMA_VERSION
from ajs3.journal.sql import placeholders
from ajs3.model import OPEN, ReasonCode, Status, check_transition

__all__ = ["JobnetRun", "Journal", "UnitRun"]

#: UPDATE statements of :meth:`Journal.set_statuses`, by the columns they write
_UPDATES: dict[tuple[str, ...], str] = {}
_INSERT_EVENT = (
    "INSERT INTO events(at, epoch, unit_run, run_id, attempt, old, new, reason, code)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Journal:
    """The SQLite journal of one logical host."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.epoch: int | None = None
        self._depth = 0
        #: Commits of :meth:`transaction` and the seconds their COMMIT statements took
        #: (exported at /metrics by `ajs3 web`, docs/web.md).
        self.commits = 0
        self.commit_seconds = 0.0
        #: Told of every status change after it is made (unit run, old status), so
        #: that whoever keeps counts in memory need not scan for them.
        self.on_status: Callable[[UnitRun, Status], None] | None = None
        #: Told of every status change INSIDE its transaction (the unit run as it is
        #: now, its old status, the reason code), and of what the engine finds notable
        #: beyond a status (:meth:`note`): a record that must exist if and only if the
        #: change does (a notification, ajs3.notify) is written in the same commit.
        self.on_change_tx: Callable[[UnitRun, Status, ReasonCode], None] | None = None
        self.on_note_tx: Callable[[str, dict[str, Any]], None] | None = None
        #: Something committed without its fsync that nothing has made durable since.
        self.unsynced = False
        #: The last transaction wrote and committed without its fsync.
        self.last_unsynced = False
        self._sync_at_commit = False  # a commit without fsync that must not stay so
        #: The write-ahead log, held open for :meth:`sync` and the supervisor server.
        self.wal = WalFile(Path(f"{path}-wal"))

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, datadir: Path, *, readonly: bool = False, initialize: bool = False) -> Journal:
        """Open the journal of ``datadir``, creating it (0600) only in a data directory
        that holds nothing of a logical host, or when ``initialize`` says so: a missing
        or empty journal beside a logical host's files is refused (AJS3-E207), never
        replaced silently. Its files are never links (AJS3-E211), and made 0600."""
        check_datadir(datadir)
        path = datadir / JOURNAL_FILE
        if readonly and not path.exists():
            raise JournalError(
                f"no journal in {datadir}",
                code=Code.DATADIR_MISSING,
                hint="start the logical host once with `ajs3 service start`",
            )
        fresh = journal_files_private(path)
        if fresh and not readonly and not initialize:
            traces = logical_host_traces(datadir)
            if traces:
                raise JournalError(
                    f"the journal {path} is {fresh}, but {datadir} holds a logical host's "
                    f"files ({', '.join(traces)}): its definitions and runs would be lost",
                    code=Code.JOURNAL_MISSING,
                    hint="restore journal.db from a backup (see docs/runbooks), or start "
                    "the logical host afresh with `ajs3 service start --initialize`",
                )
        old_umask = os.umask(0o077)  # a new journal, -wal and -shm: 0600
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"journal {path} cannot be opened: {exc}",
                code=Code.JOURNAL_CORRUPT,
                hint="restore it from a backup (see docs/runbooks)",
            ) from exc
        finally:
            os.umask(old_umask)
        journal = cls(conn, path)
        try:
            journal._migrate(readonly=readonly)
        except (sqlite3.DatabaseError, ValueError) as exc:
            conn.close()
            raise JournalError(
                f"journal {path} is damaged: {exc}",
                code=Code.JOURNAL_CORRUPT,
                hint="restore it from a backup (see docs/runbooks)",
            ) from exc
        except Exception:
            conn.close()
            raise
        return journal

    def close(self) -> None:
        self.wal.close()
        self.conn.close()

    def presize_wal(self) -> None:
        """Give the write-ahead log its usual size at once, durable (ADR 0036)."""
        if grow_wal(self.conn, self.wal.path, WAL_HIGH_WATER):
            self.wal.sync()

    def sync(self) -> None:
        """Make durable what was committed without an fsync (``durable=False``)."""
        if self.unsynced:
            self.wal.sync()
            self.unsynced = False

    def sync_at_commit(self) -> None:
        """The open transaction holds what others act on at once (a notification): if it
        commits without an fsync, it is made durable right after."""
        self._sync_at_commit = True

    def schema_version(self) -> int:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, *, readonly: bool) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this "
                f"ajs3 understands ({SCHEMA_VERSION})",
                code=Code.JOURNAL_TOO_NEW,
                hint="run the newer ajs3 that wrote it, or upgrade this node",
            )
        if version == SCHEMA_VERSION or readonly:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self.schema_version()  # another process may have migrated meanwhile
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                version += 1
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- transactions and epochs -------------------------------------------------

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """A write transaction that is refused if a newer epoch exists.

        It commits when the block ends: it is never nested. Each writing method of the
        journal joins the caller's transaction when there is one (:meth:`joined`), so
        a caller groups several writes into one commit by opening one transaction.
        ``durable=False``: the commit has no fsync of its own; the caller sees to it
        that :meth:`sync`, or the supervisor server (ADR 0034), makes it durable before
        anything acts on it.
        """
        if self._depth:
            raise RuntimeError("a journal transaction is already open: it would not commit")
        if not durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            if not durable:  # every other transaction keeps its fsync
                self.conn.execute("PRAGMA synchronous=FULL")
            raise
        self._depth = 1
        self._sync_at_commit = False
        changes = self.conn.total_changes
        try:
            if self.epoch is not None:
                newest = self.conn.execute("SELECT max(epoch) FROM epochs").fetchone()[0]
                if newest != self.epoch:
                    raise EpochSuperseded(
                        f"epoch {self.epoch} was superseded by epoch {newest}: another "
                        "daemon owns this logical host now; this one stops writing",
                        hint="check that only one node mounts the data directory (fencing)",
                    )
            yield
            began = time.perf_counter()
            self.conn.execute("COMMIT")
            self.commits += 1
            self.commit_seconds += time.perf_counter() - began
            wrote = self.conn.total_changes != changes  # else nothing was written, nor synced
            self.last_unsynced = wrote and not durable
            if wrote:
                self.unsynced = not durable
        except BaseException as exc:
            # SQLite may have rolled back by itself (a full disk): nothing to undo then.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            if is_disk_full(exc):
                raise DiskFull(
                    f"the journal cannot be written: its file system is full ({exc}); "
                    "nothing of this change was recorded",
                    code=Code.DISK_FULL,
                    hint=f"free space on the file system of {self.path}; the daemon "
                    "carries on by itself once there is room",
                ) from exc
            raise
        finally:
            self._depth = 0
            if not durable:
                self.conn.execute("PRAGMA synchronous=FULL")
        if self._sync_at_commit:
            self.sync()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def joined(self) -> Iterator[None]:
        """The caller's open transaction, or a transaction of its own if there is none:
        for a change that is all or nothing on its own and also when a caller groups
        it with other writes (the daemon commits a change with its audit row)."""
        if self._depth:
            yield
            return
        with self.transaction():
            yield

    def begin_epoch(self, node: str, pid: int, mode: str) -> int:
        self.epoch = None
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO epochs(started_at, node, pid, mode) VALUES (?, ?, ?, ?)",
                (time.time(), node, pid, mode),
            )
            epoch = int(cur.lastrowid or 0)
        self.epoch = epoch
        return epoch

    # -- meta --------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.joined():
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- definitions ---------------------------------------------------------------

    def apply_definitions(self, defs: DefinitionSet, sources: list[str]) -> int:
        """Store a whole, validated definition set as the new current version."""
        content = json.dumps(
            {
                "jobnets": {path: unit.to_dict() for path, unit in sorted(defs.jobnets.items())},
                "groups": list(defs.groups),
            },
            sort_keys=True,
        )
        with self.joined():
            cur = self.conn.execute(
                "INSERT INTO definitions(applied_at, content, sources) VALUES (?, ?, ?)",
                (time.time(), content, json.dumps(sources)),
            )
            return int(cur.lastrowid or 0)

    def definitions(self, version: int | None = None) -> tuple[int, DefinitionSet]:
        if version is None:
            row = self.conn.execute(
                "SELECT version, content FROM definitions ORDER BY version DESC LIMIT 1"
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT version, content FROM definitions WHERE version=?", (version,)
            ).fetchone()
        if row is None:
            return 0, DefinitionSet(jobnets={})
        data = json.loads(row["content"])
        jobnets = {path: Unit.from_dict(u) for path, u in data["jobnets"].items()}
        return int(row["version"]), DefinitionSet(jobnets=jobnets, groups=tuple(data["groups"]))

    # -- runs ------------------------------------------------------------------------

    def create_jobnet_run(
        self, root: Unit, def_version: int, scheduled_at: float, *, start_now: bool
    ) -> int:
        """Register one run of a root jobnet with a row per unit."""
        with self.joined():
            cur = self.conn.execute(
                "INSERT INTO jobnet_runs(jobnet, def_version, scheduled_at, registered_at)"
                " VALUES (?, ?, ?, ?)",
                (root.path, def_version, scheduled_at, time.time()),
            )
            run = int(cur.lastrowid or 0)
            rows = []
            for unit in root.walk():
                if unit is root:
                    status = Status.WAIT_START_TIME if not start_now else Status.NOT_SCHEDULED
                    if root.hold:
                        status = Status.HELD
                else:
                    status = Status.HELD if unit.hold else Status.NOT_SCHEDULED
                rows.append((run, unit.path, unit.kind.value, status.value))
            self.conn.executemany(
                "INSERT INTO unit_runs(jobnet_run, path, kind, status) VALUES (?, ?, ?, ?)",
                rows,
            )
            if self.on_change_tx is not None and any(r[3] == Status.HELD.value for r in rows):
                # held for an operator from the start: told like a hold (unit_held)
                for held in self.conn.execute(
                    "SELECT * FROM unit_runs WHERE jobnet_run=? AND status=? ORDER BY id",
                    (run, Status.HELD.value),
                ).fetchall():
                    self.on_change_tx(
                        UnitRun.from_row(held),
                        Status.NOT_SCHEDULED,
                        ReasonCode.HELD_AT_REGISTRATION,
                    )
        return run

    def jobnet_run(self, run: int) -> JobnetRun | None:
        row = self.conn.execute("SELECT * FROM jobnet_runs WHERE id=?", (run,)).fetchone()
        if row is None:
            return None
        return JobnetRun(
            id=row["id"],
            jobnet=row["jobnet"],
            def_version=row["def_version"],
            scheduled_at=row["scheduled_at"],
            registered_at=row["registered_at"],
            interrupted=bool(row["interrupted"]),
        )

    def jobnet_runs(
        self, *, jobnet: str | None = None, containing: str | None = None, limit: int = 50
    ) -> list[JobnetRun]:
        """Newest first; ``containing`` finds the runs of the root jobnet a unit path is in."""
        sql = "SELECT * FROM jobnet_runs"
        args: list[Any] = []
        if jobnet:
            sql += " WHERE jobnet=?"
            args.append(jobnet)
        elif containing:
            parts = containing.rstrip("/").split("/")
            prefixes = ["/".join(parts[:i]) for i in range(2, len(parts) + 1)]
            sql += f" WHERE jobnet IN ({','.join('?' * len(prefixes))})"
            args.extend(prefixes)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [
            JobnetRun(
                id=r["id"],
                jobnet=r["jobnet"],
                def_version=r["def_version"],
                scheduled_at=r["scheduled_at"],
                registered_at=r["registered_at"],
                interrupted=bool(r["interrupted"]),
            )
            for r in self.conn.execute(sql, args)
        ]

    def set_interrupted(self, run: JobnetRun, interrupted: bool) -> None:
        """Mark a jobnet run as killed by an operator (or, for a rerun, no longer)."""
        with self.joined():
            self.conn.execute(
                "UPDATE jobnet_runs SET interrupted=? WHERE id=?", (int(interrupted), run.id)
            )
        run.interrupted = interrupted

    def root_status(self, run: JobnetRun) -> str | None:
        """The stored status of a run's root unit, as stored (for views)."""
        row = self.conn.execute(
            "SELECT status FROM unit_runs WHERE jobnet_run=? AND path=?", (run.id, run.jobnet)
        ).fetchone()
        return str(row[0]) if row else None

    def unit_rows(self, run: int) -> list[dict[str, Any]]:
        """A run's unit runs as stored, for views: a status this ajs3 does not know (a
        newer one wrote it) is kept as its string, where :meth:`unit_runs` refuses it."""
        rows = self.conn.execute("SELECT * FROM unit_runs WHERE jobnet_run=? ORDER BY id", (run,))
        return [{k: r[k] for k in r.keys() if k in UNIT_RUN_FIELDS} for r in rows]  # noqa: SIM118

    def unit_runs(self, run: int) -> list[UnitRun]:
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples
        cur.execute(
            f"SELECT {UNIT_RUN_COLUMNS} FROM unit_runs WHERE jobnet_run=? ORDER BY id", (run,)
        )
        return [UnitRun.from_values(r) for r in cur]

    def active_jobnet_runs(self) -> list[int]:
        """Runs whose root unit has not ended (an index lookup: history does not matter)."""
        open_ = tuple(s.value for s in OPEN)
        marks = placeholders(open_)
        rows = self.conn.execute(
            "SELECT DISTINCT r.id FROM unit_runs u JOIN jobnet_runs r"
            " ON r.id = u.jobnet_run AND u.path = r.jobnet"
            f" WHERE u.status IN ({marks}) ORDER BY r.id",
            open_,
        )
        return [int(r[0]) for r in rows]

    def running_run_ids(self) -> set[str]:
        """The run ids of the job runs the journal says run (an index lookup)."""
        rows = self.conn.execute(
            "SELECT run_id FROM unit_runs WHERE status=? AND run_id IS NOT NULL",
            (Status.RUNNING.value,),
        )
        return {str(r[0]) for r in rows}

    def find_run_id(self, run_id: str) -> UnitRun | None:
        row = self.conn.execute(
            "SELECT * FROM unit_runs WHERE run_id=? ORDER BY id DESC LIMIT 1", (run_id,)
        ).fetchone()
        if row is not None:
            return UnitRun.from_row(row)
        # an earlier attempt's run id lives on in the events
        row = self.conn.execute(
            "SELECT u.* FROM events e JOIN unit_runs u ON u.id = e.unit_run"
            " WHERE e.run_id=? LIMIT 1",
            (run_id,),
        ).fetchone()
        return UnitRun.from_row(row) if row else None

    def events(self, unit_run: int) -> list[sqlite3.Row]:
        return list(
            self.conn.execute("SELECT * FROM events WHERE unit_run=? ORDER BY id", (unit_run,))
        )

    def forget_runs(self) -> int:
        """Cold start: forget every registration and result (definitions stay)."""
        with self.joined():
            cur = self.conn.execute("DELETE FROM jobnet_runs")
            return cur.rowcount

    # -- the one place where statuses change ------------------------------------------

    def set_status(
        self, ur: UnitRun, new: Status, code: ReasonCode, reason: str, **values: Any
    ) -> None:
        """Change a unit run's status (and other columns) if the table allows it.

        ``code`` says why, for programs; ``reason`` says it to a person.
        """
        self.set_statuses([(ur, values)], new, code, reason)

    def set_statuses(
        self,
        changes: Sequence[tuple[UnitRun, dict[str, Any]]],
        new: Status,
        code: ReasonCode,
        reason: str,
    ) -> None:
        """:meth:`set_status` for several unit runs, each with the same columns (their
        values may differ): the same checks and events, all or none, with one statement
        run over them all (a jobnet of 100 jobs that starts: ADR 0037)."""
        if not changes:
            return
        keys = tuple(changes[0][1])
        for ur, values in changes:
            check_transition(ur.status, new)
            if tuple(values) != keys:
                raise ValueError("every unit run of a change must get the same columns")
        unknown = set(keys) - WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        sql = _UPDATES.get(keys)
        if sql is None:
            assigns = ", ".join(["status=?", "reason=?"] + [f"{k}=?" for k in keys])
            sql = _UPDATES[keys] = f"UPDATE unit_runs SET {assigns} WHERE id=? AND status=?"
        now, epoch = time.time(), self.epoch or 0
        updates, events = [], []
        for ur, values in changes:
            updates.append((new.value, reason, *values.values(), ur.id, ur.status.value))
            events.append(
                (
                    now,
                    epoch,
                    ur.id,
                    values.get("run_id", ur.run_id),
                    values.get("attempt", ur.attempt),
                    ur.status.value,
                    new.value,
                    reason,
                    code.value,
                )
            )
        with self.joined():
            if self.conn.executemany(sql, updates).rowcount != len(changes):
                ur = next((u for u, _ in changes if self._status_of(u) != new), changes[0][0])
                raise JournalError(
                    f"unit run {ur.id} ({ur.path}) is no longer {ur.status.value} in the journal",
                    code=Code.BAD_TRANSITION,
                )
            self.conn.executemany(_INSERT_EVENT, events)
            if self.on_change_tx is not None:
                for ur, values in changes:
                    after = replace(ur, status=new, reason=reason, **values)
                    self.on_change_tx(after, ur.status, code)
        for ur, values in changes:
            old = ur.status
            ur.status = new
            ur.reason = reason
            for key, value in values.items():
                setattr(ur, key, value)
            if self.on_status is not None:
                self.on_status(ur, old)

    def _status_of(self, ur: UnitRun) -> str | None:
        row = self.conn.execute("SELECT status FROM unit_runs WHERE id=?", (ur.id,)).fetchone()
        return None if row is None else str(row[0])

    def note(self, kind: str, **data: Any) -> None:
        """Something notable beyond a status change (a catch-up decision, a delay, the
        logical host starting or stopping): told to :attr:`on_note_tx` in the caller's
        transaction (or one of its own)."""
        if self.on_note_tx is not None:
            with self.joined():
                self.on_note_tx(kind, data)

    def quick_check(self) -> str:
        return str(self.conn.execute("PRAGMA quick_check").fetchone()[0])
