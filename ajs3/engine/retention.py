"""The retention purge of a logical host: old jobnet runs go in small batches, between
the scheduler's steps (docs/retention.md).

The daemon calls :meth:`Purger.tick` once per turn of its loop, after the step. A tick
works for at most :attr:`Purger.budget` seconds: one small transaction at a time
(mark a few runs, or delete the rows of runs whose files are gone); the disk work
(removing job directories, syncing the marks, checkpoints) is the :class:`Reaper`'s,
on a thread of its own that wakes the loop when a batch is done, so the scheduler
never waits on the disk for the purge. Without a reaper (at start, in tests) a tick
removes the files itself. The order that keeps the journal true across a kill -9 is
:mod:`ajs3.journal.purge`'s: mark, remove the files, delete the rows.

A round walks every jobnet that has runs once, with its ``keep`` (the jobnet's own,
else the logical host's): every :attr:`Settings.purge_interval` seconds, or at once
when ``ajs3 purge`` asks (:meth:`request`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ajs3 import datadir as dd
from ajs3.definitions.units import DefinitionSet
from ajs3.engine import jobdirs, runvars
from ajs3.engine.reaper import Reaper, Removed, sync_journal
from ajs3.errors import EpochSuperseded
from ajs3.journal import purge as pg
from ajs3.journal.files import DiskFull
from ajs3.journal.store import Journal
from ajs3.keep import Keep
from ajs3.settings import Settings

#: Runs marked at once, and runs scanned at once per jobnet.
BATCH = 4
SCAN = 200
#: Batches deleted between two checkpoints of the WAL by the purge.
CHECKPOINT_EVERY = 2
#: Rounds whose totals are kept for ``ajs3 purge`` to read.
ROUNDS_KEPT = 16
#: How long a notification delivered to every route stays in the journal's outbox
#: (docs/notifications.md), and how many a tick looks at.
NOTIFIED_KEPT = 7 * 86400.0
NOTIFIED_BATCH = 200


@dataclass
class _Removing:
    """A batch whose files the reaper is removing."""

    runs: list[int]
    future: Future[Removed]


class Purger:
    """The background purge of one logical host."""

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        definitions: Callable[[], DefinitionSet],
        busy: Callable[[], Collection[int]],
        log: Any,
        *,
        clock: Callable[[], float] = time.time,
        budget: float = 0.004,
        reaper: Reaper | None = None,
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.definitions = definitions
        self.busy = busy
        self.log = log
        self.clock = clock
        #: seconds one tick may work
        self.budget = budget
        self.jobs = dd.jobs(settings.datadir)
        #: rounds started and completed; a round asked for while one runs
        self.started = 0
        self.completed = 0
        self.again = False
        self.in_round = False
        self.next_round = clock()  # the first round at start
        #: where the round is: the jobnet and the last run id scanned of it
        self.jobnet: str | None = None
        self.after = 0
        #: the round's progress: jobnets walked so far, and of how many (counted when
        #: first asked in the round: :meth:`progress`)
        self.walked = 0
        self.walk_total = 0
        self._counted = 0
        self.totals: dict[int, pg.Counts] = {}
        self.longest_tick = 0.0
        #: the most CPU one tick used (the rest of a long tick is waiting: disk, CPU)
        self.longest_tick_cpu = 0.0
        #: the durations of the last ticks that worked, for the figures
        self.ticks: deque[float] = deque(maxlen=10_000)
        self.failures = 0
        #: job directories of the marked runs removed so far (a tick goes on from there)
        self._removed: set[str] = set()
        #: batches deleted since the purge last checkpointed the WAL
        self._unchecked = 0
        #: runs the last scan chose beyond the batch it marked
        self._queue: list[int] = []
        self._bytes = 0
        #: the disk work's thread (None: the ticks do it themselves)
        self.reaper = reaper
        self._removing: _Removing | None = None
        #: the last notification event the round's last part looked at
        self._events_after = 0

    # -- what the daemon calls ------------------------------------------------------------

    def keep_of(self, jobnet: str) -> Keep:
        unit = self.definitions().jobnets.get(jobnet)
        if unit is not None and unit.keep is not None:
            return unit.keep
        return self.settings.keep

    def request(self) -> int:
        """Start a round now (after the one running, if any): the round to wait for."""
        if self.in_round:
            self.again = True
            return self.started + 1
        self.next_round = 0.0
        return self.started + 1

    def next_wake(self) -> float:
        """When the next tick has work: now while a round runs or runs are marked;
        never while the reaper works on a batch (it wakes the loop when done)."""
        if self._removing is not None and not self._removing.future.done():
            assert self.reaper is not None
            return float("inf") if self.reaper.wake is not None else self.clock() + 0.05
        if self.in_round:
            return 0.0
        return self.next_round

    def close(self) -> None:
        """At stop: the batch under way finishes; its rows go at the next start."""
        if self.reaper is not None:
            self.reaper.close()

    def tick(self) -> bool:
        """Work for at most :attr:`budget` seconds; True if there is more to do now."""
        now = self.clock()
        if not self.in_round and now < self.next_round:
            return False
        began, cpu = time.perf_counter(), time.thread_time()
        deadline = began + self.budget
        try:
            return self._work(now, deadline)
        except (DiskFull, EpochSuperseded):
            raise  # the daemon's to handle; the round goes on when it can
        except Exception as exc:  # a bug or a file system fault must not stop scheduling
            self.failures += 1
            self.log.exception("purge failed; trying again at the next round", error=str(exc))
            self.again = False
            self._end_round(now)
            return False
        finally:
            took = time.perf_counter() - began
            self.longest_tick = max(self.longest_tick, took)
            self.longest_tick_cpu = max(self.longest_tick_cpu, time.thread_time() - cpu)
            self.ticks.append(took)

    def finish_pending(self) -> None:
        """At start: finish every run a purge cut short (kill -9) marked, before any
        request can reach it. On a full disk they stay marked for the ticks to finish."""
        try:
            if self.reaper is not None and pg.pending(self.journal, 1):
                # marks committed without an fsync by the daemon before a kill -9 may
                # still be only in the page cache: on disk before any file goes
                sync_journal(self.journal.path)
            while True:
                runs = pg.pending(self.journal, BATCH)
                if not runs:
                    return
                self._finish(runs, deadline=None, half=None)
        except DiskFull as exc:
            self.log.warning("purge: marked runs left for later", error=exc.message)

    def status(self) -> dict[str, Any]:
        return {
            "rounds_started": self.started,
            "rounds_completed": self.completed,
            "running": self.in_round,
            "next_round_at": None if self.in_round else self.next_round,
            "longest_tick_ms": round(self.longest_tick * 1e3, 3),
            "longest_tick_cpu_ms": round(self.longest_tick_cpu * 1e3, 3),
            "ticks": len(self.ticks),
            "tick_p99_ms": round(_p99(self.ticks) * 1e3, 3),
            "failures": self.failures,
            "rounds": {str(k): v.to_dict() for k, v in sorted(self.totals.items())},
            "progress": self.progress(),
        }

    def progress(self) -> dict[str, int]:
        """The round running, or the last one: the jobnets it has walked of those that
        have runs. Counted the first time it is asked in a round (an index probe per
        jobnet from where the round is: a few milliseconds per thousand jobnets, for
        `ajs3 purge`'s bar, never in a tick); at the round's end, what it walked."""
        if self.in_round and self._counted != self.started:
            self._counted = self.started
            rest = 0
            if self.jobnet is not None:
                rest = 1 + len(pg.jobnets(self.journal, self.jobnet, 1 << 30))
            self.walk_total = self.walked + rest
        total = max(self.walk_total, self.walked)
        return {"round": self.started, "jobnets": total, "done": self.walked}

    # -- the work -----------------------------------------------------------------------

    def _work(self, now: float, deadline: float) -> bool:
        """One transaction is started only in the first half of the budget: a tick is
        at most about the budget, or half of it and one small commit."""
        if not self.in_round:
            self._begin_round()
        if self._removing is not None:
            if not self._removing.future.done():
                return True
            # the rows' delete is this tick's one transaction: the next batch is marked
            # by the next tick (the loop comes back at once)
            return self._reaped(now)
        half = deadline - self.budget / 2
        if self._unchecked >= CHECKPOINT_EVERY:
            # The purge writes much more to the WAL than scheduling does: checkpointed
            # a little at a time (by the reaper, or in a tick of its own), so that
            # SQLite's automatic checkpoint (1,000 pages, in whichever commit crosses
            # it: a tick's or a step's) never has a purge's worth to copy at once.
            self._unchecked = 0
            if self.reaper is not None:
                self.reaper.checkpoint()
            else:
                self.journal.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                return True
        while time.perf_counter() < half:
            runs = pg.pending(self.journal, BATCH)
            if runs:
                if not self._finish(runs, deadline, half):
                    return True  # files (or the rows) left: the next tick goes on
                continue
            if not self._select(now, half):
                if self._notified(now):
                    return True
                self._end_round(now)
                return False
        return True

    def _begin_round(self) -> None:
        self.in_round = True
        self.started += 1
        self.totals[self.started] = pg.Counts()
        for old in sorted(self.totals)[:-ROUNDS_KEPT]:
            del self.totals[old]
        self._queue = []
        self._events_after = 0
        self.walked = self.walk_total = 0
        first = pg.jobnets(self.journal, "", 1)
        self.jobnet, self.after = (first[0] if first else None), 0

    def _notified(self, now: float) -> bool:
        """The round's last part: delivered notifications older than NOTIFIED_KEPT, a
        batch per tick; True while there may be more."""
        # not fsynced by itself: lost in a crash, they are deleted again next round
        with self.journal.transaction(durable=False):
            deleted, self._events_after = pg.delivered_events(
                self.journal, now - NOTIFIED_KEPT, self._events_after, NOTIFIED_BATCH
            )
        self.totals.setdefault(self.started, pg.Counts()).notifications += deleted
        return self._events_after != 0

    def _end_round(self, now: float) -> None:
        self.in_round = False
        self.walk_total = self.walked
        self.completed = self.started
        got = self.totals[self.started]
        if got.jobnet_runs:
            self.log.info("purge round done", round=self.started, **got.to_dict())
        if self.again:
            self.again = False
            self.next_round = 0.0
        else:
            self.next_round = now + self.settings.purge_interval

    def _select(self, now: float, deadline: float) -> bool:
        """Mark the next runs to purge; False when the round has seen every jobnet."""
        if self._queue:  # chosen by the last scan, not marked yet (checked again by mark)
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            with self.journal.transaction(durable=self._marks_durable()):
                pg.mark(self.journal, batch)
            return True
        while self.jobnet is not None:
            jobnet = self.jobnet
            chosen, after = pg.select(
                self.journal,
                jobnet,
                self.keep_of(jobnet),
                now,
                after=self.after,
                limit=SCAN,
                busy=self.busy(),
            )
            if after is None:  # this jobnet is done: the next one
                self.walked += 1
                following = pg.jobnets(self.journal, jobnet, 1)
                self.jobnet = following[0] if following else None
                self.after = 0
            else:
                self.after = after
            if chosen:
                with self.journal.transaction(durable=self._marks_durable()):
                    pg.mark(self.journal, chosen[:BATCH])
                self._queue = chosen[BATCH:]
                return True
            if time.perf_counter() >= deadline:
                return True
        return False

    def _finish(self, runs: list[int], deadline: float | None, half: float | None) -> bool:
        """Remove the files of marked runs, then their rows; False if the deadline
        came first (they stay marked, the next tick goes on from the files it had
        not removed; the rows are deleted only in the first ``half`` of a tick)."""
        busy = set(self.busy())
        ok = [r for r in pg.still_ended(self.journal, runs) if r not in busy]
        gone = [r for r in runs if r not in ok]
        if gone:
            with self.journal.transaction():
                pg.unmark(self.journal, gone)
        if not ok:
            return True
        if self.reaper is not None and deadline is not None:
            self._removing = _Removing(ok, self.reaper.remove(pg.run_ids(self.journal, ok)))
            return False  # the rows when the reaper is done (it wakes the loop)
        counts = pg.count_rows(self.journal, ok)
        removed_now = False
        fd = jobdirs.open_jobs(self.jobs)
        try:
            if fd is not None:
                for run_id in pg.run_ids(self.journal, ok):
                    if run_id in self._removed:
                        continue
                    if deadline is not None and time.perf_counter() >= deadline:
                        return False
                    try:
                        held = jobdirs.remove(fd, run_id)
                        held += runvars.remove_out(self.settings.datadir, run_id)
                    except OSError as exc:
                        self.failures += 1
                        self.log.error(
                            "purge: cannot remove a job directory", run_id=run_id, error=str(exc)
                        )
                        return False
                    self._removed.add(run_id)
                    self._bytes += held
                    removed_now = True
        finally:
            if fd is not None:
                os.close(fd)
        if removed_now and half is not None and time.perf_counter() >= half:
            return False  # the rows at the start of the next tick (it always gets there)
        counts.job_dirs, counts.bytes = len(self._removed), self._bytes
        self._delete(ok, counts)
        self._removed, self._bytes = set(), 0
        return True

    def _reaped(self, now: float) -> bool:
        """The reaper is done with a batch: delete the rows of its runs that may still
        go; False if it failed (the runs stay marked for the next round)."""
        assert self._removing is not None
        removing, self._removing = self._removing, None
        try:
            removed = removing.future.result()
        except OSError as exc:
            self.failures += 1
            self.log.error("purge: cannot remove job directories", error=str(exc))
            self.again = False
            self._end_round(now)
            return False
        busy = set(self.busy())
        ok = [r for r in pg.still_ended(self.journal, removing.runs) if r not in busy]
        gone = [r for r in removing.runs if r not in ok]
        if gone:  # an operator reran one meanwhile: its rows stay
            with self.journal.transaction():
                pg.unmark(self.journal, gone)
        if ok:
            counts = pg.count_rows(self.journal, ok)
            counts.job_dirs, counts.bytes = removed.job_dirs, removed.bytes
            self._delete(ok, counts)
        return True

    def _delete(self, runs: list[int], counts: pg.Counts) -> None:
        # The rows go without an fsync of their own: lost in a crash, the runs are
        # still marked (that commit was durable before any file went) and the next
        # start deletes them again; the next durable commit makes this one durable
        # too (the WAL is synced in order). One fsync per batch, not two.
        with self.journal.transaction(durable=False):
            pg.delete(self.journal, runs)
        self._unchecked += 1
        self.totals.setdefault(self.started, pg.Counts()).add(counts)

    def _marks_durable(self) -> bool:
        """A batch's marks are committed without an fsync when the reaper syncs them
        before the first file goes; else durably, here."""
        return self.reaper is None

    # -- what a purge would remove now (ajs3 purge --dry-run) --------------------------

    def plan(self, now: float | None = None) -> dict[str, Any]:
        """Every run a round started now would remove, with its rows and bytes, and the
        runs a purge cut short left marked. Reads only; takes as long as the history
        is long (it is asked for by hand)."""
        now = self.clock() if now is None else now
        busy = set(self.busy())
        by_jobnet: dict[str, list[int]] = {}
        last = ""
        while True:
            names = pg.jobnets(self.journal, last, 100)
            if not names:
                break
            for jobnet in names:
                keep, after = self.keep_of(jobnet), 0
                found: list[int] = []
                while True:
                    chosen, nxt = pg.select(
                        self.journal, jobnet, keep, now, after=after, limit=1000, busy=busy
                    )
                    found.extend(chosen)
                    if nxt is None:
                        break
                    after = nxt
                if found:
                    by_jobnet[jobnet] = found
            last = names[-1]
        marked = pg.pending(self.journal, 1 << 30)
        runs = sorted({r for rs in by_jobnet.values() for r in rs} | set(marked))
        total = pg.Counts()
        fd = jobdirs.open_jobs(self.jobs)
        try:
            for start in range(0, len(runs), 500):
                chunk = runs[start : start + 500]
                total.add(pg.count_rows(self.journal, chunk))
                ids = pg.run_ids(self.journal, chunk)
                total.job_dirs += len(ids)
                if fd is not None:
                    total.bytes += sum(jobdirs.size(fd, i) for i in ids)
        finally:
            if fd is not None:
                os.close(fd)
        return {
            "total": total.to_dict(),
            "jobnets": {
                name: {"runs": len(rs), "keep": self.keep_of(name).to_dict()}
                for name, rs in sorted(by_jobnet.items())
            },
            "marked": len(marked),
        }


def _p99(values: deque[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
