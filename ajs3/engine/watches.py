"""File watches of one logical host: file-watch jobs and start conditions (ADR 0023).

A watch is active while its owner wants it: each watch of a root jobnet's start
condition while the definitions have it (key ``cond:<jobnet>#<n>``), and the watch of
a file-watch job while that job runs (key ``unit:<unit run id>``). Directories are
watched with inotify (``inotify_simple``); an inotify event only says "look again":
what counts is always a scan compared with what the journal recorded
(:mod:`ajs3.engine.filescan`). Every directory is also scanned at start (the fallback
scan: what arrived while nobody watched), after ``define``, and every
:data:`RESCAN` seconds (every :data:`POLL` seconds without inotify, or while a
directory is missing).

Exactly once: the identity of each file a watch fired for is written in the same
transaction as what the event does (the run it registers, or the end of the
file-watch job and the values handed on), inside the scheduler's step. A restart or a
failover finds the record and does not fire again; a file not recorded fires once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ajs3.definitions.events import FileEvent, StartCondition, Watch
from ajs3.definitions.units import Unit
from ajs3.engine import runvars, suspend
from ajs3.engine.core import Core
from ajs3.engine.filescan import Candidates, Identity, compare, scan
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, Status, UnitKind

#: Seconds between scans of every watch even when inotify says nothing.
RESCAN = 30.0
#: ... without inotify, or while a watched directory is missing.
POLL = 2.0
#: The values a file event hands to the run (docs/definitions.md, "Event jobs").
PATH_VALUE = "AJS3_FILE_PATH"
EVENT_VALUE = "AJS3_FILE_EVENT"

#: Registers a run of a root jobnet with its values, due at a time: the run's number.
Register = Callable[[str, dict[str, str], float], int]


@dataclass
class Active:
    """One watch that is wanted now, and its owner."""

    key: str
    watch: Watch
    jobnet: str
    condition: StartCondition | None = None
    state: RunState | None = None
    ur: UnitRun | None = None


class Inotify:
    """The inotify descriptor and its directory watches (None without inotify)."""

    MASK_NAMES = (
        "CREATE",
        "DELETE",
        "MODIFY",
        "CLOSE_WRITE",
        "MOVED_FROM",
        "MOVED_TO",
        "ATTRIB",
        "DELETE_SELF",
        "MOVE_SELF",
    )

    def __init__(self) -> None:
        import inotify_simple

        self._mod: Any = inotify_simple
        self.ino: Any = inotify_simple.INotify(nonblocking=True)
        mask = 0
        for name in self.MASK_NAMES:
            mask |= int(getattr(inotify_simple.flags, name))
        self.mask = mask
        self.overflow = int(inotify_simple.flags.Q_OVERFLOW)
        self.by_wd: dict[int, str] = {}
        self.by_dir: dict[str, int] = {}

    def fileno(self) -> int:
        return int(self.ino.fileno())

    def sync(self, wanted: set[str]) -> set[str]:
        """Watch exactly ``wanted``; return the directories that could not be watched."""
        for directory in [d for d in self.by_dir if d not in wanted]:
            wd = self.by_dir.pop(directory)
            self.by_wd.pop(wd, None)
            try:
                self.ino.rm_watch(wd)
            except OSError:
                pass  # gone with its directory
        missing: set[str] = set()
        for directory in wanted - set(self.by_dir):
            try:
                wd = int(self.ino.add_watch(directory, self.mask))
            except OSError:
                missing.add(directory)
                continue
            self.by_dir[directory] = wd
            self.by_wd[wd] = directory
        return missing

    def read(self) -> tuple[set[str], bool]:
        """The directories something happened in, and whether events were lost."""
        dirs: set[str] = set()
        lost = False
        try:
            events = list(self.ino.read(timeout=0))
        except (BlockingIOError, OSError):
            return dirs, False
        for event in events:
            if event.mask & self.overflow:
                lost = True
                continue
            directory = self.by_wd.get(event.wd)
            if directory is None:
                continue
            dirs.add(directory)
            if event.mask & int(self._mod.flags.IGNORED):  # its directory went away
                self.by_wd.pop(event.wd, None)
                self.by_dir.pop(directory, None)
                lost = True
        return dirs, lost

    def close(self) -> None:
        self.ino.close()


class Watches:
    """The file watches of a scheduler; called inside its step's transaction."""

    def __init__(self, core: Core, register: Register) -> None:
        self.core = core
        self.register = register
        #: made when first needed (the daemon's loop, or a watch): a scheduler made
        #: for a test or a tool takes none of the user's inotify instances
        self.inotify: Inotify | None = None
        self._tried = False
        self.dirty: set[str] = set()
        self.everything = True
        self.next_scan = 0.0
        self.missing: set[str] = set()
        self.candidates: dict[str, Candidates] = {}
        self.waits: dict[str, float] = {}
        self.any = False
        #: whether a root jobnet holds a file-watch job, by id (the root kept, so the id
        #: is not reused): the runs of others are not looked through at every step
        self._has_watch: dict[int, tuple[Unit, bool]] = {}

    # -- what the daemon's loop uses --------------------------------------------------

    def notifier(self) -> Inotify | None:
        """The inotify instance, made at the first call; None without inotify (the
        watches then poll)."""
        if not self._tried:
            self._tried = True
            try:
                self.inotify = Inotify()
            except (ImportError, OSError) as exc:
                self.core.log.warning("inotify unavailable: file watches poll", error=str(exc))
        return self.inotify

    def fileno(self) -> int | None:
        notifier = self.notifier()
        return notifier.fileno() if notifier is not None else None

    def readable(self) -> None:
        if self.inotify is None:
            return
        dirs, lost = self.inotify.read()
        self.dirty |= dirs
        if lost:
            self.everything = True

    def look_again(self) -> None:
        """Scan every watch at the next step (start, ``define``, a rolled-back step)."""
        self.everything = True

    def next_wake(self) -> float | None:
        if not self.any:
            return None
        times = [self.next_scan]
        for key, cands in self.candidates.items():
            due = cands.next_due(self.waits.get(key, 0.0))
            if due is not None:
                times.append(due)
        return min(times)

    # -- the watches wanted now -------------------------------------------------------

    def active(self) -> list[Active]:
        found: list[Active] = []
        for root in self.core.definitions.jobnets.values():
            cond = root.start_condition
            if cond is None:
                continue
            for i, watch in enumerate(cond.watches, 1):
                found.append(Active(f"cond:{root.path}#{i}", watch, root.path, condition=cond))
        for state in self.core.runs.values():
            if not self._holds_watch(state.root):
                continue
            for path, ur in state.urs.items():
                if ur.kind is not UnitKind.FILEWATCH or ur.status is not Status.RUNNING:
                    continue
                wanted = state.units[path].watch
                if wanted is not None:
                    found.append(
                        Active(f"unit:{ur.id}", wanted, state.root.path, state=state, ur=ur)
                    )
        return found

    def _holds_watch(self, root: Unit) -> bool:
        known = self._has_watch.get(id(root))
        if known is None or known[0] is not root:
            known = (root, any(u.kind is UnitKind.FILEWATCH for u in root.walk()))
            self._has_watch[id(root)] = known
        return known[1]

    # -- the step ---------------------------------------------------------------------

    def check(self, now: float) -> None:
        """Scan the watches something may have happened to and fire their events."""
        acts = self.active()
        self.any = bool(acts)
        everything = self.everything or now >= self.next_scan
        if everything:
            self._forget_unwanted({a.key for a in acts})
            self.everything = False
            wanted = {a.watch.directory for a in acts}
            notifier = self.notifier() if acts else self.inotify
            if notifier is not None:
                self.missing = notifier.sync(wanted)
            pause = POLL if self.inotify is None or self.missing else RESCAN
            self.next_scan = now + pause
        self.waits = {a.key: a.watch.stable_for for a in acts}
        for key in [k for k in self.candidates if k not in self.waits]:
            del self.candidates[key]
        dirty, self.dirty = self.dirty, set()
        for act in acts:
            if act.ur is not None and act.state is not None and act.state.run.interrupted:
                self._kill(act, now)
                continue
            cands = self.candidates.get(act.key)
            due = cands.next_due(act.watch.stable_for) if cands is not None else None
            if everything or act.watch.directory in dirty or (due is not None and due <= now):
                self._look(act, now)

    def establish(self, now: float) -> None:
        """Begin the watches of file-watch jobs that started in this step, in its
        transaction (so that nothing that happens after their start goes unseen)."""
        for act in self.active():
            if act.ur is not None and self._row(act.key) is None:
                self._look(act, now)
                self.any = True
                notifier = self.notifier()
                if notifier is not None:
                    wanted = set(notifier.by_dir) | {act.watch.directory}
                    self.missing |= notifier.sync(wanted)

    # -- one watch --------------------------------------------------------------------

    def _row(self, key: str) -> tuple[str, int] | None:
        row = self.core.journal.conn.execute(
            "SELECT spec, fired FROM watches WHERE watch=?", (key,)
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def _recorded(self, key: str) -> dict[str, Identity]:
        rows = self.core.journal.conn.execute(
            "SELECT path, inode, size, mtime_ns FROM watch_files WHERE watch=?", (key,)
        )
        return {str(r[0]): Identity(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def _look(self, act: Active, now: float) -> None:
        watch, key = act.watch, act.key
        found = scan(watch)
        row = self._row(key)
        conn = self.core.journal.conn
        if row is None or row[0] != watch.spec():
            with self.core.journal.joined():
                self._drop(key)
                conn.execute(
                    "INSERT INTO watches(watch, spec, since, fired) VALUES (?, ?, ?, 0)",
                    (key, watch.spec(), now),
                )
                for ident in (found or {}).values():
                    if watch.existing and FileEvent.CREATED in watch.events:
                        continue  # counts as created: left unrecorded, it makes the event
                    self._record(key, ident, fired=False, run=None, now=now)
            self.core.log.info("file watch began", watch=key, path=watch.path)
            if not (watch.existing and found):
                return
        if found is None:
            return  # its directory can not be read now: nothing is concluded
        recorded = self._recorded(key)
        events = compare(watch, recorded, found)
        cands = self.candidates.setdefault(key, Candidates())
        waiting: set[str] = set()
        ready: list[tuple[FileEvent, Identity]] = []
        for event, ident in events:
            if event is FileEvent.DELETED:
                ready.append((event, ident))
                continue
            waiting.add(ident.path)
            if cands.stable(ident, now, watch.stable_for):
                ready.append((event, ident))
                waiting.discard(ident.path)
        cands.keep_only(waiting)
        with self.core.journal.joined():
            evented = {ident.path for _, ident in events}
            for path, ident in found.items():  # no event of its own: recorded as it is
                if path not in evented and recorded.get(path) != ident:
                    self._record(key, ident, fired=None, run=None, now=now)
            for path in recorded:
                if path not in found and path not in evented:
                    conn.execute("DELETE FROM watch_files WHERE watch=? AND path=?", (key, path))
            for event, ident in ready:
                if act.ur is not None:
                    self._end_job(act, event, ident, now)
                    return
                self._start_run(act, event, ident, now)

    def _record(
        self, key: str, ident: Identity, *, fired: bool | None, run: int | None, now: float
    ) -> None:
        """Write what the watch has taken into account of one file; ``fired`` None keeps
        the flag a recorded file had (a file changed but not evented)."""
        conn = self.core.journal.conn
        if fired is None:
            prior = conn.execute(
                "SELECT fired, run FROM watch_files WHERE watch=? AND path=?", (key, ident.path)
            ).fetchone()
            flag, run = (int(prior[0]), prior[1]) if prior is not None else (0, None)
        else:
            flag = int(fired)
        conn.execute(
            "INSERT OR REPLACE INTO watch_files(watch, path, inode, size, mtime_ns, fired, run,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, ident.path, ident.inode, ident.size, ident.mtime_ns, flag, run, now),
        )

    def _taken(
        self, key: str, event: FileEvent, ident: Identity, run: int | None, now: float
    ) -> None:
        conn = self.core.journal.conn
        if event is FileEvent.DELETED:
            conn.execute("DELETE FROM watch_files WHERE watch=? AND path=?", (key, ident.path))
        else:
            self._record(key, ident, fired=run is not None, run=run, now=now)

    def _start_run(self, act: Active, event: FileEvent, ident: Identity, now: float) -> None:
        cond = act.condition
        assert cond is not None
        log = self.core.log.bind(jobnet=act.jobnet, watch=act.key, file=ident.path)
        if suspend.holds_back(self.core.journal, act.jobnet, now):
            return  # not taken into account: it fires once the jobnet is resumed
        why = ""
        if not cond.in_range(now):
            why = "outside the start condition's valid range (from/until)"
        elif cond.limit is not None and self._fired_count(act.jobnet) >= cond.limit:
            why = f"the start condition's limit of {cond.limit} runs is reached"
        if why:
            self._taken(act.key, event, ident, None, now)
            log.info("file event not acted on", file_event=event.value, reason=why)
            return
        run = self.register(act.jobnet, {PATH_VALUE: ident.path, EVENT_VALUE: event.value}, now)
        self._taken(act.key, event, ident, run, now)
        self.core.journal.conn.execute(
            "UPDATE watches SET fired = fired + 1 WHERE watch=?", (act.key,)
        )
        log.info("start condition fired: run registered", file_event=event.value, run=run)

    def _fired_count(self, jobnet: str) -> int:
        row = self.core.journal.conn.execute(
            "SELECT coalesce(sum(fired), 0) FROM watches WHERE watch LIKE ? ESCAPE '\\'",
            (_like_prefix(f"cond:{jobnet}#"),),
        ).fetchone()
        return int(row[0])

    def _end_job(self, act: Active, event: FileEvent, ident: Identity, now: float) -> None:
        ur, state = act.ur, act.state
        assert ur is not None and state is not None
        journal = self.core.journal
        runvars.store(
            journal, state.run.id, {PATH_VALUE: ident.path, EVENT_VALUE: event.value}, ur.path
        )
        journal.set_status(
            ur,
            Status.ENDED_NORMALLY,
            ReasonCode.FILE_EVENT,
            f"file {event.value}: {ident.path}",
            ended_at=now,
        )
        self._drop(act.key)
        self.candidates.pop(act.key, None)
        self.core.dirty.add(state.run.id)
        self.core.log.info(
            "file-watch job ended",
            unit=ur.path,
            run=state.run.id,
            file_event=event.value,
            file=ident.path,
        )

    def _kill(self, act: Active, now: float) -> None:
        ur, state = act.ur, act.state
        assert ur is not None and state is not None
        self.core.journal.set_status(
            ur, Status.KILLED, ReasonCode.KILLED_BY_OPERATOR, "killed by an operator", ended_at=now
        )
        self._drop(act.key)
        self.candidates.pop(act.key, None)
        self.core.dirty.add(state.run.id)

    def _drop(self, key: str) -> None:
        conn = self.core.journal.conn
        with self.core.journal.joined():
            conn.execute("DELETE FROM watch_files WHERE watch=?", (key,))
            conn.execute("DELETE FROM watches WHERE watch=?", (key,))

    def _forget_unwanted(self, keys: set[str]) -> None:
        """Drop the records of watches no longer wanted (a start condition removed or
        changed by ``define``, a file-watch job that ended otherwise)."""
        stored = [str(r[0]) for r in self.core.journal.conn.execute("SELECT watch FROM watches")]
        for key in stored:
            if key not in keys:
                self._drop(key)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
