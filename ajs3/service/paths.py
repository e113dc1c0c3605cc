"""Where a logical host keeps its files: data directory (shared) and run directory (local).

Both hold files that root writes and trusts (the pid file, the control socket, the
journal), so neither may be a place where another user can plant a link: the run
directory must be the daemon user's and closed to others (:func:`prepare_rundir`),
and files are replaced through new temporary files that are never links
(:func:`write_private`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ajs3 import datadir as dd
from ajs3.errors import AjsError, Code

_LHOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_lhost(lhost: str) -> str:
    if not _LHOST.match(lhost):
        raise AjsError(
            f"logical host name {lhost!r} is not valid",
            code=Code.BAD_ARGUMENT,
            hint="use letters, digits, '_', '.', '-' (at most 64), starting with a letter or digit",
        )
    return lhost


#: Where root's daemons keep their run directories.
SYSTEM_RUNDIR = Path("/run/ajs3")


def default_rundir(lhost: str) -> Path:
    """The run directory of lhost when no --rundir is given: $AJS3_RUNDIR/LHOST, else
    /run/ajs3/LHOST for root and for any user while root's daemon of that name has its
    socket there (so an operator or viewer reaches it without options), else the user's
    own runtime directory."""
    env = os.environ.get("AJS3_RUNDIR")
    if env:
        return Path(env) / lhost
    system = SYSTEM_RUNDIR / lhost
    if os.geteuid() == 0:
        return system
    try:
        os.stat(system / "control.sock")
        return system
    except OSError:  # none, or not ours to see: the user's own run directory
        pass
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/ajs3-{os.geteuid()}"
    return Path(base) / "ajs3" / lhost


@dataclass(frozen=True)
class Paths:
    lhost: str
    rundir: Path
    datadir: Path | None

    @property
    def socket(self) -> Path:
        return self.rundir / "control.sock"

    @property
    def pidfile(self) -> Path:
        return self.rundir / "daemon.json"

    def need_datadir(self) -> Path:
        if self.datadir is None:
            raise AjsError(
                f"no data directory known for logical host {self.lhost}",
                code=Code.BAD_ARGUMENT,
                hint="give --datadir DIR (or set AJS3_DATADIR), or start the logical host",
            )
        return self.datadir

    @property
    def lockfile(self) -> Path:
        return self.need_datadir() / "ajs3.lock"

    @property
    def definitions_dir(self) -> Path:
        return dd.definitions(self.need_datadir())

    @property
    def logdir(self) -> Path:
        return dd.log(self.need_datadir())


def _rundir_refused(path: Path, why: str, rundir: Path) -> AjsError:
    return AjsError(
        f"run directory {rundir} is not safe: {path} {why}",
        code=Code.RUNDIR_UNSAFE,
        hint=f"remove {path} (another user may have created it) and start again, or give "
        "a run directory of the daemon's user that others cannot write (--rundir)",
    )


def _trusted_dir(st: os.stat_result) -> str | None:
    """Why a parent directory of the run directory is not trusted, or None."""
    if st.st_uid not in (0, os.geteuid()):
        return f"is owned by uid {st.st_uid}"
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not (st.st_mode & stat.S_ISVTX):  # /tmp (sticky) is fine
        return f"has mode {stat.S_IMODE(st.st_mode):04o}: group or others may write it"
    return None


def check_rundir(rundir: Path) -> None:
    """Refuse (AJS3-E210) a run directory that is a link, is not the daemon user's,
    or that group or others may write, or a parent that another user owns or may
    write (a directory created beforehand under /tmp by somebody else)."""
    try:
        st = os.lstat(rundir)
    except OSError as exc:
        raise _rundir_refused(rundir, f"cannot be read: {exc.strerror}", rundir) from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise _rundir_refused(rundir, "is not a directory (a symbolic link?)", rundir)
    if st.st_uid != os.geteuid():
        raise _rundir_refused(
            rundir,
            f"is owned by uid {st.st_uid}, not by the daemon's user (uid {os.geteuid()})",
            rundir,
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _rundir_refused(
            rundir, f"has mode {stat.S_IMODE(st.st_mode):04o}: group or others may write it", rundir
        )
    lexical = list(Path(os.path.abspath(rundir)).parents)
    real = list(Path(os.path.realpath(rundir)).parents)
    for parent in lexical + real:
        try:
            pst = os.lstat(parent)
        except OSError as exc:
            raise _rundir_refused(parent, f"cannot be read: {exc.strerror}", rundir) from exc
        if stat.S_ISLNK(pst.st_mode):
            why = None if pst.st_uid in (0, os.geteuid()) else f"is a link of uid {pst.st_uid}"
        else:
            why = _trusted_dir(pst)
        if why is not None:
            raise _rundir_refused(parent, why, rundir)


def prepare_rundir(rundir: Path) -> None:
    """Create the run directory (0750, missing parents 0755) and check it
    (:func:`check_rundir`): the control socket and the pid file live there."""
    for parent in reversed(Path(os.path.abspath(rundir)).parents):
        if not os.path.lexists(parent):
            with contextlib.suppress(FileExistsError):
                parent.mkdir(mode=0o755)
    with contextlib.suppress(FileExistsError):
        rundir.mkdir(mode=0o750)
    check_rundir(rundir)


def write_private(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Replace ``path`` with ``data`` through a new temporary file beside it, created
    O_EXCL|O_NOFOLLOW (so never written through a link), fsynced and renamed. A link
    or a file of another user in the temporary file's place is refused (AJS3-E211);
    a leftover of ours from a crash is removed."""
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:
        st = os.lstat(tmp)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise AjsError(
                f"{tmp} is in the way: a {'link' if stat.S_ISLNK(st.st_mode) else 'file'} "
                f"of uid {st.st_uid} where ajs3 writes a temporary file; nothing was written",
                code=Code.UNSAFE_PATH,
                hint="find out who put it there, remove it, and try again",
            ) from None
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DataDirMark:
    """The data directory and journal a daemon started with, to notice that they
    disappeared under it (deleted, or the volume unmounted)."""

    datadir: Path
    dir_id: tuple[int, int]
    journal_id: tuple[int, int]

    @functools.cached_property
    def _paths(self) -> tuple[str, str]:
        """The data directory and its journal as strings: made once, stat'ed at every
        turn of the daemon's loop."""
        return str(self.datadir), str(dd.journal(self.datadir))

    @staticmethod
    def of(datadir: Path, journal: str = dd.JOURNAL) -> DataDirMark:
        d, j = os.stat(datadir), os.stat(datadir / journal)
        return DataDirMark(datadir, (d.st_dev, d.st_ino), (j.st_dev, j.st_ino))

    def gone(self) -> str | None:
        """Why the data directory is not the one the daemon started with, or None.
        Two stat calls: cheap enough for every heartbeat."""
        datadir, journal = self._paths
        try:
            d = os.stat(datadir)
        except OSError as exc:
            return f"data directory {self.datadir} is gone ({exc.strerror})"
        if (d.st_dev, d.st_ino) != self.dir_id:
            return f"data directory {self.datadir} was replaced (another directory or volume)"
        try:
            j = os.stat(journal)
        except OSError as exc:
            return f"journal {self.datadir / 'journal.db'} is gone ({exc.strerror})"
        if (j.st_dev, j.st_ino) != self.journal_id:
            return f"journal {self.datadir / 'journal.db'} was replaced"
        return None

    def check(self) -> None:
        """Raise AJS3-E209 if the data directory or its journal disappeared."""
        why = self.gone()
        if why is not None:
            raise AjsError(
                why,
                code=Code.DATADIR_GONE,
                hint="the daemon stops: restore or mount the data directory, "
                "then start the logical host again",
            )
