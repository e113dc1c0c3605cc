"""Job process groups and the processes around them: which /proc entry is which
process, and the one way a job's group is signalled (:func:`kill_group`), only once it
is verified as a job group of this daemon's supervisors (:func:`job_session`)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from typing import Any

from ajs3.engine import native


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat from the state on (index 0: state, 2: process
    group, 3: session, 19: start time)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def proc_stat(pid: int) -> tuple[bytes, int]:
    """A process's state letter and kernel start time (clock ticks since boot)."""
    fields = _stat_fields(pid)
    return fields[0], int(fields[19])


def proc_ids(pid: int) -> tuple[int, int, int] | None:
    """(process group, session, start time) of a live process, or None."""
    try:
        fields = _stat_fields(pid)
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[2]), int(fields[3]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def proc_starttime(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), or None if gone."""
    try:
        return proc_stat(pid)[1]
    except (OSError, ValueError, IndexError):
        return None


def is_same_process(pid: int, start: int | None) -> bool:
    """True if ``pid`` is alive (not a zombie) and is the process that started at ``start``."""
    try:
        state, now = proc_stat(pid)
    except (OSError, ValueError, IndexError):
        return False
    if state in (b"Z", b"X"):
        return False
    if start is None:
        return True
    return now == start


def pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


#: Job process groups verified as ours while their supervisor lived: pgid -> session.
#: A pgid stays taken while any process of the group lives, so a group that still
#: has members in the same session is the same group (its stragglers after the
#: supervisor ended, for instance). Entries go when the group is found gone.
_VERIFIED: dict[int, int] = {}


_VERIFIED_MAX = 4096


def _group_member(pgid: int) -> tuple[int, int, int] | None:
    """(pid, session, start time) of a live process of group ``pgid``: its leader if
    it lives (cheap), else any member found in /proc."""
    ids = proc_ids(pgid)
    if ids is not None and ids[0] == pgid:
        return pgid, ids[1], ids[2]
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                ids = proc_ids(int(name))
                if ids is not None and ids[0] == pgid:
                    return int(name), ids[1], ids[2]
    return None


def _is_supervisor(pid: int, start: int | None) -> bool:
    """True if ``pid`` is a live ajs3-supervise of this daemon's user (and started at
    ``start`` when given). Only that user can make such a process."""
    ids = proc_ids(pid)
    if ids is None or (start is not None and ids[2] != start):
        return False
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            comm = f.read().strip()
        with open(f"/proc/{pid}/status", "rb") as f:
            uids = next(line for line in f if line.startswith(b"Uid:")).split()[1:3]
    except (OSError, StopIteration):
        return False
    return comm == native.BINARY.encode()[:15] and all(int(u) == os.geteuid() for u in uids)


def job_session(pgid: int, record: Mapping[str, Any] | None = None) -> int | None:
    """The session of process group ``pgid`` if it is verified as one of our jobs'
    groups, else None (gone, or not ours).

    A job's group never leads its session: its supervisor does (it called setsid),
    and runs as the daemon's user. Verified: a live member of the group whose session
    is a live ajs3-supervise of the daemon's user, or a session verified so while the
    supervisor lived, or (the supervisor gone, no record at hand) a group whose leader
    was started with a job's run identity in its environment. With ``record`` (the
    run's started.json), the session must also be the recorded supervisor's, started
    at the recorded time; when the supervisor is gone, the group's leader must be the
    recorded job, started at the recorded time (``job_start``), with the run's id in
    its environment. A pgid from a forged record thus never reaches a process group
    that is not a job of this daemon.
    """
    member = _group_member(pgid)
    if member is None:
        _VERIFIED.pop(pgid, None)
        return None
    pid, sid, started = member
    if sid == pgid:
        return None
    if record is not None:
        if record.get("pgid") != pgid or record.get("supervisor_pid") != sid:
            return None
        if _is_supervisor(sid, record.get("supervisor_start")):
            return _remember(pgid, sid)
        if proc_ids(sid) is not None:
            return None  # the session's leader lives and is not the recorded supervisor
        # The supervisor is gone: the leader must be the recorded job. Pids and start
        # times can be read by anyone, so it must also carry the run's identity.
        job_start = record.get("job_start")
        if (
            pid == pgid
            and record.get("job_pid") == pgid
            and job_start in (None, started)
            and _started_as_job(pgid, record.get("run_id"))
        ):
            return sid
        return sid if _VERIFIED.get(pgid) == sid else None
    if _VERIFIED.get(pgid) == sid:
        return sid
    if _is_supervisor(sid, None):
        return _remember(pgid, sid)
    if pid == pgid and proc_ids(sid) is None and _started_as_job(pgid, None):
        return sid  # an orphaned job: its supervisor is gone, its leader still ours
    return None


def _started_as_job(pid: int, run_id: Any) -> bool:
    """True if ``pid`` was started with a job's run identity in its environment (that
    of ``run_id`` when given), as only a supervisor starts a process: for a group whose
    supervisor died. Nobody can put that into another user's process."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read(1 << 20)
    except OSError:
        return False
    found = dict(item.split(b"=", 1) for item in env.split(b"\0") if b"=" in item)
    if not {b"AJS3_RUN_ID", b"AJS3_LHOST", b"AJS3_EPOCH"} <= found.keys():
        return False
    return run_id is None or found[b"AJS3_RUN_ID"] == str(run_id).encode()


def _remember(pgid: int, sid: int) -> int:
    if len(_VERIFIED) >= _VERIFIED_MAX:
        for old in list(_VERIFIED)[: _VERIFIED_MAX // 2]:
            del _VERIFIED[old]
    _VERIFIED[pgid] = sid
    return sid


def kill_group(pgid: int | None, sig: int, record: Mapping[str, Any] | None = None) -> bool:
    """Signal a job's whole process group; False if it is gone or cannot be verified
    as a job of ours (:func:`job_session`), in which case nothing is signalled."""
    if not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1:
        return False
    if job_session(pgid, record) is None:
        return False
    try:
        os.killpg(pgid, sig)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise
        return False
    return True


def group_alive(pgid: int | None) -> bool:
    return kill_group(pgid, 0)
