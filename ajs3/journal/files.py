"""The journal's files on disk: the file system they may live on, the signs that a
logical host has run in a data directory, their permissions, and a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from pathlib import Path

from ajs3 import datadir as dd
from ajs3.errors import AjsError, Code, DataDirError, JournalError

JOURNAL_FILE = dd.JOURNAL
_REMOTE_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "lustre",
}


def filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (longest mount point match)."""
    best, fstype = "", "unknown"
    target = str(path.resolve())
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


def check_datadir(datadir: Path) -> None:
    """Refuse a data directory that is missing, not writable, or on a network file system."""
    if not datadir.is_dir():
        raise DataDirError(
            f"data directory {datadir} does not exist or is not a directory",
            code=Code.DATADIR_MISSING,
            hint="create it, or mount the logical host's volume there",
        )
    if not os.access(datadir, os.W_OK | os.X_OK):
        raise DataDirError(
            f"data directory {datadir} is not writable by this user",
            code=Code.DATADIR_ACCESS,
            hint="run as its owner or fix its permissions",
        )
    fstype = filesystem_type(datadir)
    if fstype in _REMOTE_FS:
        raise DataDirError(
            f"data directory {datadir} is on a network file system ({fstype})",
            code=Code.DATADIR_NFS,
            hint="SQLite's WAL needs a local file system: use a block device (ext4, xfs)",
        )


def logical_host_traces(datadir: Path) -> list[str]:
    """What in ``datadir`` shows that a logical host has run there: ``jobs/`` (made
    by every daemon start), a non-empty file in ``log/``, a journal's ``-wal``.
    Definition files and ajs3.yaml are not traces: an operator writes them before
    the first start."""
    found = []
    if os.path.lexists(datadir / "jobs"):
        found.append("jobs/")
    with contextlib.suppress(OSError):
        if any(
            e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_size
            for e in os.scandir(datadir / "log")
        ):
            found.append("log/")
    with contextlib.suppress(OSError):
        if os.lstat(datadir / (JOURNAL_FILE + "-wal")).st_size:
            found.append(JOURNAL_FILE + "-wal")
    return found


def journal_files_private(path: Path) -> str:
    """Refuse journal files that are links (AJS3-E211); make the existing ones 0600.
    Returns "missing" or "empty" for a journal that would be created, else ""."""
    fresh = "missing"
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(
                f"{name} is not a regular file (a link?): the journal is never opened through one",
                code=Code.UNSAFE_PATH,
                hint="put the journal file itself in the data directory",
            )
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(name, 0o600)
        if name == path:
            fresh = "" if st.st_size else "empty"
    return fresh


class DiskFull(AjsError):
    """A write to the journal failed because its file system is full (AJS3-E208):
    the transaction was rolled back whole."""


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL and for ENOSPC (or EDQUOT) from the OS."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == 13 or "database or disk is full" in str(exc)  # 13: SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


#: The size of the write-ahead log at its fullest: SQLite checkpoints it at 1,000 pages
#: (4 KiB and a 24-byte header each) and then writes it again from its start.
WAL_HIGH_WATER = 1000 * (4096 + 24) + 32


def grow_wal(conn: sqlite3.Connection, wal: Path, size: int) -> bool:
    """Make the write-ahead log ``wal`` of ``conn``'s journal at least ``size`` bytes
    (ADR 0036), so that commits write over blocks it has rather than add blocks to it:
    an fdatasync that grows a file waits for a commit of the file system's journal as
    well (0.9 ms against 0.3 on the bench's volume). SQLite's own rollback does it: a
    transaction larger than a tiny page cache spills its pages into the log as frames
    never committed, then is rolled back; the log keeps its size, the journal is as it
    was. False if it was that big already, or could not be made so (a full disk, a
    journal another writer holds): the log then grows as commits come, as it always
    did. Not durable: the caller syncs the log."""
    try:
        if wal.stat().st_size >= size:
            return False
    except FileNotFoundError:
        pass
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA cache_size=10")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE ajs3_wal_presize(b BLOB)")
            conn.execute("INSERT INTO ajs3_wal_presize VALUES (zeroblob(?))", (size,))
        finally:
            if conn.in_transaction:  # SQLite rolled a full disk's back by itself
                conn.execute("ROLLBACK")
    except sqlite3.Error:
        return False
    finally:
        conn.execute(f"PRAGMA cache_size={int(cache)}")
    return True


class WalFile:
    """The journal's write-ahead log (``journal.db-wal``), held open read-only so that
    the daemon, or the supervisor server it hands the descriptor to, can fdatasync what
    was committed without an fsync (ADR 0034)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: tuple[int, int, int] | None = None

    def current(self) -> tuple[int, int, int] | None:
        """The descriptor of the file, its device and its inode; None while there is no
        such file (SQLite removed it after a checkpoint: nothing in it to make durable).
        Opened again if the file was replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        if self._held is not None and self._held[1:] == (st.st_dev, st.st_ino):
            return self._held
        self.close()
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        st = os.fstat(fd)
        self._held = (fd, st.st_dev, st.st_ino)
        return self._held

    def sync(self) -> None:
        held = self.current()
        if held is None:
            return
        try:
            os.fdatasync(held[0])
        except OSError as exc:
            raise JournalError(
                f"the journal's write-ahead log {self.path} cannot be made durable: {exc.strerror}",
                hint="check the device of the data directory (dmesg); the daemon stops so "
                "that the logical host is started again, here or elsewhere",
            ) from exc

    def close(self) -> None:
        if self._held is not None:
            os.close(self._held[0])
            self._held = None
