"""Access to the control socket as an unprivileged user created by the test: refused
without a group, read-only as a viewer, allowed as an operator, every change audited
with the uid; only root stops the logical host."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, as_user, cli_env

from ajs3.errors import AjsError, Code
from ajs3.service.client import Client

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates users: needs root")


class Account:
    """A user and two groups made for one test, removed after it."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.user, self.operators, self.viewers = f"ajs3t{tag}", f"ajs3to{tag}", f"ajs3tv{tag}"
        for group in (self.operators, self.viewers):
            subprocess.run(["groupadd", group], check=True)
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", self.user], check=True)
        entry = pwd.getpwnam(self.user)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def join(self, group: str) -> None:
        subprocess.run(["gpasswd", "-a", self.user, group], check=True, capture_output=True)

    def leave(self, group: str) -> None:
        subprocess.run(["gpasswd", "-d", self.user, group], check=True, capture_output=True)

    def remove(self) -> None:
        subprocess.run(["userdel", self.user], check=False)
        for group in (self.operators, self.viewers):
            subprocess.run(["groupdel", group], check=False)

    def run(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``call()`` in a child process that runs as this user; its result or error."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                try:
                    out: dict[str, Any] = {"ok": True, "result": call()}
                except AjsError as exc:
                    out = {
                        "ok": False,
                        "code": exc.code.value,
                        "message": exc.message,
                        "hint": exc.hint,
                    }
                os.write(write, json.dumps(out, default=str).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return dict(json.loads(data))


@pytest.fixture
def account() -> Iterator[Account]:
    made = Account()
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def host(account: Account) -> Iterator[LogicalHost]:
    # the pytest temporary directory is root's alone: put the host where others may look
    base = Path(tempfile.mkdtemp(prefix="ajs3-access-"))
    base.chmod(0o755)
    lh = LogicalHost(base, "acc")
    lh.datadir.parent.chmod(0o755)
    (lh.datadir / "ajs3.yaml").write_text(
        f"operators_group: {account.operators}\nviewers_group: {account.viewers}\n"
    )
    try:
        lh.start()
        lh.define("""
            group: /a
            jobnets:
              - name: net
                units:
                  - {name: j1, command: [/bin/true]}
                  - {name: j2, after: [j1], command: [/bin/true]}
        """)
        yield lh
    finally:
        lh.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_access_follows_the_groups_and_every_change_is_audited(
    host: LogicalHost, account: Account
) -> None:
    c = Client(host.rundir / "control.sock", timeout=30)
    run = c.entry("/a/net", hold=True)["run"]

    def why() -> dict[str, Any]:
        return c.why("/a/net/j1", run=run)

    def entry() -> dict[str, Any]:
        return c.entry("/a/net", hold=True)

    def hold() -> dict[str, Any]:
        return c.hold("/a/net/j2", run=run)

    # without a group: alive or not is all a user may learn
    assert account.run(c.ping)["ok"]
    refused = account.run(why)
    assert refused["code"] == Code.PERMISSION_DENIED.value
    assert account.viewers in refused["hint"] and account.user in refused["message"]
    refused = account.run(entry)
    assert refused["code"] == Code.PERMISSION_DENIED.value
    assert account.operators in refused["hint"]

    # a viewer reads and may not change anything
    account.join(account.viewers)
    seen = account.run(why)
    assert seen["ok"] and seen["result"]["unit"] == "/a/net/j1"
    assert account.run(entry)["code"] == Code.PERMISSION_DENIED.value
    assert account.run(hold)["code"] == Code.PERMISSION_DENIED.value

    # an operator changes state; each change is in the journal with the user's uid
    account.join(account.operators)
    made = account.run(entry)
    assert made["ok"], made
    assert account.run(hold)["ok"]
    # stopping the logical host is root's
    stop = account.run(lambda: c.stop(jobs="leave", timeout=5))
    assert stop["code"] == Code.PERMISSION_DENIED.value
    assert c.ping()["pid"] == host.daemon_pid()

    rows = host.journal_query(
        "SELECT uid, user, op, code, args FROM audit WHERE uid=?", (account.uid,)
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (account.uid, account.user, "entry", "ok"),
        (account.uid, account.user, "hold", "ok"),
    ]
    assert json.loads(rows[0][4])["jobnet"] == "/a/net"
    log = (host.datadir / "log" / "ajs3.log").read_text().splitlines()
    lines = [json.loads(x) for x in log if '"audit"' in x]
    assert {(a["op"], a["result"]) for a in lines if a["uid"] == account.uid} == {
        ("entry", "ok"),
        ("hold", "ok"),
    }

    # leaving the group takes effect at the next request, without a restart
    account.leave(account.operators)
    assert account.run(entry)["code"] == Code.PERMISSION_DENIED.value


def test_a_user_holding_connections_cannot_crowd_out_root(
    host: LogicalHost, account: Account
) -> None:
    """Idle connections of one user are bounded (E312 beyond), and root's requests (the
    cluster's health check) are still served while they are held."""
    from ajs3.service.control import PER_USER

    sock_path = str(host.rundir / "control.sock")
    told, tell = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, as the user
        try:
            os.close(told)
            os.close(hold_w)
            os.setgroups([])
            os.setgid(account.gid)
            os.setuid(account.uid)
            held = []
            for _ in range(PER_USER):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(sock_path)
                held.append(sock)
            code = "none"
            for _ in range(200):  # the daemon accepts at its pace: ask until refused
                extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                extra.settimeout(20)
                extra.connect(sock_path)
                data = extra.recv(65536)
                extra.close()
                if data:
                    code = json.loads(data)["error"]["code"]
                    break
                time.sleep(0.1)
            os.write(tell, code.encode())
            os.read(hold_r, 1)  # hold the connections until the parent has checked
        finally:
            os._exit(0)
    os.close(tell)
    os.close(hold_r)
    try:
        code = os.read(told, 64).decode()
        os.close(told)
        assert code == Code.TOO_MANY_CLIENTS.value
        assert Client(sock_path, timeout=30).ping()["pid"] == host.daemon_pid()
    finally:
        os.close(hold_w)
        os.waitpid(pid, 0)


def test_the_socket_is_reachable_and_the_run_directory_not_writable(host: LogicalHost) -> None:
    assert (host.rundir / "control.sock").stat().st_mode & 0o777 == 0o666
    assert host.rundir.stat().st_mode & 0o777 == 0o755


def test_a_viewer_reads_show_and_log_through_the_daemon(
    host: LogicalHost, account: Account
) -> None:
    """The journal and job files are root's alone: a viewer's `ajs3 show` and `ajs3 log`
    ask the daemon and print what root's print; without a group they are refused, and
    a viewer still changes nothing."""
    host.define(
        """
        group: /b
        jobnets:
          - name: out
            units:
              - {name: say, command: [/bin/sh, -c, "printf 'hello\\nworld\\n'; echo oops >&2"]}
        """,
        name="out.yaml",
    )
    run = host.entry("/b/out")
    host.wait(run)
    assert (host.datadir / "journal.db").stat().st_mode & 0o077 == 0  # root's alone

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = f"PYTHONPATH={cli_env()['PYTHONPATH']}"
        return as_user(
            account.user, "env", env, sys.executable, "-m", "ajs3.cli.main", *args, *host.opts
        )

    reads = [
        ("show", "--json"),
        ("show", "/b/out", "--run", str(run), "--json"),
        ("show", "--all", "--json"),
        ("log", "/b/out/say", "--run", str(run)),
        ("log", "/b/out/say", "--stderr"),
    ]
    for args in reads:  # no group: refused with the group to join
        done = cli(*args)
        assert done.returncode != 0 and Code.PERMISSION_DENIED.value in done.stderr, done
        assert account.viewers in done.stderr

    account.join(account.viewers)
    for args in reads:
        mine, roots = cli(*args), host.run(*args)
        assert mine.returncode == 0, mine
        if "--json" in args:
            assert json.loads(mine.stdout) == json.loads(roots.stdout), args
        else:
            assert mine.stdout == roots.stdout, args
    assert cli("log", "/b/out/say", "--run", str(run)).stdout == "hello\nworld\n"
    assert cli("log", "/b/out/say", "--stderr").stdout == "oops\n"

    # reading is all: every change is still refused
    for args in (("entry", "/b/out"), ("hold", "/b/out/say", "--run", str(run))):
        done = cli(*args)
        assert done.returncode != 0 and Code.PERMISSION_DENIED.value in done.stderr, done
    assert host.journal_query("SELECT count(*) FROM audit WHERE uid=?", (account.uid,)) == [(0,)]


def test_a_user_finds_roots_daemon_in_run_ajs3_without_options(account: Account) -> None:
    """Root's daemon keeps its socket in /run/ajs3/LHOST; a viewer's plain
    `ajs3 show -h LHOST` (no --rundir, no --datadir) reaches it there, not an empty run
    directory of its own."""
    base = Path(tempfile.mkdtemp(prefix="ajs3-access-"))
    base.chmod(0o755)
    lh = LogicalHost(base, f"acc{uuid.uuid4().hex[:8]}")
    lh.rundir = Path("/run/ajs3") / lh.lhost
    lh.datadir.parent.chmod(0o755)
    lh.write_settings(f"viewers_group: {account.viewers}\n")
    try:
        lh.start()
        lh.define("""
            group: /a
            jobnets:
              - {name: net, units: [{name: j1, command: [/bin/true]}]}
        """)
        lh.wait(lh.entry("/a/net"))
        account.join(account.viewers)
        env = {**cli_env(), "HOME": "/", "XDG_RUNTIME_DIR": ""}
        argv = [sys.executable, "-m", "ajs3.cli.main", "show", "--json", "-h", lh.lhost]
        done = as_user(account.user, "env", *(f"{k}={v}" for k, v in env.items()), *argv)
        assert done.returncode == 0, done
        assert json.loads(done.stdout) == lh.json("show")
    finally:
        lh.cleanup()
        shutil.rmtree(lh.rundir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
