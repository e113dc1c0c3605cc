"""Who a job runs as and what environment it gets (ajs3/engine/jobenv.py)."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from ajs3.definitions.loader import load_dir
from ajs3.engine.jobenv import (
    SAFE_PATH,
    JobUser,
    JobUserError,
    check_job_users,
    job_environment,
    resolve_user,
)
from ajs3.errors import Code
from ajs3.settings import Settings

NOBODY = pwd.getpwnam("nobody")
ALICE = JobUser("alice", 1234, 1234, "/home/alice", "/bin/bash")
DAEMON_ENV = {
    "PATH": "/opt/evil/bin:/usr/bin",
    "HOME": "/root",
    "USER": "root",
    "DB_PASSWORD": "s3cr3t",
    "LANG": "C.UTF-8",
    "TZ": "Asia/Tokyo",
    "AJS3_RUN_ID": "daemon's own",
    "SSH_AUTH_SOCK": "/tmp/agent",
}


def test_nothing_of_the_daemon_but_what_is_passed_through() -> None:
    env = job_environment(
        ALICE, {"AJS3_RUN_ID": "r1", "GREETING": "hi"}, DAEMON_ENV, ("LANG", "TZ", "NOT_SET")
    )
    assert env == {
        "PATH": SAFE_PATH,
        "HOME": "/home/alice",
        "USER": "alice",
        "LOGNAME": "alice",
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "TZ": "Asia/Tokyo",
        "AJS3_RUN_ID": "r1",
        "GREETING": "hi",
    }


def test_the_jobs_own_env_wins_and_the_identity_comes_from_the_user() -> None:
    env = job_environment(
        ALICE, {"PATH": "/opt/app/bin", "HOME": "/srv/app"}, DAEMON_ENV, ("HOME", "USER")
    )
    assert env["PATH"] == "/opt/app/bin" and env["HOME"] == "/srv/app"
    assert env["USER"] == "alice"  # passing USER through never names another user


def test_passing_path_through_and_never_ajs3_variables() -> None:
    env = job_environment(ALICE, {}, DAEMON_ENV, ("PATH", "AJS3_RUN_ID", "DB_PASSWORD"))
    assert env["PATH"] == "/opt/evil/bin:/usr/bin"
    assert env["DB_PASSWORD"] == "s3cr3t"  # named by the operator: passed
    assert "AJS3_RUN_ID" not in env


def test_root_daemon_without_user_runs_jobs_as_the_default_user() -> None:
    who = resolve_user(None, daemon_uid=0, default_user="nobody", allow_root=False)
    assert (who.name, who.uid, who.home) == ("nobody", NOBODY.pw_uid, NOBODY.pw_dir)
    assert resolve_user(None, daemon_uid=0, default_user="nobody", allow_root=True).uid == 0


def test_root_is_refused_unless_allowed_whatever_its_name() -> None:
    for user, default in (("root", "nobody"), (None, "root")):
        with pytest.raises(JobUserError) as err:
            resolve_user(
                user, daemon_uid=0, default_user=default, allow_root=False, unit="/net/job"
            )
        assert err.value.code is Code.ROOT_JOB_REFUSED
        assert "/net/job" in str(err.value) and "allow_root_jobs" in str(err.value)
    assert resolve_user("root", daemon_uid=0, default_user="nobody", allow_root=True).uid == 0


def test_unprivileged_daemon_runs_jobs_as_itself_and_unknown_users_are_named() -> None:
    assert (
        resolve_user(None, daemon_uid=NOBODY.pw_uid, default_user="x", allow_root=False).name
        == "nobody"
    )
    with pytest.raises(JobUserError) as err:
        resolve_user("no-such-user-ajs3", daemon_uid=0, default_user="nobody", allow_root=False)
    assert "no-such-user-ajs3" in str(err.value) and err.value.code is Code.BAD_VALUE
    # a uid without a password entry (a container) still gets a HOME
    assert JobUser.of_uid(2_000_000_000).home == "/"


def test_define_time_check_names_every_root_job_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "jobnets:\n"
        "  - name: net\n"
        "    units:\n"
        "      - {name: as-root, user: root, command: [/bin/true]}\n"
        "      - {name: as-nobody, user: nobody, command: [/bin/true]}\n"
        "      - {name: default, command: [/bin/true]}\n"
        "      - {name: elsewhere, user: only-on-another-node, command: [/bin/true]}\n"
        "      - {name: j, type: judge, after: [as-root], condition: {op: eq, value: 0}}\n"
    )
    defs = load_dir(tmp_path)
    settings = Settings("lh1", tmp_path)
    problems = check_job_users(defs, settings)
    assert [(p.code, p.line) for p in problems] == [(Code.ROOT_JOB_REFUSED, 4)]
    assert problems[0].file.endswith("d.yaml") and "/net/as-root" in problems[0].message
    assert not check_job_users(defs, Settings("lh1", tmp_path, allow_root_jobs=True))
    # an unprivileged daemon runs jobs without user: as itself
    assert len(check_job_users(defs, settings, daemon_uid=NOBODY.pw_uid)) == 1
    # a root default_user makes every job without user: a root job
    problems = check_job_users(defs, Settings("lh1", tmp_path, default_user="root"))
    assert [p.line for p in problems] == [4, 6]
