"""What the retention purge reads and writes in the journal: pure SQL, small batches.

A jobnet run may go only when every one of its unit runs has ended (:data:`FINAL`):
never a run that is active, held, in doubt (Unknown end status) or not yet started.
Of those, a run goes when it is older than the newest ``runs`` ended runs of its
jobnet, or ended more than ``days`` ago (:class:`Keep`).

Purging one run is three steps, in this order (docs/retention.md):

1. :func:`mark` records it in ``purging`` (one small transaction);
2. its job directories are removed (outside any transaction, :mod:`ajs3.engine.retention`);
3. :func:`delete` removes its rows (jobnet run, unit runs, events; one small transaction).

A kill between 1 and 3 leaves a marked run whose files may be half gone; the next
purge takes the marked runs first (:func:`pending`) and finishes them. A run whose row
exists and is not marked always has all its files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ajs3.journal.sql import placeholders
from ajs3.journal.store import Journal
from ajs3.keep import Keep
from ajs3.model import FINAL

_FINAL = tuple(sorted(s.value for s in FINAL))
_MARKS = placeholders(_FINAL)

#: a day in seconds
DAY = 86400.0


@dataclass(frozen=True)
class Scanned:
    """One run of a jobnet as the selection sees it."""

    id: int
    registered_at: float
    #: the root unit's end (None: not ended, or no root row)
    ended_at: float | None
    #: every unit run of it has ended
    ended: bool


def jobnets(journal: Journal, after: str = "", limit: int = 100) -> list[str]:
    """The jobnets that have runs, in order, after ``after``: one index probe each, so
    a long history costs nothing here."""
    out: list[str] = []
    last = after
    while len(out) < limit:
        row = journal.conn.execute(
            "SELECT min(jobnet) FROM jobnet_runs WHERE jobnet > ?", (last,)
        ).fetchone()
        if row is None or row[0] is None:
            break
        last = str(row[0])
        out.append(last)
    return out


def cutoff(journal: Journal, jobnet: str, runs: int) -> int | None:
    """The id of the ``runs``-th newest ended run of ``jobnet``: runs before it are beyond
    the generations kept (None: fewer ended runs than that)."""
    row = journal.conn.execute(
        "SELECT r.id FROM jobnet_runs r JOIN unit_runs u"
        " ON u.jobnet_run = r.id AND u.path = r.jobnet"
        f" WHERE r.jobnet = ? AND u.status IN ({_MARKS})"
        " ORDER BY r.id DESC LIMIT 1 OFFSET ?",
        (jobnet, *_FINAL, runs - 1),
    ).fetchone()
    return None if row is None else int(row[0])


def scan(journal: Journal, jobnet: str, after: int, limit: int) -> list[Scanned]:
    """Up to ``limit`` runs of ``jobnet`` with an id above ``after``, oldest first."""
    rows = journal.conn.execute(
        "SELECT r.id, r.registered_at, u.ended_at, u.status,"
        " EXISTS (SELECT 1 FROM unit_runs o WHERE o.jobnet_run = r.id"
        f"  AND o.status NOT IN ({_MARKS})) AS open"
        " FROM jobnet_runs r LEFT JOIN unit_runs u"
        " ON u.jobnet_run = r.id AND u.path = r.jobnet"
        " WHERE r.jobnet = ? AND r.id > ? ORDER BY r.id LIMIT ?",
        (*_FINAL, jobnet, after, limit),
    )
    return [
        Scanned(
            id=int(r[0]),
            registered_at=float(r[1]),
            ended_at=None if r[2] is None or r[3] not in _FINAL else float(r[2]),
            ended=r[3] in _FINAL and not r[4],
        )
        for r in rows
    ]


def beyond(run: Scanned, keep: Keep, count_cut: int | None, now: float) -> bool:
    """Whether an ended run is beyond what ``keep`` keeps (``count_cut`` from :func:`cutoff`)."""
    if not run.ended:
        return False
    if keep.runs is not None and count_cut is not None and run.id < count_cut:
        return True
    return (
        keep.days is not None and run.ended_at is not None and run.ended_at < now - keep.days * DAY
    )


def past_reach(run: Scanned, keep: Keep, count_cut: int | None, now: float) -> bool:
    """Whether no run from this one on (by id) can be beyond ``keep``: the scan of the
    jobnet may stop. A run registered within ``days`` cannot have ended before them."""
    by_count = keep.runs is None or count_cut is None or run.id >= count_cut
    by_days = keep.days is None or run.registered_at >= now - keep.days * DAY
    return by_count and by_days


def select(
    journal: Journal,
    jobnet: str,
    keep: Keep,
    now: float,
    *,
    after: int = 0,
    limit: int = 50,
    busy: Iterable[int] = (),
) -> tuple[list[int], int | None]:
    """The runs of ``jobnet`` to purge among the next ``limit`` scanned after ``after``,
    and the id to scan on from (None: this jobnet is done for this round). ``busy``
    are runs the scheduler holds in memory: never taken, whatever the journal says."""
    if keep.unlimited:
        return [], None
    count_cut = cutoff(journal, jobnet, keep.runs) if keep.runs is not None else None
    held = set(busy)
    chosen: list[int] = []
    rows = scan(journal, jobnet, after, limit)
    for run in rows:
        if past_reach(run, keep, count_cut, now):
            return chosen, None
        if run.id not in held and beyond(run, keep, count_cut, now):
            chosen.append(run.id)
    if len(rows) < limit:
        return chosen, None
    return chosen, rows[-1].id


def still_ended(journal: Journal, runs: Sequence[int]) -> list[int]:
    """Those of ``runs`` that exist and whose every unit run has ended."""
    if not runs:
        return []
    marks = placeholders(runs)
    rows = journal.conn.execute(
        f"SELECT r.id FROM jobnet_runs r WHERE r.id IN ({marks}) AND NOT EXISTS"
        " (SELECT 1 FROM unit_runs o WHERE o.jobnet_run = r.id"
        f"  AND o.status NOT IN ({_MARKS}))",
        (*runs, *_FINAL),
    )
    return sorted(int(r[0]) for r in rows)


def mark(journal: Journal, runs: Sequence[int]) -> list[int]:
    """Record ``runs`` as being purged (step 1), those that still may be; returns them."""
    with journal.joined():
        ok = still_ended(journal, runs)
        journal.conn.executemany(
            "INSERT OR IGNORE INTO purging(jobnet_run, since) VALUES (?, ?)",
            [(r, time.time()) for r in ok],
        )
    return ok


def pending(journal: Journal, limit: int) -> list[int]:
    """Runs marked by a purge that has not finished them (oldest first)."""
    rows = journal.conn.execute(
        "SELECT jobnet_run FROM purging ORDER BY jobnet_run LIMIT ?", (limit,)
    )
    return [int(r[0]) for r in rows]


def unmark(journal: Journal, runs: Sequence[int]) -> None:
    """A marked run that is no longer ended (an operator reran it before the purge
    finished it) is given back, files untouched."""
    with journal.joined():
        journal.conn.executemany("DELETE FROM purging WHERE jobnet_run=?", [(r,) for r in runs])


def run_ids(journal: Journal, runs: Sequence[int]) -> list[str]:
    """The run ids (job directory names) of every attempt of every job of ``runs``."""
    if not runs:
        return []
    marks = placeholders(runs)
    rows = journal.conn.execute(
        f"SELECT run_id FROM unit_runs WHERE jobnet_run IN ({marks}) AND run_id IS NOT NULL"
        " UNION SELECT e.run_id FROM events e JOIN unit_runs u ON u.id = e.unit_run"
        f" WHERE u.jobnet_run IN ({marks}) AND e.run_id IS NOT NULL",
        (*runs, *runs),
    )
    return sorted(str(r[0]) for r in rows)


@dataclass
class Counts:
    """What a purge removes (or would): rows and files."""

    jobnet_runs: int = 0
    unit_runs: int = 0
    events: int = 0
    job_dirs: int = 0
    bytes: int = 0
    #: notification events delivered to every route, older than a week
    notifications: int = 0

    def add(self, other: Counts) -> None:
        for key in vars(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


def count_rows(journal: Journal, runs: Sequence[int]) -> Counts:
    """The rows ``runs`` have: jobnet runs, unit runs, events."""
    if not runs:
        return Counts()
    marks = placeholders(runs)
    units, events = journal.conn.execute(
        f"SELECT count(*), coalesce(sum((SELECT count(*) FROM events e"
        f" WHERE e.unit_run = u.id)), 0) FROM unit_runs u WHERE u.jobnet_run IN ({marks})",
        tuple(runs),
    ).fetchone()
    return Counts(jobnet_runs=len(runs), unit_runs=int(units), events=int(events))


def delete(journal: Journal, runs: Sequence[int]) -> None:
    """Remove the rows of ``runs`` (step 3): their unit runs, events and marks go with
    them (ON DELETE CASCADE)."""
    if not runs:
        return
    with journal.joined():
        journal.conn.executemany("DELETE FROM jobnet_runs WHERE id=?", [(r,) for r in runs])


def delivered_events(journal: Journal, before: float, after: int, limit: int) -> tuple[int, int]:
    """Delete the notification events past id ``after`` (oldest first, ``limit`` looked
    at) that every route has delivered and that were written before ``before``; an
    event still waiting for a route stays. Returns (deleted, the last id looked at:
    0 once an event not old enough is met, so the walk is done)."""
    rows = journal.conn.execute(
        "SELECT e.id, e.at, NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event = e.id"
        " AND d.delivered_at IS NULL) FROM notify_events e WHERE e.id > ? ORDER BY e.id LIMIT ?",
        (after, limit),
    ).fetchall()
    gone: list[int] = []
    last = 0
    for event, at, delivered in rows:
        if at >= before:
            last = 0
            break
        last = int(event)
        if delivered:
            gone.append(int(event))
    else:
        if len(rows) < limit:
            last = 0
    if gone:
        with journal.joined():
            journal.conn.executemany("DELETE FROM notify_events WHERE id=?", [(e,) for e in gone])
    return len(gone), last
