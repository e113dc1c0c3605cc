"""ajs3 chgstat (JP1's ajschgstat) with a real daemon: a status set by hand with a
mandatory reason, within the transition table; forbidden changes refused with codes."""

from __future__ import annotations

import json
from pathlib import Path

from lhost import LogicalHost, wait_for

from ajs3.errors import AjsError, Code
from ajs3.service.client import Client

DEFS = """
    group: /c
    jobnets:
      - name: net
        units:
          - name: a
            command: [/bin/sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done; exit {code}']
          - name: b
            after: [a]
            command: [/bin/sh, -c, 'touch {ran}']
          - name: c
            after: [b]
            command: [/bin/true]
"""


def status(host: LogicalHost, run: int, path: str) -> str:
    return str(host.units(run)[path]["status"])


def define(host: LogicalHost, tmp_path: Path, code: int = 0) -> Path:
    gate = tmp_path / "gate"
    host.define(DEFS.format(gate=gate, code=code, ran=tmp_path / "b-ran"))
    return gate


def test_a_waiting_job_set_ended_normally_is_passed_over(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    gate = define(lhost, tmp_path)
    run = lhost.entry("/c/net")
    wait_for(lambda: status(lhost, run, "/c/net/a") == "running", 20, "a to start")
    # a running job is its process's to end
    done = lhost.run(
        "chgstat",
        "/c/net/a",
        "--run",
        str(run),
        "--status",
        "ended_normally",
        "--reason",
        "x",
        check=False,
    )
    assert done.returncode != 0 and "AJS3-E403" in done.stderr and "kill" in done.stderr
    out = lhost.run(
        "chgstat",
        "/c/net/b",
        "--run",
        str(run),
        "--status",
        "ended_normally",
        "--reason",
        "done by hand on the old system",
    ).stdout
    assert "/c/net/b (run" in out and "ended_normally" in out
    gate.touch()
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    units = lhost.units(run)
    assert units["/c/net/c"]["status"] == "ended_normally"
    assert units["/c/net/b"]["run_id"] is None and not (tmp_path / "b-ran").exists()
    assert units["/c/net/b"]["reason"] == "set by root: done by hand on the old system"
    event = lhost.journal_query(
        "SELECT e.old, e.new, e.code FROM events e JOIN unit_runs u ON u.id = e.unit_run"
        " WHERE u.path='/c/net/b' AND e.code='set-by-operator'"
    )
    assert event == [("waiting", "ended_normally", "set-by-operator")]
    rows = lhost.journal_query("SELECT user, args, code FROM audit WHERE op='chgstat'")
    assert [(r[0], r[2]) for r in rows] == [("root", "AJS3-E403"), ("root", "ok")]
    assert json.loads(rows[1][1]) == {
        "run": run,
        "unit": "/c/net/b",
        "status": "ended_normally",
        "reason": "done by hand on the old system",
    }


def test_an_abnormal_end_is_corrected_and_forbidden_changes_name_the_allowed(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    gate = define(lhost, tmp_path, code=3)
    gate.touch()
    run = lhost.entry("/c/net")
    lhost.wait(run)
    assert status(lhost, run, "/c/net/a") == "ended_abnormally"
    assert status(lhost, run, "/c/net/b") == "not_executed"

    def chgstat(unit: str, new: str, reason: str = "ops ticket 42") -> tuple[int, str]:
        done = lhost.run(
            "chgstat",
            unit,
            "--run",
            str(run),
            "--status",
            new,
            "--reason",
            reason,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    rc, text = chgstat("/c/net/a", "running")
    assert rc != 0 and "AJS3-E405" in text
    assert "it may become ended_normally, ended_warning" in text
    rc, text = chgstat("/c/net/b", "ended_normally")  # not executed: only a rerun runs it
    assert rc != 0 and "AJS3-E405" in text and "ajs3 rerun" in text
    rc, text = chgstat("/c/net", "ended_normally")
    assert rc != 0 and "AJS3-E406" in text
    rc, text = chgstat("/c/net/a", "ended_normally", reason="   ")
    assert rc != 0 and "AJS3-E406" in text
    rc, text = chgstat("/c/net/a", "bogus")
    assert rc != 0 and "AJS3-E405" in text
    missing = lhost.run("chgstat", "/c/net/a", "--status", "ended_normally", check=False)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    try:  # another client, without a reason: not a valid request
        Client(lhost.rundir / "control.sock").chgstat("/c/net/a", "ended_normally", "", run=run)
    except AjsError as exc:
        assert exc.code is Code.BAD_REQUEST
    else:
        raise AssertionError("a chgstat without a reason was taken")
    assert status(lhost, run, "/c/net/a") == "ended_abnormally"  # nothing changed so far

    rc, text = chgstat("/c/net/a", "ended_normally", reason="exit 3 is fine for this feed")
    assert rc == 0, text
    units = lhost.units(run)
    assert units["/c/net/a"]["status"] == "ended_normally"
    assert units["/c/net/a"]["exit_code"] == 3  # what it did stays on record
    # and now a rerun from b runs the rest
    lhost.run("rerun", "/c/net", "--run", str(run), "--from", "/c/net/b")
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    assert (tmp_path / "b-ran").exists()
