"""Jobs isolated from the daemon, tried as a hostile job user would (docs/security.md).

Real daemon, real supervisor, and an unprivileged user created for each test (removed
afterwards). The logical hosts live in a directory every user may traverse, so that
what stops the job user is the mode of ajs3's own files, not the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import (
    LogicalHost,
    as_user,
    run_ended,
    run_started,
    start_record,
    unprivileged_user,
    wait_for,
)

from ajs3.engine import jobgroups
from ajs3.engine.jobenv import SAFE_PATH
from ajs3.engine.jobgroups import kill_group, proc_starttime
from ajs3.engine.runner import Runner
from ajs3.settings import Settings

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates a user and runs jobs as it"
)

SECRET = {"AJS3T_SECRET": "s3cr3t-of-the-service"}


def env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    with unprivileged_user("i") as entry:
        yield entry


@pytest.fixture
def open_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="ajs3-iso-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def host_of(open_base: Path) -> Iterator[Callable[..., LogicalHost]]:
    made: list[LogicalHost] = []

    def make(name: str = "iso", settings: str = "") -> LogicalHost:
        host = LogicalHost(open_base, name, allow_root_jobs=False)
        if settings:
            host.write_settings(settings, allow_root_jobs=False)
        made.append(host)
        return host

    yield make
    for host in made:
        host.cleanup()


def crash(host: LogicalHost, run_id: str) -> None:
    """What a node crash does to the daemon, the supervisor and the job (SIGKILL all);
    the daemon is stopped first so that it cannot react in between."""
    started = run_started(host.datadir, run_id, wait=10)
    assert started is not None
    pid = host.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    os.kill(started["supervisor_pid"], signal.SIGKILL)
    os.killpg(started["pgid"], signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone_or_zombie(started["supervisor_pid"]), message="supervisor gone")


def gone_or_zombie(pid: int) -> bool:
    """Whether pid has died. Its /proc entry can vanish between any two looks (it is
    reaped), so the one read that tells is the one that may find nothing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields.rpartition(")")[2].split()[0] == "Z"


def test_job_gets_a_clean_environment_of_its_user(user: Any, host_of: Any) -> None:
    host = host_of(settings="env_passthrough: [LANG, AJS3T_PASSED]\n")
    host.start(env={**SECRET, "AJS3T_PASSED": "passed", "LANG": "C.UTF-8"})
    host.define(f"""
        group: /i
        jobnets:
          - name: net
            units:
              - {{name: as_user, user: {user.pw_name}, command: [/usr/bin/env]}}
              - {{name: no_user, command: [/bin/sh, -c, 'env; echo "UID=$(id -u)"']}}
    """)
    run = host.entry("/i/net")
    host.wait(run)
    units = host.units(run)
    env = env_of(host.run("log", "/i/net/as_user").stdout)
    assert units["/i/net/as_user"]["status"] == "ended_normally"
    assert env["HOME"] == user.pw_dir and env["HOME"] != "/root"
    assert env["USER"] == env["LOGNAME"] == user.pw_name and env["SHELL"] == "/bin/sh"
    assert env["PATH"] == SAFE_PATH
    assert env["LANG"] == "C.UTF-8" and env["AJS3T_PASSED"] == "passed"
    assert env["AJS3_RUN_ID"] == units["/i/net/as_user"]["run_id"]
    assert "s3cr3t-of-the-service" not in host.run("log", "/i/net/as_user").stdout
    extra = {k for k in env if not k.startswith("AJS3_")} - {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "AJS3T_PASSED",
    }
    assert not extra, f"the daemon's environment leaked: {extra}"
    # no user: and a root daemon: the default user (nobody), with nobody's HOME
    nobody = pwd.getpwnam("nobody")
    env = env_of(host.run("log", "/i/net/no_user").stdout)
    assert env["UID"] == str(nobody.pw_uid) and env["HOME"] == nobody.pw_dir
    assert env["USER"] == "nobody" and "AJS3T_SECRET" not in env


