"""Starting jobs under their supervisor, finding them again, and stopping them.

The daemon never waits on a job directly. It sends each job to ``ajs3-supervise``
(``supervise.c``, ADR 0012), a small C fork server started once per daemon, which forks
a supervisor per job in a session of its own. The daemon watches supervisors through
pidfds (which also work for a supervisor it re-adopted after a restart) and reads the
durable files they write: ``started.json`` before the job runs, ``status.json`` after.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3.engine import native
from ajs3.errors import Code, ServiceError


def proc_stat(pid: int) -> tuple[bytes, int]:
    """A process's state letter and kernel start time (clock ticks since boot)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0], int(fields[19])


def host_identity() -> str:
    """This node and PID namespace, as the supervisor writes it in started.json
    (node name/boot id/pid namespace): pids mean nothing elsewhere."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = "?"
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return f"{os.uname().nodename}/{boot}/{pidns}"


def supervisor_binary() -> Path:
    """The ``ajs3-supervise`` binary; a clear error if it was never built."""
    binary = native.path()
    if not os.access(binary, os.X_OK):
        raise ServiceError(
            f"the job supervisor {binary} is missing: jobs cannot start",
            code=Code.SUPERVISOR_MISSING,
            hint="install ajs3 with `pip install .` (it compiles the supervisor and needs "
            "a C compiler), or build it in a working tree with "
            "`python -m ajs3.engine.native`",
        )
    return binary


def encode_request(jobdir: Path, spec: dict[str, Any]) -> bytes:
    """One request for the supervisor server: a length, a newline, NUL-ended fields
    (see supervise.c). The spec comes from :meth:`Runner.make_spec`, which refused NUL
    bytes in every field that can hold one."""
    argv = [str(a) for a in spec["argv"]]
    env = [f"{k}={v}" for k, v in spec["env"].items()]
    uid, gid = spec.get("uid"), spec.get("gid")
    fields = [
        str(jobdir), spec.get("run_id") or "", spec.get("cwd") or "",
        "" if uid is None else str(uid), "" if gid is None else str(gid),
        (spec.get("user") or "") if uid is not None else "",
        str(len(argv)), *argv, str(len(env)), *env,
    ]
    body = b"\0".join(os.fsencode(f) for f in fields) + b"\0"
    return b"%d\n" % len(body) + body


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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Runner:
    """Starts supervisors for jobs of one logical host."""

    def __init__(self, datadir: Path) -> None:
        self.jobs_dir = datadir / "jobs"
        self.jobs_dir.mkdir(mode=0o750, exist_ok=True)
        self.binary = supervisor_binary()
        self.server: subprocess.Popen[bytes] | None = None
        self.identity = host_identity()

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
        """What the supervisor needs to run a job; KeyError for an unknown user,
        ValueError for a NUL byte in the command, its environment or its cwd (they
        would break the request's framing)."""
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
        if (any("\0" in a for a in argv) or any("\0" in k + v for k, v in env.items())
                or "\0" in (cwd or "")):
            raise ValueError("an argument, environment variable or cwd holds a NUL byte")
        if user is not None:
            entry = pwd.getpwnam(user)
            if entry.pw_uid != os.geteuid():
                spec["uid"], spec["gid"] = entry.pw_uid, entry.pw_gid
        return jobdir, spec

    def spawn_many(self, items: list[tuple[Path, dict[str, Any]]]) -> list[int | None]:
        """Start a supervisor for each (jobdir, spec), each in a new session (-1: fork failed).

        All requests go to the supervisor server in one write and the pids come back in
        order, so the server forks back to back. A request without an answer (the
        server died) is None: whether its supervisor started is then unknown, and it
        is never simply asked again (that could run the job twice); the caller looks
        for the supervisor's own record instead.
        """
        if not items:
            return []
        payload = b"".join(encode_request(jobdir, spec) for jobdir, spec in items)
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
                pid = int(line)
                pids.append(pid if pid > 0 else -1)
        except (OSError, ValueError):
            pass
        if len(pids) < len(items):
            self.close()
            pids.extend([None] * (len(items) - len(pids)))
        return pids

    def _server(self) -> subprocess.Popen[bytes]:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [str(self.binary), "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        return self.server

    def close(self) -> None:
        """Stop the supervisor server (the supervisors it started live on)."""
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

    def settle(self, jobdir: Path, why: str, wait: float = 30.0) -> dict[str, Any] | None:
        """The start record of a run whose started.json exists but cannot be read.

        Its supervisor holds a lock on it from creating it until it is durable. Once
        the lock is ours: a record that reads now is returned; one that is still empty
        or cut short was left by a supervisor that died before its record was durable
        (so before its job could exec), and is voided in place (None). Raises
        TimeoutError if a supervisor holds the lock for ``wait`` seconds.
        """
        fd = os.open(jobdir / "started.json", os.O_RDWR | os.O_CLOEXEC)
        try:
            end = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        raise TimeoutError(f"{jobdir / 'started.json'} stays locked") from None
                    time.sleep(0.02)
            size = os.fstat(fd).st_size
            try:
                data = json.loads(os.pread(fd, size, 0)) if size else None
            except ValueError:
                data = None
            if isinstance(data, dict):
                return data
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._void_record(why), 0)
            os.fsync(fd)
            return None
        finally:
            os.close(fd)  # and the lock with it

    def _void_record(self, why: str) -> bytes:
        return json.dumps({"void": True, "why": why, "host": self.identity}).encode()

    def void(self, jobdir: Path, why: str) -> bool:
        """Claim a run that has no start record, so that no supervisor can start it
        any more (ADR 0012): create ``started.json`` (O_EXCL) as a void record and make
        it durable. False if it exists already: a supervisor got there first."""
        jobdir.mkdir(mode=0o750, exist_ok=True)
        path = jobdir / "started.json"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._void_record(why))
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(jobdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True

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

