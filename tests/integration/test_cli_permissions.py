"""The CLI run by a user who may not read a root logical host's files: a coded error that
says so, never "not running" for a running host and never a traceback."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lhost import LogicalHost, cli_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the CLI as another user")

GOOD = """
    group: /ok
    jobnets:
      - name: net
        units:
          - {name: a, command: [/bin/true]}
"""


@pytest.fixture
def host() -> Iterator[LogicalHost]:
    """A root logical host in a directory every user may look into (pytest's own tmp_path
    is closed to other users), so the run and data directories' own modes decide."""
    base = Path(tempfile.mkdtemp(prefix="ajs3-perm-"))
    base.chmod(0o755)
    made = LogicalHost(base, "lh1")
    try:
        yield made
    finally:
        made.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(
    host: LogicalHost, *argv: str, rundir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`ajs3 ARGV` for the host, run as nobody; ``rundir`` replaces the host's."""
    nobody = pwd.getpwnam("nobody")
    opts = [*host.opts, *(["--rundir", str(rundir)] if rundir else [])]
    return subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", *argv, *opts],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd="/",
        timeout=60,
        check=False,
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
    )


def assert_coded(done: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    assert done.returncode == 1, f"exit {done.returncode}: {done.stdout} {done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"ajs3: {code}: "), done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


def test_status_and_stop_of_a_running_host_the_user_cannot_read(host: LogicalHost) -> None:
    host.start()
    pidfile = str(host.rundir / "daemon.json")
    done = as_nobody(host, "service", "status")
    assert_coded(done, "AJS3-E309", pidfile, "not readable")
    assert "not running" not in done.stderr + done.stdout
    assert_coded(as_nobody(host, "service", "stop"), "AJS3-E309", pidfile)
    assert_coded(as_nobody(host, "service", "start"), "AJS3-E309", pidfile)
    # none of it touched the daemon
    assert host.run("service", "status").returncode == 0


def test_define_by_a_user_who_may_not_write_the_data_directory(host: LogicalHost) -> None:
    (host.datadir / "definitions" / "a.yaml").write_text(GOOD.replace("\n    ", "\n"))
    host.start()
    # through the daemon, which asks who it is and names the group to join
    assert_coded(as_nobody(host, "define"), "AJS3-E309", "nobody", "ajs3-operators")
    host.stop()
    # no daemon (a run directory with nothing in it): the definitions would go straight
    # into the journal, which this user may not write
    empty = host.datadir.parent / "empty-run"
    empty.mkdir(mode=0o755)
    done = as_nobody(host, "define", rundir=empty)
    assert_coded(done, "AJS3-E205", str(host.datadir), "not writable")
    assert not (host.datadir / "journal.db").exists() or host.journal_query(
        "SELECT COUNT(*) FROM definitions"
    ) == [(0,)]
    # validating only needs to read them
    done = as_nobody(host, "define", "--check", rundir=empty)
    assert done.returncode == 0, done.stderr
    assert "definitions valid: 1 jobnet(s)" in done.stdout