def test_root_job_is_refused_unless_the_settings_allow_it(host_of: Any) -> None:
    host = host_of()
    host.start()
    (host.datadir / "definitions" / "root.yaml").write_text(
        "group: /i\njobnets:\n  - name: root\n    units:\n"
        "      - {name: as_root, user: root, command: [/usr/bin/id, -u]}\n"
    )
    defined = host.run("define", check=False)
    if defined.returncode != 0:  # refused when defined (once apply checks job users)
        assert "AJS3-E313" in defined.stderr and "Traceback" not in defined.stderr
        return
    run = host.entry("/i/root")
    host.wait(run)
    unit = host.units(run)["/i/root/as_root"]
    assert unit["status"] == "failed_to_start"
    assert "AJS3-E313" in unit["reason"] and "allow_root_jobs" in unit["reason"]
    assert host.run("log", "/i/root/as_root", check=False).stdout == ""


def test_settings_are_read_again_at_define(host_of: Any) -> None:
    """ajs3.yaml written while the daemon runs takes effect at the next `ajs3 define`,
    as it does for a define without a daemon (a daemon that kept the settings of its
    start ran the cluster workload's jobs as nobody); an unsafe file is refused and
    nothing is applied."""
    host = host_of()
    host.start()
    host.define(
        "group: /i\njobnets:\n  - name: who\n    units:\n"
        "      - {name: id, command: [/usr/bin/id, -u]}\n"
    )

    def uid_of_a_run() -> str:
        run = host.entry("/i/who")
        host.wait(run)
        return host.run("log", "/i/who/id", "--run", str(run)).stdout.strip()

    assert uid_of_a_run() == str(pwd.getpwnam("nobody").pw_uid)
    host.write_settings("default_user: daemon\n", allow_root_jobs=False)
    host.run("define")
    assert uid_of_a_run() == str(pwd.getpwnam("daemon").pw_uid)

    (host.datadir / "ajs3.yaml").chmod(0o666)
    before = host.journal_query("SELECT max(version) FROM definitions")
    (host.datadir / "definitions" / "more.yaml").write_text(
        "group: /j\njobnets:\n  - {name: n, units: [{name: a, command: [/bin/true]}]}\n"
    )
    refused = host.run("define", check=False)
    assert refused.returncode != 0 and "AJS3-E114" in refused.stderr, refused
    assert "Traceback" not in refused.stderr
    assert host.journal_query("SELECT max(version) FROM definitions") == before
    assert uid_of_a_run() == str(pwd.getpwnam("daemon").pw_uid)


def test_failover_check_runs_as_the_jobs_user_with_its_environment(user: Any, host_of: Any) -> None:
    host = host_of()
    host.start(env=SECRET)
    host.define(f"""
        group: /i
        jobnets:
          - name: net
            units:
              - name: work
                user: {user.pw_name}
                command: [/bin/sleep, '300']
                on_failover: judge
                failover_check: [/bin/sh, -c, 'echo "UID=$(id -u)"; env; exit 0']
    """)
    run = host.entry("/i/net")
    run_id = wait_for(lambda: host.units(run)["/i/net/work"]["run_id"], message="job start")
    crash(host, run_id)
    host.start(env=SECRET)
    unit = host.wait(run)["units"]
    work = next(u for u in unit if u["path"] == "/i/net/work")
    assert work["status"] == "ended_normally" and "check said done" in work["reason"]
    log = (host.datadir / "jobs" / run_id / "failover_check.log").read_text()
    env = env_of(log)
    assert env["UID"] == str(user.pw_uid)
    assert env["HOME"] == user.pw_dir and env["USER"] == user.pw_name
    assert env["AJS3_CHECK"] == "failover" and env["AJS3_RUN_ID"] == run_id
    assert "AJS3T_SECRET" not in env and "s3cr3t" not in log


