"""Values for runs (JP1's macro variables and passing information).

A run gets its values from ``ajs3 entry JOBNET --var NAME=VALUE``; a job hands more
to the units after it by writing ``NAME=VALUE`` lines into the file named by
``AJS3_VARS_OUT``. Every value is journaled (table ``run_vars``) before anything uses
it, so a rerun or the next owner after a failover sees the same ones. A job sees the
values of its run as environment variables, and ``${NAME}`` in its ``command``
arguments is replaced by the value (``$${`` stands for a literal ``${``).

Names and sizes are checked here, all at once: one bad value refuses the whole set
(AJS3-E407) and nothing of it is applied.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ajs3.errors import AjsError, Code
from ajs3.fileperms import read_regular
from ajs3.journal.store import Journal

#: How a name looks: JP1 macro variable names, as shell variables can hold them.
NAME_SHAPE = "[A-Z_][A-Z0-9_]*"
NAME_RE = re.compile(NAME_SHAPE)
#: Names a run may not set: the job's identity (AJS3_*) and what the clean
#: environment of a job is made of (ajs3.engine.jobenv), or what changes how
#: programs are loaded and shells start.
RESERVED = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "IFS", "ENV", "BASH_ENV", "CDPATH"}
)
RESERVED_PREFIXES = ("AJS3_", "LD_")
MAX_NAME = 64
#: The longest value, in UTF-8 bytes (the control protocol carries at most 4096 chars).
MAX_VALUE = 4096
#: The most values a run holds, and their total size (names and values, in bytes).
MAX_COUNT = 100
MAX_TOTAL = 64 * 1024
#: A job's AJS3_VARS_OUT file is read up to this size; a larger one is refused.
MAX_OUT_FILE = MAX_TOTAL + MAX_COUNT * 2
#: The directory (in the data directory) of the jobs' AJS3_VARS_OUT files.
VARS_DIR = "vars"

_MACRO = re.compile(r"\$\$\{|\$\{([A-Z_][A-Z0-9_]*)\}")


class VariableError(AjsError, ValueError):
    """One or more bad values (AJS3-E407); ``problems`` lists every one."""

    code = Code.BAD_VARIABLE

    def __init__(self, problems: list[str], where: str) -> None:
        self.problems = problems
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        shown = "; ".join(problems[:10]) + more
        super().__init__(
            f"{len(problems)} bad value(s) {where}, nothing applied: {shown}",
            hint=f"a name is {NAME_SHAPE} of at most {MAX_NAME} characters, not "
            f"AJS3_* or LD_* or one of {', '.join(sorted(RESERVED))}; a value is one line "
            f"of at most {MAX_VALUE} bytes; at most {MAX_COUNT} values, {MAX_TOTAL} bytes "
            "in all (docs/runbooks/variables.md)",
        )


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run's value name, or None."""
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME:
        return f"name {name[:20]!r}... longer than {MAX_NAME} characters"
    if not NAME_RE.fullmatch(name):
        return f"name {name[:80]!r} is not {NAME_SHAPE}"
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        return f"name {name} is reserved"
    return None


def value_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be the value of ``name``, or None."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"value of {name} is not UTF-8 text"
    if size > MAX_VALUE:
        return f"value of {name} has {size} bytes, more than {MAX_VALUE}"
    if any(c in value for c in "\0\n\r"):
        return f"value of {name} holds a NUL byte or a line break"
    return None


def check(values: Mapping[str, str], where: str, known: Mapping[str, str] | None = None) -> None:
    """Raise :class:`VariableError` unless every value is good and, together with the
    run's ``known`` values, the run stays within the count and size bounds."""
    problems: list[str] = []
    for name, value in values.items():
        problems.extend(p for p in (name_problem(name), value_problem(name, value)) if p)
    merged = {**(known or {}), **values}
    if len(merged) > MAX_COUNT:
        problems.append(f"{len(merged)} values for the run, more than {MAX_COUNT}")
    total = sum(len(k.encode()) + len(v.encode(errors="replace")) for k, v in merged.items())
    if total > MAX_TOTAL:
        problems.append(f"{total} bytes of values for the run, more than {MAX_TOTAL}")
    if problems:
        raise VariableError(problems, where)


