"""Starting, stopping and checking a logical host's daemon from outside it.

This is what ``ajs3 service start|stop|status`` (and so the OCF agent) call.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3 import datadir as dd
from ajs3.engine import recordlog
from ajs3.engine.jobgroups import is_same_process, kill_group
from ajs3.engine.runner import read_json
from ajs3.errors import AjsError, Code, JournalError, LockedError, ServiceError
from ajs3.journal.files import JOURNAL_FILE, check_datadir, logical_host_traces
from ajs3.journal.store import Journal
from ajs3.model import StartMode, Status, StopJobs
from ajs3.service.client import Client
from ajs3.service.lock import describe, is_locked, read_holder
from ajs3.service.paths import Paths, check_rundir, prepare_rundir

#: Exit codes of ``ajs3 service status`` (the agent maps them to OCF codes).
HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3


def daemon_info(paths: Paths) -> dict[str, Any] | None:
    """The pid file of a live daemon of this logical host, or None."""
    info = read_json(paths.pidfile)
    if not info:
        return None
    if not is_same_process(int(info.get("pid", 0)), info.get("start")):
        return None
    return info


def with_datadir(paths: Paths) -> Paths:
    """Fill in the data directory from a running daemon when none was given."""
    if paths.datadir is not None:
        return paths
    info = read_json(paths.pidfile)
    if info and info.get("datadir"):
        return Paths(paths.lhost, paths.rundir, Path(info["datadir"]))
    return paths


def check(paths: Paths) -> dict[str, Any]:
    """What a start would check first, without starting: data directory, file system,
    journal version and settings, and whether another daemon holds the lock."""
    from ajs3.settings import load_settings

    datadir = paths.need_datadir()
    check_datadir(datadir)
    load_settings(datadir, paths.lhost)
    info = daemon_info(paths)
    if info is not None:
        return {"ok": True, "already_running": True, "pid": info["pid"], "datadir": str(datadir)}
    if os.path.lexists(paths.rundir):
        check_rundir(paths.rundir)
    journal = datadir / JOURNAL_FILE
    if journal.exists() and journal.stat().st_size:
        check_journal(datadir, readonly=True)
    elif traces := logical_host_traces(datadir):
        state = "empty" if journal.exists() else "missing"
        raise JournalError(
            f"the journal {journal} is {state}, but {datadir} holds a logical host's files "
            f"({', '.join(traces)})",
            code=Code.JOURNAL_MISSING,
            hint="restore journal.db from a backup, or start afresh with "
            "`ajs3 service start --initialize`",
        )
    refuse_if_locked(paths)
    return {"ok": True, "already_running": False, "datadir": str(datadir)}


def refuse_if_locked(paths: Paths) -> None:
    """Raise AJS3-E301, naming the holder, if another daemon holds the data directory."""
    if is_locked(paths.lockfile):
        raise LockedError(
            f"data directory {paths.need_datadir()} is locked by "
            f"{describe(read_holder(paths.lockfile))}",
            hint="another daemon owns this logical host; stop it first",
        )


def _damaged(path: Path, detail: str) -> JournalError:
    return JournalError(
        f"journal {path} is damaged: {detail}",
        code=Code.JOURNAL_CORRUPT,
        hint="restore it from a backup (see docs/runbooks), or start the logical host "
        "afresh with `ajs3 service start --initialize` (the damaged files are kept aside)",
    )


def check_journal(datadir: Path, *, readonly: bool = False, thorough: bool = True) -> None:
    """The journal as a start needs it: present (or a new data directory, where it is
    created), readable where a start reads it and, when ``thorough``, sound page by
    page (``PRAGMA quick_check``, which reads the whole file: `service start --check`
    and `--initialize` do it, a plain start does not, so that a failover does not wait
    for a scan of a large journal). AJS3-E207 for a missing or empty journal beside a
    logical host's files, AJS3-E204 for a damaged one; never a traceback."""
    journal = Journal.open(datadir, readonly=readonly)
    try:
        result = journal.quick_check() if thorough else "ok"
        if result == "ok":
            # Sound pages can still hold what the daemon cannot read: read what a
            # start reads (definitions, the runs it recovers) before it does.
            journal.definitions()
            for run_no in journal.active_jobnet_runs():
                run = journal.jobnet_run(run_no)
                if run is not None:
                    journal.definitions(run.def_version)
                journal.unit_runs(run_no)
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
        result = f"its content cannot be read ({type(exc).__name__}: {exc})"
    finally:
        journal.close()
    if result != "ok":
        raise _damaged(datadir / JOURNAL_FILE, result.splitlines()[0] if result else "?")