def test_a_job_cannot_make_root_write_through_a_link(
    user: Any, host_of: Any, open_base: Path
) -> None:
    target = open_base / "precious"
    target.write_text("precious\n")
    target.chmod(0o644)
    host = host_of()
    host.start()
    script = (
        'd="$AJS3_DATADIR/jobs/$AJS3_RUN_ID"; '
        "for f in status.json.tmp status.json started.json stdout stderr; do "
        f'  rm -f "$d/$f" 2>/dev/null; ln -sf {target} "$d/$f" 2>/dev/null && echo "planted $f"; '
        "done; "
        'touch "$d/mine" 2>/dev/null && echo "wrote in the job directory"; '
        'for f in "$AJS3_DATADIR"/claims/*; do '
        '  echo "e {\\"run_id\\": \\"$AJS3_RUN_ID\\", \\"exit_code\\": 9}" 2>/dev/null >> "$f" '
        '  && echo "forged an end in $f"; '
        "done; "
        f'echo overwritten > {target} 2>/dev/null && echo "wrote the target"; '
        "echo done"
    )
    host.define(f"""
        group: /i
        jobnets:
          - name: net
            units:
              - name: attacker
                user: {user.pw_name}
                script: '{script}'
    """)
    run = host.entry("/i/net")
    host.wait(run)
    unit = host.units(run)["/i/net/attacker"]
    assert unit["status"] == "ended_normally", unit
    out = host.run("log", "/i/net/attacker").stdout
    assert out.strip() == "done", out
    assert target.read_text() == "precious\n"
    jobdir = host.datadir / "jobs" / unit["run_id"]
    st = jobdir.lstat()
    assert st.st_uid == 0 and not st.st_mode & 0o022
    # the job's output is all its directory holds; its records are in the record logs
    names = sorted(p.name for p in jobdir.iterdir())
    assert "stdout" in names and set(names) <= {"stdout", "stderr"}, names
    for name in names:
        fst = (jobdir / name).lstat()
        assert stat.S_ISREG(fst.st_mode) and fst.st_uid == 0, name
        assert not fst.st_mode & 0o022, name
    assert (run_ended(host.datadir, unit["run_id"]) or {})["exit_code"] == 0


def test_a_forged_start_record_cannot_make_the_daemon_signal_a_foreign_group(
    user: Any, host_of: Any
) -> None:
    foreign = subprocess.Popen(["sleep", "300"], process_group=0)
    try:
        host = host_of()
        host.start()
        host.define(f"""
            group: /i
            jobnets:
              - name: net
                units:
                  - {{name: sleeper, user: {user.pw_name}, command: [/bin/sleep, '3'],
                      kill_grace: 0.5}}
        """)
        run = host.entry("/i/net")
        run_id = wait_for(lambda: host.units(run)["/i/net/sleeper"]["run_id"], message="job start")
        real = run_started(host.datadir, run_id, wait=10)
        assert real is not None
        record = host.datadir / "jobs" / run_id / "started.json"  # read before the logs
        record.parent.mkdir(exist_ok=True)
        # The worst case: the record says the job's group is the foreign one.
        record.write_text(json.dumps({**real, "pgid": foreign.pid}))
        host.run("kill", "/i/net/sleeper")  # the daemon signals the group it was told
        host.wait(run)
        assert foreign.poll() is None, "the daemon signalled a foreign process group"
    finally:
        foreign.kill()
        foreign.wait()


def test_kill_group_verifies_session_and_start_time(tmp_path: Path) -> None:
    runner = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True))
    foreign = subprocess.Popen(["sleep", "300"], process_group=0)
    try:
        identity = {"AJS3_RUN_ID": "r1", "AJS3_LHOST": "lh1", "AJS3_EPOCH": "1"}
        jobdir, spec = runner.make_spec("r1", ["/bin/sleep", "300"], identity, None, None)
        (pid,) = runner.spawn_many([(jobdir, spec)])
        assert pid
        rec = wait_for(lambda: start_record(jobdir / "started.json"), message="record")
        assert rec["job_start"] and rec["pgid"] == rec["job_pid"]
        # pids and start times are public: a forger can copy the foreign group's
        foreign_start = proc_starttime(foreign.pid)
        forged = [
            {**rec, "pgid": foreign.pid},
            {**rec, "pgid": foreign.pid, "supervisor_pid": os.getsid(foreign.pid)},
            {
                **rec,
                "pgid": foreign.pid,
                "job_pid": foreign.pid,
                "job_start": foreign_start,
                "supervisor_pid": os.getsid(foreign.pid),
                "supervisor_start": proc_starttime(os.getsid(foreign.pid)),
            },
        ]
        assert not kill_group(foreign.pid, signal.SIGTERM)
        for record in forged:
            assert not kill_group(foreign.pid, signal.SIGTERM, record)
        # neither the supervisor nor the job is the one that started at the recorded time
        assert not kill_group(
            rec["pgid"], 0, {**rec, "supervisor_start": 1, "job_start": rec["job_start"] + 1}
        )
        assert kill_group(rec["pgid"], 0, rec)  # the real record: verified
        assert foreign.poll() is None and Path(f"/proc/{rec['job_pid']}").exists()
        # the job's own group, with its supervisor dead (orphaned): pid + start time
        # (what a new daemon knows: nothing verified before)
        jobgroups._VERIFIED.clear()
        # started.json is written before the job may exec: a supervisor killed before
        # that takes its job with it (seen under load); wait for the job to be running
        wait_for(
            lambda: Path(f"/proc/{rec['job_pid']}/cmdline").read_bytes().startswith(b"/bin/sleep"),
            message="the job exec'd",
        )
        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        assert runner.server is not None and runner.server.pid == rec["supervisor_pid"]
        runner.server.wait(timeout=20)  # the supervisor server is this process's child
        assert not kill_group(
            rec["pgid"],
            0,
            {**rec, "job_start": rec["job_start"] + 1, "supervisor_pid": rec["supervisor_pid"] + 1},
        )
        assert not kill_group(rec["pgid"], 0, {**rec, "run_id": "another run"})
        assert kill_group(rec["pgid"], 0)  # without the record: the job's environment
        assert kill_group(rec["pgid"], signal.SIGKILL, rec)
        wait_for(lambda: not kill_group(rec["pgid"], 0, rec), message="job killed")
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()
        runner.close()


