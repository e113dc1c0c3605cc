"""A logical host on a temporary data directory, driven like a user drives it.

Start and stop go through the `ajs3` command (what the OCF agent sees); registrations
go straight to the control socket so that the harness adds no interpreter start-up
per request. Cleanup stops only what this harness started, by pid.

The module-level helpers (cli_env, FINAL, start_record, kill_unended) serve the tests'
harness (tests/lhost.py) too; this module needs no pytest, so bench/run can use it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ajs3 import model
from ajs3.engine import recordlog
from ajs3.service.client import Client

REPO = Path(__file__).resolve().parent.parent
#: statuses (as stored) in which a unit run has ended
FINAL = frozenset(s.value for s in model.FINAL)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    extra = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + extra if extra else "")
    for key in [k for k in env if k.startswith("AJS3_")]:
        del env[key]
    return env


class LogicalHost:
    def __init__(self, base: Path, lhost: str) -> None:
        self.lhost = lhost
        self.datadir = base / lhost / "data"
        self.rundir = base / lhost / "run"
        (self.datadir / "definitions").mkdir(parents=True)
        self.pids: list[int] = []
        self.write_settings("")

    @property
    def opts(self) -> list[str]:
        return ["-h", self.lhost, "--datadir", str(self.datadir), "--rundir", str(self.rundir)]

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        """Run `ajs3 ARGS...`; returns the result and its wall time in seconds."""
        argv = [sys.executable, "-P", "-m", "ajs3.cli.main", *args, *self.opts]
        t0 = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=cli_env(), timeout=timeout, check=False
        )
        took = time.perf_counter() - t0
        if check and done.returncode != 0:
            raise RuntimeError(
                f"ajs3 {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
        return done, took

    def write_settings(self, text: str) -> None:
        # The baseline spawns its processes as root, with no change of user: ajs3's jobs
        # do the same, so both sides do the same work (a logical host's default would run
        # them as `nobody`).
        (self.datadir / "ajs3.yaml").write_text("allow_root_jobs: true\n" + text)

    def define(self, yaml_text: str, name: str = "bench.yaml") -> float:
        (self.datadir / "definitions" / name).write_text(yaml_text)
        return self.cli("define")[1]

    def start(self) -> float:
        took = self.cli("service", "start", "--timeout", "120", "--log-level", "warning")[1]
        pid = self.daemon_pid()
        if pid:
            self.pids.append(pid)
        return took

    def stop(self, jobs: str = "kill", timeout: float = 30) -> float:
        return self.cli("service", "stop", "--jobs", jobs, "--timeout", str(timeout), check=False)[
            1
        ]

    def client(self, timeout: float = 120) -> Client:
        """The control client of this logical host (ajs3.service.client)."""
        return Client(self.rundir / "control.sock", timeout=timeout)

    def entry(self, jobnet: str, at: float | None = None) -> int:
        return int(self.client().entry(jobnet, at=at)["run"])

    def daemon_pid(self) -> int | None:
        try:
            return int(json.loads((self.rundir / "daemon.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.datadir / 'journal.db'}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.db()
        try:
            return list(conn.execute(sql, args))
        finally:
            conn.close()

    def wait_run(self, run: int, timeout: float, poll: float = 0.1) -> str:
        """Wait until a jobnet run's root unit ended; returns its status."""
        end = time.monotonic() + timeout
        sql = (
            "SELECT u.status FROM unit_runs u JOIN jobnet_runs r ON r.id=u.jobnet_run"
            " AND u.path=r.jobnet WHERE r.id=?"
        )
        while True:
            rows = self.query(sql, (run,))
            if rows and rows[0][0] in FINAL:
                return str(rows[0][0])
            if time.monotonic() > end:
                raise TimeoutError(
                    f"run {run} on {self.lhost} did not end in {timeout:g} s "
                    f"(root {rows[0][0] if rows else '?'})"
                )
            time.sleep(poll)

    def cleanup(self) -> None:
        """Stop the daemon and any job it left, by pid."""
        if self.daemon_pid() is not None:
            self.stop(timeout=15)
        for pid in {*self.pids, self.daemon_pid() or 0}:
            if pid and _alive_daemon(pid, self.lhost):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        jobs = self.datadir / "jobs"
        if jobs.is_dir():
            kill_unended(jobs)


def start_record(path: Path, wait: float = 1.0) -> dict[str, Any] | None:
    """A supervisor's started.json; it claims the file first and writes it a moment
    later, so an empty or partial file is read again for up to ``wait`` seconds."""
    end = time.monotonic() + wait
    while True:
        try:
            info = json.loads(path.read_bytes())
            return info if isinstance(info, dict) else None
        except ValueError:
            if time.monotonic() >= end:
                return None
            time.sleep(0.01)
        except OSError:
            return None


def run_started(datadir: Path, run_id: str, wait: float = 1.0) -> dict[str, Any] | None:
    """A run's start record: its started.json, or its start record in the record logs
    of the supervisor servers (ADR 0039), read again for up to ``wait`` seconds while
    neither has it whole."""
    end = time.monotonic() + wait
    while True:
        found = start_record(datadir / "jobs" / run_id / "started.json", 0)
        if found is None:
            found = recordlog.gather(datadir / "claims").started.get(run_id)
        if found is not None or time.monotonic() >= end:
            return found
        time.sleep(0.02)


def run_ended(datadir: Path, run_id: str) -> dict[str, Any] | None:
    """A run's end record: its status.json, or its end record in the record logs."""
    found = start_record(datadir / "jobs" / run_id / "status.json", 0)
    if found is None:
        found = recordlog.gather(datadir / "claims").ended.get(run_id)
    return found


def unended_records(jobs: Path) -> list[dict[str, Any]]:
    """The start records of runs without an end record: a started.json under ``jobs``
    with no status.json, or a start in the record logs beside it with no end (ADR 0039)."""
    started = jobs.glob("*/started.json") if jobs.is_dir() else []
    return [
        start_record(path) or {} for path in started if not (path.parent / "status.json").exists()
    ] + recordlog.unended(jobs.parent / "claims")


def kill_unended(jobs: Path) -> None:
    """SIGKILL the job group and the supervisor of every run without an end record."""
    for info in unended_records(jobs):
        for key, kill in (("pgid", os.killpg), ("supervisor_pid", os.kill)):
            try:
                kill(int(info[key]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, KeyError, ValueError, TypeError):
                pass


def _alive_daemon(pid: int, lhost: str) -> bool:
    """True if pid is still a daemon of this logical host (not a reused pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"--foreground" in cmd and lhost.encode() in cmd