def start_afresh(datadir: Path) -> list[str]:
    """Start a logical host afresh (``service start --initialize``) when its journal is
    missing, empty or damaged: the journal files and ``jobs/`` are moved aside (never
    deleted; the names are returned) and a new journal is created. Refused when the
    journal is sound: a cold start forgets runs without losing definitions."""
    try:
        check_journal(datadir)
    except JournalError as exc:
        if exc.code not in (Code.JOURNAL_MISSING, Code.JOURNAL_CORRUPT):
            raise
    else:
        raise AjsError(
            f"the journal in {datadir} is sound: --initialize is only for a missing, "
            "empty or damaged journal",
            code=Code.BAD_ARGUMENT,
            hint="start without --initialize (--mode cold forgets registrations and runs)",
        )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = []
    for name in (JOURNAL_FILE, JOURNAL_FILE + "-wal", JOURNAL_FILE + "-shm", "jobs", "claims"):
        if os.path.lexists(datadir / name):
            aside = datadir / f"{name}.before-initialize-{stamp}"
            os.rename(datadir / name, aside)
            moved.append(aside.name)
    Journal.open(datadir, initialize=True).close()
    check_journal(datadir)
    return moved


def start(
    paths: Paths, mode: StartMode, timeout: float, log_level: str, *, initialize: bool = False
) -> dict[str, Any]:
    """Start the daemon in the background; return once it answers, or raise.

    With ``initialize``, a logical host whose journal is missing, empty or damaged
    starts afresh (:func:`start_afresh`); without it such a start is refused (AJS3-E207,
    AJS3-E204) and nothing is changed.
    """
    datadir = paths.need_datadir()
    check_datadir(datadir)
    info = daemon_info(paths)
    if info is not None:
        if Path(info["datadir"]).resolve() == datadir.resolve():
            return {"already_running": True, **info}
        raise ServiceError(
            f"logical host {paths.lhost} already runs with data directory {info['datadir']}",
            code=Code.ALREADY_RUNNING,
            hint="stop it first",
        )
    refuse_if_locked(paths)
    prepare_rundir(paths.rundir)
    # Fail early, in the foreground, on a journal that is missing, damaged or that
    # this version cannot use.
    moved = start_afresh(datadir) if initialize else []
    if not initialize:
        check_journal(datadir, thorough=False)
    logdir = dd.log(datadir)
    with contextlib.suppress(FileExistsError):
        logdir.mkdir(mode=0o750)
    out_fd = os.open(
        logdir / "daemon.out",
        os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o640,
    )
    read_fd, write_fd = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "ajs3.cli.main",
        "service",
        "start",
        "--foreground",
        "--quiet",
        "-h",
        paths.lhost,
        "--datadir",
        str(datadir),
        "--rundir",
        str(paths.rundir),
        "--mode",
        mode.value,
        "--log-level",
        log_level,
        "--ready-fd",
        str(write_fd),
    ]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=out_fd,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd="/",
        )
    finally:
        os.close(out_fd)
        os.close(write_fd)
    answer = _wait_ready(read_fd, proc, timeout, logdir / "daemon.out")
    if not answer.get("ok"):
        err = answer.get("error", {})
        raise AjsError(
            err.get("message", "the daemon did not start"),
            code=Code(err.get("code", Code.START_FAILED.value)),
            hint=err.get("hint", f"see {logdir / 'daemon.out'}"),
        )
    result: dict[str, Any] = {"already_running": False, "pid": proc.pid}
    if moved:
        result["initialized"] = moved
    return result


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
        lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else ""
    return ""


