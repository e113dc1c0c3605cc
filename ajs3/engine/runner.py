"""Starting jobs under their supervisor, finding them again, and stopping them.

The daemon never waits on a job directly. It sends each job to ``ajs3-supervise``
(``supervise.c``, ADR 0012 and 0030), a small C server started once per daemon in a
session of its own: the supervisor of every job the daemon starts, which outlives the
daemon until its last job has ended. It answers each request at once and tells each
end on its stdout (:mod:`ajs3.engine.supervisor` talks to it); the daemon watches the server
through a pidfd per job (which also works for the server of an earlier daemon,
re-adopted after a restart) and reads the records it keeps: the claim (durable) before
the job runs, then its start and end records, lines of the server's record logs (ADR
0039); a run started by an older server has ``started.json`` and ``status.json`` instead.

The job directory and every record in it belong to the daemon's user; the job only
gets its stdout and stderr as open descriptors, so nothing it does can make root
follow a link or read a forged record. A process group is signalled only once it is
verified as a job group of ours (:mod:`ajs3.engine.jobgroups`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3 import datadir as dd
from ajs3.engine import jobenv, recordlog
from ajs3.engine.supervisor import SupervisorServer, Told, supervisor_binary
from ajs3.errors import AjsError, Code
from ajs3.fileperms import read_regular
from ajs3.settings import Settings


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
    #: the execution host it runs on (None: this node; ajs3/exechost/manager.py)
    host: str | None = None
    #: its end as the supervisor server told it (ADR 0037), once told
    told: Told | None = None


def json_object(raw: bytes | None) -> dict[str, Any] | None:
    """The JSON object in ``raw``, or None (no text, not JSON, or not an object)."""
    try:
        data = None if raw is None else json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file that is not a symbolic link, or None."""
    try:
        raw = read_regular(path)
    except OSError:
        return None
    return json_object(raw)


