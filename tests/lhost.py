"""A real logical host (real daemon, real SQLite, real processes) driven through the CLI.

Imported by tests as `from lhost import LogicalHost` (tests/ is on sys.path because of
tests/conftest.py); a module of its own because several tiers have a conftest.py. The
helpers it shares with the benchmark harness come from bench/lhost.py (the repository
root is on pytest's path: setup.cfg).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from ajs3.engine.runner import Runner
from ajs3.engine.supervisor import Told
from bench.lhost import (
    FINAL,
    REPO,
    cli_env,
    kill_unended,
    run_ended,
    run_started,
    start_record,
    unended_records,
)

__all__ = [
    "FINAL",
    "REPO",
    "LogicalHost",
    "as_user",
    "cli_env",
    "crash_processes",
    "kill_unended",
    "run_ended",
    "run_started",
    "start_record",
    "unprivileged_user",
    "wait_ended",
    "wait_for",
]


class LogicalHost:
    """A logical host on a temporary data directory, driven through the `ajs3` command."""

    #: The settings every test host starts with: the tests' jobs write into the
    #: tests' temporary directories, which only root may enter, so they run as root
    #: as before the default became ``nobody``. Tests of the default pass
    #: ``allow_root_jobs=False`` (or write their own ajs3.yaml with write_settings).
    ROOT_JOBS = "allow_root_jobs: true\n"

    def __init__(self, base: Path, lhost: str, *, allow_root_jobs: bool = True) -> None:
        self.lhost = lhost
        self.allow_root_jobs = allow_root_jobs
        self.datadir = base / lhost / "data"
        self.rundir = base / lhost / "run"
        self.datadir.mkdir(parents=True)
        (self.datadir / "definitions").mkdir()
        if allow_root_jobs:
            self.write_settings("")

    def write_settings(self, text: str, *, allow_root_jobs: bool = True) -> None:
        """Write ajs3.yaml: ``text``, after ``allow_root_jobs: true`` unless told not to."""
        head = self.ROOT_JOBS if allow_root_jobs and "allow_root_jobs" not in text else ""
        (self.datadir / "ajs3.yaml").write_text(head + textwrap.dedent(text))

    @property
    def opts(self) -> list[str]:
        return ["-h", self.lhost, "--datadir", str(self.datadir), "--rundir", str(self.rundir)]

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `ajs3 ARGS... -h LHOST --datadir D --rundir R` (``env``: added to the
        environment of the command, and so of a daemon it starts)."""
        argv = [sys.executable, "-m", "ajs3.cli.main", *args, *self.opts]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**cli_env(), **(env or {})},
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"ajs3 {' '.join(args)} exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def start(self, mode: str = "hot", env: dict[str, str] | None = None) -> None:
        """Start the daemon. A host made with allow_root_jobs (the default) keeps it
        even when the test wrote an ajs3.yaml of its own without the key."""
        settings = self.datadir / "ajs3.yaml"
        if self.allow_root_jobs and settings.exists():
            text = settings.read_text()
            if "allow_root_jobs" not in text:
                settings.write_text(self.ROOT_JOBS + text)
        self.run("service", "start", "--mode", mode, "--timeout", "60", env=env)

    def stop(self, jobs: str = "kill", timeout: float = 30) -> None:
        self.run("service", "stop", "--jobs", jobs, "--timeout", str(timeout))

    def define(self, yaml_text: str, name: str = "defs.yaml") -> None:
        path = self.datadir / "definitions" / name
        path.write_text(textwrap.dedent(yaml_text))
        self.run("define")

    def entry(self, jobnet: str, *extra: str) -> int:
        return int(self.json("entry", jobnet, *extra)["run"])

    def wait(self, run: int, timeout: float = 60) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data = self.show(run=run)
            root = data["units"][0]
            if root["status"] in FINAL:
                return data
            time.sleep(0.1)
        raise AssertionError(f"run {run} did not end within {timeout} s: {self.show(run=run)}")

    def show(self, jobnet: str | None = None, run: int | None = None) -> dict[str, Any]:
        args = ["show"]
        if jobnet:
            args.append(jobnet)
        if run is not None:
            args += ["--run", str(run)]
        data: dict[str, Any] = self.json(*args)
        return data

    def units(self, run: int) -> dict[str, dict[str, Any]]:
        return {u["path"]: u for u in self.show(run=run)["units"]}

    def daemon_pid(self) -> int | None:
        try:
            return int(json.loads((self.rundir / "daemon.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def journal_query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import sqlite3

        conn = sqlite3.connect(str(self.datadir / "journal.db"), timeout=30)
        try:
            return list(conn.execute(sql, args))
        finally:
            conn.close()

    def crash(self) -> None:
        """What a node crash does to this logical host: nothing of it records anything
        more. The daemon, its fork server, every supervisor and every job are frozen
        (SIGSTOP) before any of them is killed, so none can react to another's death
        (a supervisor recording its job's end, the daemon applying a policy)."""
        pid = self.daemon_pid()
        assert pid, "no daemon to crash"
        crash_processes(pid, self.datadir / "jobs")

    def cleanup(self) -> None:
        """Stop what this logical host started, by pid: the daemon, then its jobs."""
        self.run("service", "stop", "--timeout", "20", check=False)
        pid = self.daemon_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        jobs = self.datadir / "jobs"
        if jobs.is_dir():
            kill_unended(jobs)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def crash_processes(daemon_pid: int, jobs: Path) -> None:
    """Freeze, then SIGKILL, a daemon with everything it started and every supervisor
    (with its job) named in an unended started.json under ``jobs`` or start record in
    the record logs beside it: those of an earlier daemon are no longer its
    descendants."""
    frozen: dict[int, psutil.Process] = {}

    def freeze(procs: list[psutil.Process]) -> bool:
        grew = False
        for proc in procs:
            if proc.pid not in frozen:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGSTOP)
                    frozen[proc.pid] = proc
                    grew = True
        return grew

    # Until nothing new appears: the fork server may fork once more before it stops.
    while freeze(_tree(daemon_pid)):
        pass
    for info in unended_records(jobs):
        supervisor = info.get("supervisor_pid")
        if isinstance(supervisor, int) and supervisor not in frozen:
            while freeze(_tree(supervisor)):
                pass
    for proc in frozen.values():
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    for proc in frozen.values():
        with contextlib.suppress(psutil.Error):
            proc.wait(10)


@contextlib.contextmanager
def unprivileged_user(tag: str = "u") -> Iterator[pwd.struct_passwd]:
    """A new unprivileged OS user (and its group) for one test, removed afterwards.
    Needs root. The name is unique to this process; HOME is given, not created."""
    name = f"ajs3t{tag}{os.getpid()}{secrets.token_hex(2)}"[:31]
    subprocess.run(
        [
            "useradd",
            "--no-create-home",
            "--home-dir",
            f"/nonexistent/{name}",
            "--shell",
            "/bin/sh",
            "--user-group",
            name,
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` (with runuser), capturing its output."""
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def wait_for(what: Callable[[], Any], timeout: float = 20.0, message: str = "") -> Any:
    """Poll ``what`` until it returns something true, and return that; fail after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message or what}")


def wait_ended(
    runner: Runner, jobdirs: list[Path], timeout: float = 20.0
) -> dict[Path, Told | None]:
    """Until the server has told the end of each of these runs (as the daemon learns it);
    what it told of each."""
    want = set(jobdirs)
    seen: dict[Path, Told | None] = {}
    end = time.monotonic() + timeout
    while True:
        seen.update(runner.take_ended())
        if want <= seen.keys():
            return seen
        fd = runner.notices()
        assert fd is not None, "the supervisor server is gone"
        left = end - time.monotonic()
        assert left > 0, f"no end told for {sorted(str(j) for j in want - seen.keys())}"
        if select.select([fd], [], [], left)[0]:
            runner.read_notices()