def test_an_orphaned_foreign_group_is_not_taken_for_a_job() -> None:
    """A group whose session leader is gone, like an orphaned job's, but that was not
    started as a job: never signalled."""
    script = (
        "import os, sys, time\n"
        "os.setsid()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    fd = os.open(os.devnull, os.O_RDWR)\n"
        "    os.dup2(fd, 1); os.dup2(fd, 2)\n"
        "    os.setpgid(0, 0); time.sleep(300); os._exit(0)\n"
        "print(pid, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    orphan = int(done.stdout)
    try:
        assert os.getpgid(orphan) == orphan and os.getsid(orphan) != orphan
        jobgroups._VERIFIED.clear()
        assert not kill_group(orphan, signal.SIGTERM)
        forged = {
            "pgid": orphan,
            "job_pid": orphan,
            "job_start": proc_starttime(orphan),
            "supervisor_pid": os.getsid(orphan),
            "supervisor_start": 1,
            "run_id": "x",
        }
        assert not kill_group(orphan, signal.SIGTERM, forged)
        assert Path(f"/proc/{orphan}").exists()
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_journal_is_private_to_the_daemons_user(user: Any, host_of: Any) -> None:
    host = host_of()
    host.start()
    host.define("jobnets:\n  - name: n\n    units: [{name: a, command: [/bin/true]}]\n")
    host.wait(host.entry("/n"))
    journal = host.datadir / "journal.db"
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        assert stat.S_IMODE((host.datadir / name).stat().st_mode) == 0o600, name
    for name in ("journal.db", "journal.db-wal"):
        denied = as_user(user.pw_name, "cat", str(host.datadir / name))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # a journal left readable (by an older version) is closed at the next start
    host.stop()
    journal.chmod(0o644)
    host.start()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert as_user(user.pw_name, "cat", str(journal)).returncode != 0


@pytest.mark.parametrize(
    "how", ["owned by the user", "writable by others", "under a directory of the user", "a link"]
)
def test_an_unsafe_run_directory_is_refused(
    user: Any, host_of: Any, open_base: Path, how: str
) -> None:
    host = host_of()
    theirs = open_base / "theirs"
    theirs.mkdir()
    if how == "owned by the user":
        host.rundir = theirs
        os.chown(theirs, user.pw_uid, user.pw_gid)
    elif how == "writable by others":
        host.rundir = theirs
        theirs.chmod(0o777)
    elif how == "under a directory of the user":
        os.chown(theirs, user.pw_uid, user.pw_gid)
        host.rundir = theirs / "ajs3" / "iso"
    else:
        host.rundir = open_base / "link"
        host.rundir.symlink_to(theirs)
    done = host.run("service", "start", "--timeout", "30", check=False)
    assert done.returncode == 1, done.stdout
    assert "AJS3-E210" in done.stderr and "Traceback" not in done.stderr
    assert host.daemon_pid() is None
    assert not list(theirs.rglob("control.sock"))
    assert host.run("service", "status", check=False).returncode == 3
    # a safe one of its own is fine
    host.rundir = open_base / "ours"
    host.start()
    # closed to writers, open to reach the socket (docs/control.md, Access)
    assert stat.S_IMODE(host.rundir.stat().st_mode) == 0o755