def parse_assignments(items: Iterable[str], where: str) -> dict[str, str]:
    """``NAME=VALUE`` texts (``entry --var``) as a checked mapping; a name given twice
    keeps its last value. VariableError with every problem."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for i, item in enumerate(items, 1):
        name, eq, value = item.partition("=")
        if not eq:
            problems.append(f"item {i} {item[:80]!r} is not NAME=VALUE")
            continue
        values[name] = value
    if problems:
        raise VariableError(problems, where)
    check(values, where)
    return values


def parse_out(data: bytes, where: str) -> dict[str, str]:
    """The ``NAME=VALUE`` lines of a job's AJS3_VARS_OUT file; empty lines and lines
    starting with ``#`` are skipped. VariableError with every problem, line by line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VariableError([f"byte {exc.start} is not UTF-8"], where) from None
    values: dict[str, str] = {}
    problems: list[str] = []
    for no, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq:
            problems.append(f"line {no} is not NAME=VALUE")
            continue
        problem = name_problem(name) or value_problem(name, value)
        if problem:
            problems.append(f"line {no}: {problem}")
            continue
        values[name] = value
    if problems:
        raise VariableError(problems, where)
    return values


def expand(argv: list[str], values: Mapping[str, str]) -> list[str]:
    """``${NAME}`` in each argument replaced by its value; ``$${`` is a literal ``${``;
    a ``${NAME}`` the run has no value for is left as it is (as JP1 does)."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        return values.get(name, m.group(0))

    return [_MACRO.sub(one, arg) if "${" in arg else arg for arg in argv]


# -- the journal -------------------------------------------------------------------


def load(journal: Journal, run: int) -> dict[str, str]:
    """The values of jobnet run ``run``, as journaled."""
    rows = journal.conn.execute(
        "SELECT name, value FROM run_vars WHERE jobnet_run=? ORDER BY name", (run,)
    )
    return {str(r[0]): str(r[1]) for r in rows}


def sources(journal: Journal, run: int) -> list[dict[str, object]]:
    """The values of a run with who set them ('' for `entry`, else the unit's path)."""
    try:
        rows = journal.conn.execute(
            "SELECT name, value, source, at FROM run_vars WHERE jobnet_run=? ORDER BY name",
            (run,),
        ).fetchall()
    except sqlite3.OperationalError:  # a journal of schema 3, read before its migration
        return []
    return [{"name": r[0], "value": r[1], "source": r[2], "at": r[3]} for r in rows]


def store(journal: Journal, run: int, values: Mapping[str, str], source: str) -> None:
    """Journal ``values`` for ``run`` (a name set again takes the newer value), in the
    caller's transaction when there is one."""
    if not values:
        return
    now = time.time()
    with journal.joined():
        journal.conn.executemany(
            "INSERT OR REPLACE INTO run_vars(jobnet_run, name, value, source, at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(run, k, v, source, now) for k, v in sorted(values.items())],
        )


# -- the AJS3_VARS_OUT file of one job ---------------------------------------------------


def out_path(datadir: Path, run_id: str) -> Path:
    return _vars_root(datadir) / f"{run_id}.out"


@functools.lru_cache(maxsize=8)
def _vars_root(datadir: Path) -> Path:
    """``<datadir>/vars`` (one join fewer for each of a step's many jobs)."""
    return datadir / VARS_DIR


def _vars_dir(datadir: Path) -> int:
    """A descriptor of ``<datadir>/vars``: the daemon user's, 0711 (a job of another
    user may reach its own file in it, list nothing and create nothing), never a link."""
    path = datadir / VARS_DIR
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:  # made once (a mkdir every time waits on the disk's journal)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o711)
        fd = os.open(path, flags)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise AjsError(
            f"{path} is not the daemon user's alone",
            code=Code.UNSAFE_PATH,
            hint=f"remove {path} and let ajs3 create it",
        )
    if stat.S_IMODE(st.st_mode) != 0o711:
        os.fchmod(fd, 0o711)
    return fd


class VarsDir:
    """``<datadir>/vars`` kept open for the batches of starts (:func:`prepare_out`'s
    ``dirfd``): before each batch one ``lstat`` checks that the path is still that
    directory, the daemon user's and 0711, else it is opened (and checked) again."""

    def __init__(self, datadir: Path) -> None:
        self.path = datadir / VARS_DIR
        self.datadir = datadir
        self.fd: int | None = None
        self._seen: tuple[int, int] = (-1, -1)

    def get(self) -> int | None:
        """Its descriptor; None if it cannot be had (each start then meets the error)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            st = None
        if (
            self.fd is not None
            and st is not None
            and (st.st_dev, st.st_ino) == self._seen
            and stat.S_ISDIR(st.st_mode)
            and stat.S_IMODE(st.st_mode) == 0o711
            and st.st_uid == os.geteuid()
        ):
            return self.fd
        self.close()
        try:
            self.fd = _vars_dir(self.datadir)
        except (OSError, AjsError):
            return None
        st = os.fstat(self.fd)
        self._seen = (st.st_dev, st.st_ino)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def prepare_out(
    datadir: Path,
    run_id: str,
    uid: int,
    gid: int,
    *,
    keep: bool = False,
    dirfd: int | None = None,
) -> Path:
    """Create the empty AJS3_VARS_OUT file of a job about to start, owned by the job's
    user (0600): the job can write it, and nothing else there. A file already there is
    a left-over of an attempt that never ran, made anew; with ``keep`` it is kept (on
    an execution host a start sent again may meet the job of the first one writing it).
    ``dirfd``: the vars directory, from :class:`VarsDir`."""
    dfd = _vars_dir(datadir) if dirfd is None else dirfd
    name = f"{run_id}.out"
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if keep:
            fd = os.open(name, flags, 0o600, dir_fd=dfd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(f"{name} is not a regular file")
        else:  # new (O_EXCL: a regular file of ours), a left-over removed first
            try:
                fd = os.open(name, flags | os.O_EXCL, 0o600, dir_fd=dfd)
            except FileExistsError:
                os.unlink(name, dir_fd=dfd)
                fd = os.open(name, flags | os.O_EXCL, 0o600, dir_fd=dfd)
        try:
            if uid != os.geteuid():
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    finally:
        if dirfd is None:
            os.close(dfd)
    return datadir / VARS_DIR / name


def put_out(datadir: Path, run_id: str, data: bytes) -> None:
    """Keep ``data`` as the AJS3_VARS_OUT file of a job that ran on an execution host
    (its file there, brought home with its end), for :func:`collect` to read as a
    local job's, with the same limits and checks; no file when it wrote nothing."""
    dfd = _vars_dir(datadir)
    name = f"{run_id}.out"
    try:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        if not data:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def remove_out(datadir: Path, run_id: str) -> int:
    """Remove a job's AJS3_VARS_OUT file with its job directory (retention): never
    through a link; the bytes it held (0: there was none)."""
    try:
        dfd = os.open(
            datadir / VARS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return 0
    name = f"{run_id}.out"
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        return 0
    finally:
        os.close(dfd)
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def take_out(datadir: Path, run_id: str) -> bytes | None:
    """The contents of a job's AJS3_VARS_OUT file; None if there is none. Never follows
    a link; a file larger than :data:`MAX_OUT_FILE` yields its first bytes plus one
    (refused by the caller). The file stays, like the job's output in ``jobs/``: were it
    removed here and the step's commit then failed (a full disk), its values would be
    lost when the end is collected again."""
    return read_regular(out_path(datadir, run_id), MAX_OUT_FILE + 1)


def job_inputs(
    journal: Journal,
    datadir: Path,
    run: int,
    run_id: str,
    argv: list[str],
    expand_args: bool,
    owner: tuple[int, int],
    *,
    values: Mapping[str, str] | None = None,
    dirfd: int | None = None,
    make: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """The arguments of a job with ``${NAME}`` replaced (``expand_args``: a ``command``,
    not a ``script``, whose shell reads the variables itself) and what its environment
    gets: the run's values (``values``: as read already in this step) and
    AJS3_VARS_OUT, its file made for ``owner`` (uid, gid; ``dirfd``: the vars
    directory, from :class:`VarsDir`). ValueError if the file cannot be made (the job
    then fails to start). ``make=False``: the file is only named; the supervisor
    server makes it as it begins the run (the request's VARS field, supervise.c)."""
    if values is None:
        values = load(journal, run)
    if not make:
        out = out_path(datadir, run_id)
    else:
        try:
            out = prepare_out(datadir, run_id, *owner, dirfd=dirfd)
        except (OSError, AjsError) as exc:
            raise ValueError(f"cannot make its AJS3_VARS_OUT file: {exc}") from exc
    env = {**values, "AJS3_VARS_OUT": str(out)}
    return (expand(argv, values) if expand_args else argv), env


def collect(journal: Journal, datadir: Path, run: int, run_id: str, unit: str) -> str | None:
    """Journal the values a job wrote into its AJS3_VARS_OUT file for the units after
    it; the message of the coded error (nothing applied) if the file is bad."""
    data = take_out(datadir, run_id)
    if not data:
        return None
    where = f"in the AJS3_VARS_OUT file of {unit} ({run_id})"
    try:
        if len(data) > MAX_OUT_FILE:
            raise VariableError([f"larger than {MAX_OUT_FILE} bytes"], where)
        values = parse_out(data, where)
        check(values, where, load(journal, run))
    except VariableError as exc:
        return str(exc)
    store(journal, run, values, unit)
    return None
