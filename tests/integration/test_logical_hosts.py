"""Two logical hosts side by side on one machine: nothing shared, each stops on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from lhost import cli_env, run_started, wait_for


def ajs3(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", *argv],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )


def test_two_logical_hosts_run_side_by_side(make_lhost: Any, tmp_path: Path) -> None:
    hosts = [make_lhost("lh1"), make_lhost("lh2")]
    for host in hosts:
        host.start()
    gates = {h.lhost: tmp_path / f"go-{h.lhost}" for h in hosts}
    seen = {h.lhost: tmp_path / f"seen-{h.lhost}" for h in hosts}
    runs = {}
    for host in hosts:
        host.define(f"""
            group: /{host.lhost}
            jobnets:
              - name: net
                units:
                  - name: wait
                    script: 'echo $AJS3_LHOST > {seen[host.lhost]};
                             while [ ! -e {gates[host.lhost]} ]; do sleep 0.05; done'
                  - {{name: after, after: [wait], command: [/bin/true]}}
        """)
        runs[host.lhost] = host.entry(f"/{host.lhost}/net")
    lh1, lh2 = hosts
    # both run at the same time
    for host in hosts:
        wait_for(
            lambda h=host: h.units(runs[h.lhost])[f"/{h.lhost}/net/wait"]["status"] == "running"
        )
        assert seen[host.lhost].read_text().strip() == host.lhost

    # separate data and run directories, daemons, sockets, locks and journals
    assert lh1.daemon_pid() != lh2.daemon_pid()
    assert {p.name for p in lh1.rundir.iterdir()} >= {"control.sock", "daemon.json"}
    for host, other in ((lh1, lh2), (lh2, lh1)):
        listing = host.show()
        assert [j["jobnet"] for j in listing["jobnets"]] == [f"/{host.lhost}/net"]
        assert (host.datadir / "journal.db").exists()
        assert json.loads((host.datadir / "ajs3.lock").read_text())["pid"] == host.daemon_pid()
        # each journal knows only its own runs
        assert [r["jobnet"] for r in listing["runs"]] == [f"/{host.lhost}/net"]
        mine = host.units(runs[host.lhost])[f"/{host.lhost}/net/wait"]["run_id"]
        theirs = other.units(runs[other.lhost])[f"/{other.lhost}/net/wait"]["run_id"]
        assert run_started(host.datadir, mine, wait=10) is not None
        assert run_started(host.datadir, theirs, wait=0) is None
        assert not (host.datadir / "jobs" / theirs).exists()

    # stopping lh1 (killing its job) leaves lh2 and its job alone
    lh1.stop(jobs="kill")
    assert lh1.run("service", "status", check=False).returncode == 3
    assert lh2.run("service", "status", check=False).returncode == 0
    assert lh2.units(runs["lh2"])["/lh2/net/wait"]["status"] == "running"
    assert lh1.units(runs["lh1"])["/lh1/net/wait"]["status"] == "killed"
    # a command for the stopped host says so, the other one still answers
    done = lh1.run("entry", "/lh1/net", check=False)
    assert done.returncode == 1 and "AJS3-E302" in done.stderr
    gates["lh2"].touch()
    final = lh2.wait(runs["lh2"])
    assert final["units"][0]["status"] == "ended_normally"


def test_second_daemon_on_the_same_data_directory_is_refused(
    make_lhost: Any, tmp_path: Path
) -> None:
    host = make_lhost("lh1")
    host.start()
    pid = host.daemon_pid()
    # the same logical host again: already running, nothing changes
    again = host.run("service", "start", "--timeout", "30")
    assert "already running" in again.stdout
    assert host.daemon_pid() == pid
    # another daemon (other name, other run directory) on the same data directory
    other_run = tmp_path / "other-run"
    done = ajs3(
        "service",
        "start",
        "-h",
        "intruder",
        "--datadir",
        str(host.datadir),
        "--rundir",
        str(other_run),
        "--timeout",
        "30",
    )
    assert done.returncode == 1, done
    assert "AJS3-E301" in done.stderr and f"pid {pid}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (other_run / "daemon.json").exists()
    # the same, in the foreground (as a resource agent or systemd would run it)
    done = ajs3(
        "service",
        "start",
        "--foreground",
        "--quiet",
        "-h",
        "intruder",
        "--datadir",
        str(host.datadir),
        "--rundir",
        str(other_run),
    )
    assert done.returncode == 1 and "AJS3-E301" in done.stderr and f"pid {pid}" in done.stderr
    assert "Traceback" not in done.stderr
    # the owner is unharmed
    assert host.run("service", "status").returncode == 0
    assert json.loads((host.datadir / "ajs3.lock").read_text())["pid"] == pid
