"""What a job sees: its identity in AJS3_* variables, cwd, env, OS user; its output kept."""

from __future__ import annotations

import os
import pwd
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest


def env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_run_identity_in_the_environment(lhost: Any, tmp_path: Path) -> None:
    work = tmp_path / "work dir"
    work.mkdir()
    lhost.define(f"""
        group: /e
        jobnets:
          - name: net
            units:
              - name: a
                script: 'env; echo "PWD=$(pwd)"; echo to-stderr >&2'
                cwd: {work}
                env: {{GREETING: hello world, NUM: 5}}
              - {{name: b, after: [a], command: [/usr/bin/env]}}
    """)
    at = datetime.fromtimestamp(time.time() + 1.0).astimezone()
    run = lhost.entry("/e/net", "--at", at.isoformat(timespec="milliseconds"))
    data = lhost.wait(run)
    units = {u["path"]: u for u in data["units"]}
    seen_ids = set()
    for path in ("/e/net/a", "/e/net/b"):
        u = units[path]
        assert u["status"] == "ended_normally"
        env = env_of(lhost.run("log", path).stdout)
        assert env["AJS3_RUN_ID"] == u["run_id"]
        assert env["AJS3_LHOST"] == "lh1"
        assert env["AJS3_UNIT"] == path
        assert env["AJS3_ATTEMPT"] == str(u["attempt"]) == "1"
        assert env["AJS3_EPOCH"] == str(u["epoch"])
        scheduled = datetime.fromisoformat(env["AJS3_SCHEDULED_AT"].replace("Z", "+00:00"))
        assert abs(scheduled.timestamp() - data["scheduled_at"]) < 0.001
        assert abs(scheduled.timestamp() - at.timestamp()) < 0.001
        # it did not start before its time
        assert u["started_at"] >= at.timestamp() - 0.01
        seen_ids.add(env["AJS3_RUN_ID"])
        # the same output by run id
        assert lhost.run("log", u["run_id"]).stdout == lhost.run("log", path).stdout
    assert len(seen_ids) == 2
    a_env = env_of(lhost.run("log", "/e/net/a").stdout)
    assert a_env["GREETING"] == "hello world" and a_env["NUM"] == "5"
    assert a_env["PWD"] == str(work)
    assert "GREETING" not in env_of(lhost.run("log", "/e/net/b").stdout)
    assert lhost.run("log", "/e/net/a", "--stderr").stdout == "to-stderr\n"
    assert lhost.run("log", "/e/net/b", "--stderr").stdout == ""
    # the epoch grows with each start of the logical host
    lhost.stop()
    lhost.start()
    run2 = lhost.entry("/e/net")
    lhost.wait(run2)
    env2 = env_of(lhost.run("log", "/e/net/b").stdout)
    assert int(env2["AJS3_EPOCH"]) == int(a_env["AJS3_EPOCH"]) + 1
    assert env2["AJS3_RUN_ID"] not in seen_ids


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_job_runs_as_its_os_user(lhost: Any) -> None:
    lhost.define("""
        group: /e
        jobnets:
          - name: users
            units:
              - {name: as_nobody, user: nobody, cwd: /, script: 'id -un; id -u; echo $HOME >&2'}
              - {name: as_daemon_user, script: 'id -un'}
              - {name: no_such_user, user: no-such-user-ajs3, command: [/bin/true]}
    """)
    run = lhost.entry("/e/users")
    lhost.wait(run)
    units = lhost.units(run)
    assert units["/e/users/as_nobody"]["status"] == "ended_normally"
    name, uid = lhost.run("log", "/e/users/as_nobody").stdout.split()
    assert name == "nobody" and uid != "0"
    # HOME is the job user's, not the daemon's (/root)
    home = lhost.run("log", "/e/users/as_nobody", "--stderr").stdout.strip()
    assert home == pwd.getpwnam("nobody").pw_dir
    assert lhost.run("log", "/e/users/as_daemon_user").stdout.strip() == "root"
    bad = units["/e/users/no_such_user"]
    assert bad["status"] == "failed_to_start"
    assert bad["run_id"]  # the intent was recorded, the start failed
    why = lhost.json("show", "--why", "/e/users/no_such_user")
    assert "no-such-user-ajs3" in why["reason"]
    assert units["/e/users"]["status"] == "ended_abnormally"


def test_program_that_cannot_be_executed_fails_to_start(lhost: Any, tmp_path: Path) -> None:
    lhost.define(f"""
        group: /e
        jobnets:
          - name: bad
            units:
              - {{name: missing, command: [/no/such/program]}}
              - {{name: badcwd, command: [/bin/true], cwd: {tmp_path / "nope"}}}
              - {{name: rec, after: [missing], recovery: true, command: [/bin/true]}}
    """)
    run = lhost.entry("/e/bad")
    lhost.wait(run)
    units = lhost.units(run)
    for name in ("missing", "badcwd"):
        assert units[f"/e/bad/{name}"]["status"] == "failed_to_start", units[f"/e/bad/{name}"]
    assert "/no/such/program" in lhost.json("show", "--why", "/e/bad/missing")["reason"]
    assert units["/e/bad/rec"]["status"] == "ended_normally"
    assert units["/e/bad"]["status"] == "ended_abnormally"