def _wait_ready(
    fd: int, proc: subprocess.Popen[bytes], timeout: float, out: Path
) -> dict[str, Any]:
    """The daemon's answer on its ready pipe: what it wrote, or why there was none (it
    exited first, or really was not ready within ``timeout`` seconds)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    began = time.monotonic()
    end = began + timeout
    data = b""
    closed = False
    try:
        while time.monotonic() < end:
            if sel.select(max(0.0, end - time.monotonic())):
                chunk = os.read(fd, 65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
                if data.endswith(b"\n"):
                    break
    finally:
        os.close(fd)
    if data:
        try:
            result: dict[str, Any] = json.loads(data)
            return result
        except ValueError:
            pass
    hint = f"see {out}" + (f"; its last line: {last}" if (last := _last_line(out)) else "")
    if closed:
        # It closed the pipe without an answer: it is ending (or ended) on an error.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        waited = time.monotonic() - began
        what = (
            f"was not ready within {timeout:g} s"
            if not closed
            else f"closed its ready pipe after {waited:.1f} s without an answer"
        )
        return {
            "ok": False,
            "error": {
                "code": Code.START_FAILED.value,
                "message": f"the daemon {what}",
                "hint": hint,
            },
        }
    return {
        "ok": False,
        "error": {
            "code": Code.START_FAILED.value,
            "message": f"the daemon exited with {proc.returncode} before it was ready",
            "hint": hint,
        },
    }


def _wait_gone(pid: int, start: int | None, until: float) -> bool:
    while time.monotonic() < until:
        if not is_same_process(pid, start):
            return True
        time.sleep(0.05)
    return not is_same_process(pid, start)


def stop(paths: Paths, jobs: StopJobs, timeout: float) -> dict[str, Any]:
    """Stop the daemon within ``timeout`` seconds, escalating to SIGKILL (never fails slow)."""
    info = daemon_info(paths)
    if info is None:
        return {"was_running": False}
    pid, pstart = int(info["pid"]), info.get("start")
    began = time.monotonic()
    deadline = began + timeout
    try:
        # A hung daemon must not eat the stop timeout: ask briefly, then escalate.
        Client(paths.socket, timeout=min(5.0, max(0.5, timeout * 0.25))).stop(
            jobs.value, min(max(1.0, timeout * 0.7), 86_400.0)
        )
    except AjsError as exc:
        if exc.code is Code.PERMISSION_DENIED:
            raise  # the daemon refused this user; signals would be refused as well
        # no answer: escalate below
    if _wait_gone(pid, pstart, began + timeout * 0.8):
        return {"was_running": True, "escalated": False}
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, pstart, began + timeout * 0.9):
        return {"was_running": True, "escalated": True}
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if jobs is StopJobs.KILL:
        kill_jobs(Path(info["datadir"]))
    if _wait_gone(pid, pstart, max(deadline, time.monotonic() + 1.0)):
        return {"was_running": True, "escalated": True, "killed": True}
    raise ServiceError(f"daemon pid {pid} did not stop", code=Code.STOP_TIMEOUT)


def kill_jobs(datadir: Path) -> int:
    """Kill the process groups of every job the journal says is running (last resort)."""
    count = 0
    try:
        journal = Journal.open(datadir, readonly=True)
    except AjsError:
        return 0
    logged: dict[str, dict[str, Any]] | None = None  # the record logs' (ADR 0039), once
    try:
        for run in journal.active_jobnet_runs():
            for ur in journal.unit_runs(run):
                if ur.status is Status.RUNNING and ur.run_id:
                    started = read_json(dd.jobdir(datadir, ur.run_id) / dd.STARTED)
                    if started is None:
                        if logged is None:
                            logged = recordlog.all_started(dd.claims(datadir))
                        started = logged.get(ur.run_id)
                    if kill_group((started or {}).get("pgid"), signal.SIGKILL, started):
                        count += 1
    finally:
        journal.close()
    return count


@dataclass
class Health:
    code: int
    summary: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    #: Not running, but a pid file says a daemon ran and did not stop cleanly.
    crashed: bool = False

    def to_dict(self) -> dict[str, Any]:
        state = {HEALTHY: "running", UNHEALTHY: "unhealthy", NOT_RUNNING: "not running"}
        return {
            "status": state[self.code],
            "exit": self.code,
            "summary": self.summary,
            "checks": self.checks,
            "crashed": self.crashed,
        }


def notify_check(paths: Paths, checks: list[dict[str, Any]]) -> None:
    """Per notification route, what waits and the last error (never unhealthy: the
    cluster cannot mend a pager; docs/notifications.md)."""
    try:
        # short: the agent's monitor runs this, and the ping above said the loop is alive
        routes = Client(paths.socket, timeout=2.0).notify_status().get("routes", {})
    except AjsError:
        return  # not a viewer, an older daemon, no answer in time: nothing to add
    for name, st in sorted(routes.items()):
        detail = f"route {name} ({st.get('kind')}): {st.get('pending', 0)} waiting"
        if st.get("failures"):
            detail += f", {st['failures']} failure(s) in a row, last: {st.get('last_error')}"
        checks.append(
            {"check": "notify", "ok": not st.get("failures"), "detail": detail, "route": name, **st}
        )


def status(paths: Paths, depth: int) -> Health:
    """Check a logical host: 0 healthy, 1 running but unhealthy, 3 not running."""
    checks: list[dict[str, Any]] = []
    info = daemon_info(paths)
    if info is None:
        stale = read_json(paths.pidfile)
        if stale:
            return Health(
                NOT_RUNNING,
                f"logical host {paths.lhost} is not running: its daemon "
                f"(pid {stale.get('pid')}) ended without a clean stop",
                checks,
                crashed=True,
            )
        return Health(NOT_RUNNING, f"logical host {paths.lhost} is not running", checks)
    checks.append({"check": "process", "ok": True, "detail": f"pid {info['pid']}"})
    datadir = Path(info["datadir"])
    lockfile = datadir / "ajs3.lock"
    locked = datadir.is_dir() and is_locked(lockfile)
    holder = read_holder(lockfile) if locked else {}
    mine = locked and int(holder.get("pid", -1)) == int(info["pid"])
    checks.append(
        {
            "check": "lock",
            "ok": mine,
            "detail": "held" if mine else f"not held by the daemon ({datadir})",
        }
    )
    if not mine:
        return Health(
            UNHEALTHY, f"daemon pid {info['pid']} does not hold the lock on {datadir}", checks
        )
    if depth >= 10:
        try:
            pong = Client(paths.socket, timeout=10.0).ping()
        except AjsError as exc:
            checks.append({"check": "control", "ok": False, "detail": str(exc)})
            return Health(UNHEALTHY, f"control socket does not answer: {exc}", checks)
        alive = float(pong.get("loop_age", 0)) < 30.0
        checks.append(
            {"check": "control", "ok": alive, "detail": f"loop age {pong.get('loop_age', 0):.1f} s"}
        )
        if not alive:
            return Health(UNHEALTHY, "scheduler loop is stuck", checks)
        notify_check(paths, checks)
        full = pong.get("disk_full")
        if isinstance(full, dict):
            # Still healthy for the cluster: another node would find the same full disk;
            # the daemon carries on by itself once there is room (docs/security.md).
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(full["since"])))
            detail = f"{full.get('code')}: disk full since {since}: {full.get('message')}"
            checks.append({"check": "disk", "ok": False, "detail": detail, "disk_full": full})
            return Health(
                HEALTHY,
                f"logical host {paths.lhost} is running (pid "
                f"{info['pid']}) but cannot record anything: {detail}",
                checks,
            )
    if depth >= 20:
        try:
            journal = Journal.open(datadir, readonly=True)
            try:
                result = journal.quick_check()
            finally:
                journal.close()
        except AjsError as exc:
            result = str(exc)
        ok = result == "ok"
        checks.append({"check": "journal", "ok": ok, "detail": result})
        if not ok:
            return Health(UNHEALTHY, f"journal check failed: {result}", checks)
    return Health(HEALTHY, f"logical host {paths.lhost} is running (pid {info['pid']})", checks)