def whole_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A start record that is whole (void, or naming its job's pid), else None."""
    if record is None or record.get("void") or record.get("job_pid") is not None:
        return record
    return None


def private_dir(path: Path, *, reclaim: bool = False) -> None:
    """Create ``path`` (0750) if missing; refuse (AJS3-E211) a symbolic link, or a
    directory of another user or that group or others may write: root must never
    create files where somebody else can swap them for links. With ``reclaim``, such
    a directory (not a link) is taken back instead: made the daemon user's, 0750 (a
    job directory that an older ajs3 handed to the job's user)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o750)
    st = os.lstat(path)
    if (
        reclaim
        and stat.S_ISDIR(st.st_mode)
        and (st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    ):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, os.geteuid(), os.getegid())
            os.fchmod(fd, 0o750)
        finally:
            os.close(fd)
        st = os.lstat(path)
    why = None
    if stat.S_ISLNK(st.st_mode):
        why = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        why = "is not a directory"
    elif st.st_uid != os.geteuid():
        why = f"is owned by uid {st.st_uid}, not by the daemon's user (uid {os.geteuid()})"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"has mode {stat.S_IMODE(st.st_mode):04o}: group or others may write it"
    if why is not None:
        raise AjsError(
            f"{path} {why}",
            code=Code.UNSAFE_PATH,
            hint=f"remove it and let ajs3 create it, or `chown` it to the "
            f"daemon's user and `chmod go-w {path}`",
        )


#: how long a job user's entry is used before it is looked up again, in seconds
USER_TTL = 1.0


class Runner:
    """Starts supervisors for jobs of one logical host."""

    def __init__(
        self, datadir: Path, settings: Settings, *, claim_log: bool = False, records: bool = False
    ) -> None:
        """``claim_log``: the server makes claims durable in its log (ADR 0033), read by a
        daemon after a failover. ``records`` (with it): runs' records in the server's
        logs (ADR 0039), as the daemon asks."""
        self.jobs_dir = dd.jobs(datadir)
        private_dir(self.jobs_dir)
        self.settings = settings
        self.claims_dir = dd.claims(datadir) if claim_log else None
        if self.claims_dir is not None:
            private_dir(self.claims_dir)
        self.supervisor = SupervisorServer(supervisor_binary(), self.claims_dir)
        self.records = recordlog.Index(self.claims_dir) if records and self.claims_dir else None
        self.supervisor.records = self.records is not None
        #: (user or None for the default, default_user, allow_root_jobs) -> when it was
        #: looked up, and what was found
        self._users: dict[tuple[str | None, str, bool], tuple[float, jobenv.JobUser]] = {}
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
        who: jobenv.JobUser | None = None,
    ) -> tuple[Path, dict[str, Any]]:
        """What the supervisor needs to run a job (``who``: ``user`` resolved already
        by :meth:`job_user`).

        ``env`` is the job's own ``env`` and run identity; the whole environment is
        built from it by :func:`ajs3.engine.jobenv.job_environment`. ValueError
        (:class:`~ajs3.engine.jobenv.JobUserError`) for an unknown user or a root job
        the settings do not allow (AJS3-E313), and for a NUL byte in the command, its
        environment or its cwd (they would break the request's framing).
        """
        jobdir = self.jobdir(run_id)
        if who is None:
            who = self.job_user(user, "the job")
        env = self.environment(who, env)
        spec: dict[str, Any] = {
            "run_id": run_id,
            "argv": argv,
            "env": env,
            "cwd": cwd,
            "uid": None,
            "gid": None,
            "user": user,
            # bytes kept of each of stdout and stderr (a job's own output_limit is set
            # over it by the dispatcher; docs/retention.md)
            "output_limit": self.settings.output_limit,
        }
        if (
            any("\0" in a for a in argv)
            or any("\0" in k + v for k, v in env.items())
            or "\0" in (cwd or "")
        ):
            raise ValueError("an argument, environment variable or cwd holds a NUL byte")
        if who.uid != os.geteuid():
            spec["uid"], spec["gid"], spec["user"] = who.uid, who.gid, who.name
        return jobdir, spec

    def job_user(self, user: str | None, unit: str) -> jobenv.JobUser:
        """The user a job runs as under this logical host's settings (JobUserError).
        Read from the password database at most once a second for each ``user`` under
        the same settings: a lookup reads /etc/passwd through, and jobs start by the
        hundred per second."""
        now = time.monotonic()
        key = (user, self.settings.default_user, self.settings.allow_root_jobs)
        known = self._users.get(key)
        if known is not None and now - known[0] < USER_TTL:
            return known[1]
        found = jobenv.resolve_user(
            user,
            daemon_uid=os.geteuid(),
            default_user=self.settings.default_user,
            allow_root=self.settings.allow_root_jobs,
            unit=unit,
        )
        self._users[key] = (now, found)
        return found

    def environment(self, who: jobenv.JobUser, env: Mapping[str, str]) -> dict[str, str]:
        """The whole environment of a job of ``who`` whose own variables are ``env``."""
        return jobenv.job_environment(who, env, os.environ, self.settings.env_passthrough)

    def run_check(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: str | None,
        user: str | None,
        jobdir: Path,
        timeout: float,
    ) -> tuple[int, str]:
        """Run a job's ``failover_check`` as the job's user, with the job's clean
        environment, its output appended to ``failover_check.log`` in the job
        directory. (0 done, 1 rerun, 2 failed; and what happened.)"""
        try:
            who = self.job_user(user, "the job")
        except jobenv.JobUserError as exc:
            return 2, f"check could not run: {exc}"
        switch: dict[str, Any] = {}
        if who.uid != os.geteuid():
            switch = {
                "user": who.uid,
                "group": who.gid,
                "extra_groups": os.getgrouplist(who.name, who.gid),
            }
        try:
            done = subprocess.run(
                argv,
                env=self.environment(who, env),
                capture_output=True,
                timeout=timeout,
                cwd=cwd or "/",
                check=False,
                start_new_session=True,
                **switch,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return 2, f"check could not run: {exc}"
        with contextlib.suppress(OSError, AjsError):
            private_dir(jobdir, reclaim=True)
            fd = os.open(
                jobdir / dd.CHECK_LOG,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o640,
            )
            try:
                os.write(fd, done.stdout + done.stderr)
            finally:
                os.close(fd)
        return (done.returncode if done.returncode in (0, 1) else 2), f"exit {done.returncode}"

    # -- the supervisor server (ajs3.engine.supervisor) -----------------------------------

    def spawn_many(self, items: list[tuple[Path, dict[str, Any]]]) -> list[int | None]:
        return self.supervisor.spawn_many(items)

    def syncs(self, wal: tuple[int, int, int] | None) -> bool:
        """Whether the server fdatasyncs the journal's write-ahead log ``wal`` (descriptor,
        device, inode) before it starts the next jobs (ADR 0034, 0035): only with a claim log."""
        return wal is not None and self.claims_dir is not None and self.supervisor.syncs(*wal)

    def notices(self) -> int | None:
        return self.supervisor.notices()

    def read_notices(self) -> None:
        self.supervisor.read_notices()

    def take_ended(self) -> list[tuple[Path, Told | None]]:
        return self.supervisor.take_ended()

    @property
    def server(self) -> subprocess.Popen[bytes] | None:
        return self.supervisor.process

    @property
    def server_pid(self) -> int | None:
        return self.supervisor.pid

    def close(self) -> None:
        self.supervisor.close()

    def started(self, jobdir: Path) -> dict[str, Any] | None:
        """The run's start record once it is whole: a void record, or one that names its
        job. None if there is none, or it is being written, or it is a claim whose job
        has not written its pids yet (ADR 0032): :meth:`settle` tells those apart. The
        file first, then the server's record logs (ADR 0039)."""
        found = whole_record(read_json(jobdir / dd.STARTED))
        if found is None and self.records is not None:
            found = self.records.started(jobdir.name)
        return found

    def settle(self, jobdir: Path, why: str, wait: float = 30.0) -> dict[str, Any] | None:
        """The start record of a run whose started.json exists but cannot be read.

        Its supervisor holds a lock on it from creating it until its job has exec'd
        (the job holds it last, and writes its pids into the record first: ADR 0032).
        Once the lock is ours: a whole record is returned; one that is still empty or
        cut short was left by a supervisor that died before its claim was durable, and
        is voided in place (None). So is a claim with no job's pids written on this
        node since its boot: the pids would be there (in the page cache at least) had
        its job started. A claim from another node or boot is returned as it is: its
        job may have started and its pids, never fsynced, died with that node, so the
        run is in doubt. Raises TimeoutError if a supervisor holds the lock for
        ``wait`` seconds.
        """
        if self.records is not None and not os.path.lexists(jobdir / dd.STARTED):
            assert self.claims_dir is not None
            return recordlog.settle(self.records, self.claims_dir, jobdir.name, self.identity, wait)
        fd = os.open(jobdir / dd.STARTED, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
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
            data = json_object(os.pread(fd, size, 0) if size else None)
            whole = whole_record(data)
            if whole is not None:
                return whole
            if data is not None and not self.is_local(data):
                return data  # a durable claim of another node or boot: in doubt
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
        it durable. False if it exists already: a supervisor got there first. With record
        logs, the run id goes into the voids first (False: a server claimed it)."""
        if self.records is not None:
            assert self.claims_dir is not None
            if not recordlog.void(self.claims_dir, jobdir.name, self.identity):
                return False
        private_dir(jobdir, reclaim=True)
        path = jobdir / dd.STARTED
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o640)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._void_record(why))
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(jobdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True

    def status(self, jobdir: Path, told: Told | None = None) -> dict[str, Any] | None:
        """The run's end record: as the server told it (``told``), else status.json."""
        told_record = None if told is None else json_object(told.record)
        found = told_record if told_record is not None else read_json(jobdir / dd.STATUS)
        if found is None and self.records is not None:
            found = self.records.ended(jobdir.name)
        return found

    def has_ended(self, jobdir: Path) -> bool:
        """Whether the run's end is recorded (status.json, or a record log)."""
        ended = os.path.lexists(jobdir / dd.STATUS)
        return ended or (self.records is not None and self.records.ended(jobdir.name) is not None)

    def is_local(self, started: dict[str, Any]) -> bool:
        return bool(started.get("host") == self.identity)
