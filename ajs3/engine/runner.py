"""Starting jobs under their supervisor, finding them again, and stopping them.

The daemon never waits on a job directly: it starts ``supervisor.py`` in a new
session, watches the supervisor through a pidfd (which also works for a supervisor
it re-adopted after a restart), and reads the durable files the supervisor writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3.engine import supervisor

SUPERVISOR = str(Path(supervisor.__file__).resolve())


@dataclass
class Tracked:
    """A supervisor this daemon watches."""

    run_id: str
    unit_run: int
    jobdir: Path
    pid: int
    pid_start: int | None
    pidfd: int
    started_at: float
    deadline: float | None = None
    grace: float = 10.0
    kill_stage: int = 0
    kill_at: float | None = None
    kill_reason: str = ""
    own_child: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def proc_starttime(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), or None if gone."""
    try:
        return supervisor._proc_starttime(pid)
    except (OSError, ValueError, IndexError):
        return None


def is_same_process(pid: int, start: int | None) -> bool:
    """True if ``pid`` is alive (not a zombie) and is the process that started at ``start``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        state, now = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return False
    if state in (b"Z", b"X"):
        return False
    if start is None:
        return True
    return now == start


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Runner:
    """Starts supervisors for jobs of one logical host."""

    def __init__(self, datadir: Path, python: str | None = None) -> None:
        self.jobs_dir = datadir / "jobs"
        self.jobs_dir.mkdir(mode=0o750, exist_ok=True)
        self.python = python or sys.executable
        self.identity = supervisor.host_identity()

    def jobdir(self, run_id: str) -> Path:
        return self.jobs_dir / run_id

    def write_spec(
        self,
        run_id: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        user: str | None,
    ) -> tuple[Path, dict[str, Any]]:
        jobdir = self.jobdir(run_id)
        jobdir.mkdir(mode=0o750, parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "run_id": run_id,
            "argv": argv,
            "env": env,
            "cwd": cwd,
            "stdout": str(jobdir / "stdout"),
            "stderr": str(jobdir / "stderr"),
            "uid": None,
            "gid": None,
            "user": user,
        }
        if user is not None:
            entry = pwd.getpwnam(user)
            if entry.pw_uid != os.geteuid():
                spec["uid"], spec["gid"] = entry.pw_uid, entry.pw_gid
                os.chown(jobdir, entry.pw_uid, entry.pw_gid)
        with open(jobdir / "spec.json", "w") as f:
            json.dump(spec, f)
        return jobdir, spec

    def spawn(self, jobdir: Path, spec: dict[str, Any] | None = None) -> tuple[int, int | None]:
        """Start the supervisor in a new session; returns its pid and start time.

        With the spec at hand the supervisor is a fork of the daemon: no interpreter
        start-up per job (about 6 ms otherwise). The child closes every inherited
        descriptor first, so it holds neither the data directory lock nor the journal.
        """
        if spec is not None:
            return self._fork(jobdir, spec)
        return self._spawn_script(jobdir)

    def _fork(self, jobdir: Path, spec: dict[str, Any]) -> tuple[int, int | None]:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                os.setsid()
                signal.set_wakeup_fd(-1)
                os.closerange(3, 1 << 20)
                supervisor.supervise(spec, str(jobdir))
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        return pid, proc_starttime(pid)

    def _spawn_script(self, jobdir: Path) -> tuple[int, int | None]:
        log = str(jobdir / "supervisor.log")
        pid = os.posix_spawn(
            self.python,
            [self.python, "-S", "-E", SUPERVISOR, str(jobdir)],
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        return pid, proc_starttime(pid)

    def started(self, jobdir: Path) -> dict[str, Any] | None:
        return read_json(jobdir / "started.json")

    def status(self, jobdir: Path) -> dict[str, Any] | None:
        return read_json(jobdir / "status.json")

    def is_local(self, started: dict[str, Any]) -> bool:
        return bool(started.get("host") == self.identity)


def pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def kill_group(pgid: int | None, sig: int) -> bool:
    """Signal a job's whole process group; False if it is gone."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int | None) -> bool:
    return kill_group(pgid, 0)


def reap(pid: int) -> None:
    """Collect a child supervisor's zombie; adopted ones are not our children."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


TERM = signal.SIGTERM
KILL = signal.SIGKILL
