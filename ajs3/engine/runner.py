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
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3.engine import supervisor

FORKSERVER = str(Path(supervisor.__file__).resolve().parent / "forkserver.py")


@dataclass
class Tracked:
    """A supervisor this daemon watches."""

    run_id: str
    unit_run: int
    jobdir: Path
    pid: int
    pidfd: int
    started_at: float
    deadline: float | None = None
    grace: float = 10.0
    kill_stage: int = 0
    kill_at: float | None = None
    kill_reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def proc_starttime(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), or None if gone."""
    try:
        return supervisor.proc_stat(pid)[1]
    except (OSError, ValueError, IndexError):
        return None


def is_same_process(pid: int, start: int | None) -> bool:
    """True if ``pid`` is alive (not a zombie) and is the process that started at ``start``."""
    try:
        state, now = supervisor.proc_stat(pid)
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
        self.server: subprocess.Popen[bytes] | None = None
        self.identity = supervisor.host_identity()

    def jobdir(self, run_id: str) -> Path:
        return self.jobs_dir / run_id

    def make_spec(
        self,
        run_id: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        user: str | None,
    ) -> tuple[Path, dict[str, Any]]:
        """What the supervisor needs to run a job; raises KeyError for an unknown user."""
        jobdir = self.jobdir(run_id)
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
        return jobdir, spec

    def spawn_many(self, items: list[tuple[Path, dict[str, Any]]]) -> list[int | None]:
        """Start a supervisor for each (jobdir, spec), each in a new session (-1: fork failed).

        All requests go to the fork server in one write and the pids come back in
        order, so the server forks back to back. A request without an answer (the
        server died) is None: whether its supervisor started is then unknown, and it
        is never simply asked again (that could run the job twice); the caller looks
        for the supervisor's own record instead.
        """
        if not items:
            return []
        payload = b"".join(
            json.dumps({"jobdir": str(jobdir), "spec": spec}).encode() + b"\n"
            for jobdir, spec in items
        )
        pids: list[int | None] = []
        server = self._server()
        try:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(payload)
            server.stdin.flush()
            for _ in items:
                line = server.stdout.readline()
                if not line:
                    break
                pids.append(int(line))
        except (OSError, ValueError):
            pass
        if len(pids) < len(items):
            self.close()
            pids.extend([None] * (len(items) - len(pids)))
        return pids

    def _server(self) -> subprocess.Popen[bytes]:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [self.python, "-S", "-E", FORKSERVER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        return self.server

    def close(self) -> None:
        """Stop the fork server (the supervisors it started live on)."""
        server, self.server = self.server, None
        if server is None:
            return
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

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

