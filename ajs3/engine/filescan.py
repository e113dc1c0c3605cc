"""What a file watch finds, and which events that makes: pure functions and data.

A watch's files are the regular files of its directory whose names match its pattern.
Each is known by its identity (path, inode, size, modification time). The journal
keeps the identities a watch has taken into account (:mod:`ajs3.engine.watches`);
:func:`compare` tells, from what is recorded and what is found now, which files make
an event (ADR 0023):

- created: a file is found that is not recorded, or whose inode is not the recorded
  one (another file took the name);
- changed: a recorded file is found with the same inode and another size or time;
- deleted: a recorded file is not found.

A created or changed file counts only once it held still (same size and time) for the
watch's ``stable_for``: :class:`Candidates` keeps when each was last seen to change.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass

from ajs3.definitions.events import FileEvent, Watch

#: Names looked at in one directory scan; past them the scan stops (a directory of
#: millions of files is not a watch target, and a scan must not stall the daemon).
MAX_SCAN = 100_000


@dataclass(frozen=True)
class Identity:
    """One file as found or as recorded."""

    path: str
    inode: int
    size: int
    mtime_ns: int

    def same_content(self, other: Identity) -> bool:
        return self.size == other.size and self.mtime_ns == other.mtime_ns


def scan(watch: Watch) -> dict[str, Identity] | None:
    """The files matching ``watch`` now, by path; None if its directory can not be read
    (missing, not a directory, no permission): nothing is concluded from that."""
    found: dict[str, Identity] = {}
    pattern = watch.pattern
    literal = not any(c in pattern for c in "*?[")
    directory = watch.directory
    try:
        if literal:
            one = _identity(os.path.join(directory, pattern))
            if not os.path.isdir(directory):
                return None
            return {one.path: one} if one is not None else {}
        with os.scandir(directory) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_SCAN:
                    break
                if not fnmatch.fnmatchcase(entry.name, pattern):
                    continue
                ident = _identity(entry.path)
                if ident is not None:
                    found[ident.path] = ident
    except OSError:
        return None
    return found


def _identity(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Identity(path, st.st_ino, st.st_size, st.st_mtime_ns)


def compare(
    watch: Watch, recorded: dict[str, Identity], found: dict[str, Identity]
) -> list[tuple[FileEvent, Identity]]:
    """The events that ``found`` makes against ``recorded``, by path (for a deleted
    file, its recorded identity)."""
    events: list[tuple[FileEvent, Identity]] = []
    wanted = set(watch.events)
    for path in sorted(set(recorded) | set(found)):
        old, new = recorded.get(path), found.get(path)
        if new is None:
            if old is not None and FileEvent.DELETED in wanted:
                events.append((FileEvent.DELETED, old))
            continue
        if old is None or old.inode != new.inode:
            if FileEvent.CREATED in wanted:
                events.append((FileEvent.CREATED, new))
            elif old is not None and FileEvent.CHANGED in wanted:
                events.append((FileEvent.CHANGED, new))  # replaced: its content changed
        elif not old.same_content(new) and FileEvent.CHANGED in wanted:
            events.append((FileEvent.CHANGED, new))
    return events


class Candidates:
    """Created or changed files waiting to hold still, by path: the identity last seen
    and since when it has not changed."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Identity, float]] = {}

    def stable(self, ident: Identity, now: float, wait: float) -> bool:
        """Note ``ident`` seen at ``now``; whether it has held still for ``wait`` s."""
        if wait <= 0:
            self.seen.pop(ident.path, None)
            return True
        last = self.seen.get(ident.path)
        if last is None or last[0] != ident:
            self.seen[ident.path] = (ident, now)
            return False
        if now - last[1] >= wait:
            del self.seen[ident.path]
            return True
        return False

    def keep_only(self, paths: set[str]) -> None:
        """Forget the candidates that no longer make an event."""
        for path in [p for p in self.seen if p not in paths]:
            del self.seen[path]

    def next_due(self, wait: float) -> float | None:
        times = [since + wait for _, since in self.seen.values()]
        return min(times) if times else None
