"""Operator commands through the CLI: hold / release, rerun modes, kill."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lhost import wait_for


def status_of(lhost: Any, run: int, path: str) -> str:
    return str(lhost.units(run)[path]["status"])


def wait_status(lhost: Any, run: int, path: str, status: str, timeout: float = 20.0) -> None:
    wait_for(
        lambda: status_of(lhost, run, path) == status,
        timeout,
        f"{path} to be {status}, is {status_of(lhost, run, path)}",
    )


def gate(path: Path) -> str:
    return f"while [ ! -e {path} ]; do sleep 0.05; done"


def group_gone(pgid: int, seconds: float = 3.0) -> bool:
    """True once no process of the group is left (killed members may take a moment)."""
    end = time.monotonic() + seconds
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


# -- hold and release -------------------------------------------------------------------


def test_unit_defined_held_waits_until_released(lhost: Any) -> None:
    lhost.define("""
        group: /h
        jobnets:
          - name: net
            units:
              - {name: a, command: [/bin/true]}
              - {name: b, after: [a], hold: true, command: [/bin/true]}
              - {name: c, after: [b], command: [/bin/true]}
    """)
    run = lhost.entry("/h/net")
    wait_status(lhost, run, "/h/net/a", "ended_normally")
    time.sleep(0.3)  # give the scheduler every chance to (wrongly) start b
    units = lhost.units(run)
    assert units["/h/net/b"]["status"] == "held"
    assert units["/h/net/b"]["run_id"] is None
    assert units["/h/net/c"]["status"] == "waiting"
    assert units["/h/net"]["status"] == "running"

    why = lhost.json("show", "--why", "/h/net/b")
    failed = [c for c in why["checks"] if not c["passed"]]
    assert [c["rule"] for c in failed] == ["not_held"]
    text = lhost.run("show", "--why", "/h/net/b").stdout
    assert "NO" in text and "not_held" in text and "release" in text
    # c waits for b, and says so
    why_c = lhost.json("show", "--why", "/h/net/c")
    assert any(
        c["rule"] == "predecessors" and "b" in c["reason"] and not c["passed"]
        for c in why_c["checks"]
    )

    lhost.run("release", "/h/net/b")
    final = lhost.wait(run)
    assert final["units"][0]["status"] == "ended_normally"
    units = lhost.units(run)
    assert units["/h/net/b"]["status"] == "ended_normally"
    assert units["/h/net/c"]["status"] == "ended_normally"
    assert units["/h/net/b"]["started_at"] >= units["/h/net/a"]["ended_at"]


def test_hold_a_pending_unit_of_a_running_jobnet(lhost: Any, tmp_path: Path) -> None:
    go, other = tmp_path / "go", tmp_path / "other"
    lhost.define(f"""
        group: /h
        jobnets:
          - name: net
            units:
              - {{name: g, script: '{gate(go)}'}}
              - {{name: x, after: [g], command: [/bin/true]}}
          - name: busy
            units:
              - {{name: g, script: '{gate(other)}'}}
    """)
    run = lhost.entry("/h/net")
    wait_status(lhost, run, "/h/net/g", "running")
    # a second jobnet registered later runs at the same time
    busy = lhost.entry("/h/busy")
    wait_status(lhost, busy, "/h/busy/g", "running")

    lhost.run("hold", "/h/net/x")
    assert status_of(lhost, run, "/h/net/x") == "held"
    # a running job can not be held
    done = lhost.run("hold", "/h/net/g", check=False)
    assert done.returncode == 1 and "AJS3-E403" in done.stderr

    go.touch()
    wait_status(lhost, run, "/h/net/g", "ended_normally")
    time.sleep(0.3)
    assert status_of(lhost, run, "/h/net/x") == "held"
    assert status_of(lhost, run, "/h/net") == "running"

    lhost.run("release", "/h/net/x")
    lhost.wait(run)
    assert status_of(lhost, run, "/h/net/x") == "ended_normally"
    assert status_of(lhost, run, "/h/net") == "ended_normally"
    other.touch()
    lhost.wait(busy)


def test_entry_hold_holds_the_root_until_released(lhost: Any) -> None:
    lhost.define("""
        group: /h
        jobnets:
          - name: net
            units:
              - {name: a, command: [/bin/true]}
    """)
    run = lhost.entry("/h/net", "--hold")
    time.sleep(0.3)
    units = lhost.units(run)
    assert units["/h/net"]["status"] == "held"
    assert units["/h/net/a"]["status"] == "not_scheduled"
    lhost.run("release", "/h/net", "--run", str(run))
    lhost.wait(run)
    units = lhost.units(run)
    assert units["/h/net"]["status"] == "ended_normally"
    assert units["/h/net/a"]["status"] == "ended_normally"
    # a later entry without --hold is not held: the hold was for that run only
    run2 = lhost.entry("/h/net")
    assert lhost.wait(run2)["units"][0]["status"] == "ended_normally"


# -- rerun --------------------------------------------------------------------------------


def test_rerun_modes(lhost: Any, tmp_path: Path) -> None:
    fail_b, log = tmp_path / "fail_b", tmp_path / "log"
    fail_b.touch()
    lhost.define(f"""
        group: /rr
        jobnets:
          - name: net
            units:
              - {{name: a, script: 'echo a >> {log}'}}
              - {{name: b, after: [a], script: 'echo b >> {log}; [ ! -e {fail_b} ]'}}
              - {{name: c, after: [b], script: 'echo c >> {log}'}}
              - name: sub
                type: jobnet
                after: [c]
                units:
                  - {{name: d, script: 'echo d >> {log}'}}
              - {{name: rec, after: [b], recovery: true, script: 'echo rec >> {log}'}}
    """)
    run = lhost.entry("/rr/net")
    lhost.wait(run)

    def attempts() -> dict[str, tuple[str, int]]:
        return {
            p.rsplit("/", 1)[-1]: (u["status"], u["attempt"]) for p, u in lhost.units(run).items()
        }

    assert attempts() == {
        "net": ("ended_abnormally", 0),
        "a": ("ended_normally", 1),
        "b": ("ended_abnormally", 1),
        "c": ("not_executed", 0),
        "sub": ("not_executed", 0),
        "d": ("not_executed", 0),
        "rec": ("ended_normally", 1),
    }
    assert log.read_text().split() == ["a", "b", "rec"]

    # default: from the failed unit on (a does not run again)
    fail_b.unlink()
    log.write_text("")
    lhost.run("rerun", "/rr/net")
    lhost.wait(run)
    got = attempts()
    assert got["net"][0] == "ended_normally"
    assert got["a"] == ("ended_normally", 1)
    assert got["b"] == ("ended_normally", 2)
    assert got["c"] == ("ended_normally", 1)
    assert got["d"] == ("ended_normally", 1)
    assert got["rec"][0] == "not_executed"  # b ended normally this time
    assert sorted(log.read_text().split()) == ["b", "c", "d"]

    # --from c: c and what follows it, nothing before
    log.write_text("")
    lhost.run("rerun", "/rr/net", "--from", "/rr/net/c")
    lhost.wait(run)
    got = attempts()
    assert (got["a"][1], got["b"][1], got["c"][1], got["d"][1]) == (1, 2, 2, 2)
    assert got["net"][0] == "ended_normally"
    assert log.read_text().split() == ["c", "d"]

    # --only b: b alone, its successors stay as they were
    log.write_text("")
    lhost.run("rerun", "/rr/net", "--only", "/rr/net/b")
    lhost.wait(run)
    got = attempts()
    assert (got["a"][1], got["b"][1], got["c"][1], got["d"][1]) == (1, 3, 2, 2)
    assert all(s == "ended_normally" for n, (s, _) in got.items() if n != "rec")
    assert log.read_text().split() == ["b"]

    # each attempt got its own run id and its own output
    b = lhost.units(run)["/rr/net/b"]
    assert b["run_id"] and lhost.run("log", b["run_id"]).stdout == ""

    # a run that ended normally has nothing to rerun by default
    done = lhost.run("rerun", "/rr/net", check=False)
    assert done.returncode == 1 and "AJS3-E403" in done.stderr


# -- kill -------------------------------------------------------------------------------


def test_kill_a_running_job(lhost: Any) -> None:
    lhost.define("""
        group: /k
        jobnets:
          - name: net
            units:
              - {name: a, command: [sleep, 300]}
              - {name: b, after: [a], command: [/bin/true]}
              - {name: r, after: [a], recovery: true, command: [/bin/true]}
    """)
    run = lhost.entry("/k/net")
    wait_status(lhost, run, "/k/net/a", "running")
    began = time.monotonic()
    lhost.run("kill", "/k/net/a")
    lhost.wait(run)
    assert time.monotonic() - began < 8
    units = lhost.units(run)
    a = units["/k/net/a"]
    assert a["status"] == "killed" and a["signal"] == 15
    assert group_gone(a["pgid"])
    assert units["/k/net/b"]["status"] == "not_executed"
    assert units["/k/net/r"]["status"] == "ended_normally"
    assert units["/k/net"]["status"] == "ended_abnormally"
    # killing it again: it is not running
    done = lhost.run("kill", "/k/net/a", check=False)
    assert done.returncode == 1 and "AJS3-E403" in done.stderr and "Traceback" not in done.stderr


def test_kill_a_whole_jobnet_run(lhost: Any) -> None:
    lhost.define("""
        group: /k
        jobnets:
          - name: net
            units:
              - {name: a, command: [sleep, 300]}
              - {name: b, script: 'sleep 300 & wait'}
              - {name: c, after: [a], command: [/bin/true]}
              - name: sub
                type: jobnet
                after: [b]
                units:
                  - {name: d, command: [/bin/true]}
              - {name: r, after: [a], recovery: true, command: [/bin/true]}
    """)
    run = lhost.entry("/k/net")
    wait_status(lhost, run, "/k/net/a", "running")
    wait_status(lhost, run, "/k/net/b", "running")
    lhost.run("kill", "/k/net")
    lhost.wait(run)
    units = lhost.units(run)
    got = {p.rsplit("/", 1)[-1]: u["status"] for p, u in units.items()}
    assert got == {
        "net": "killed",
        "a": "killed",
        "b": "killed",
        "c": "interrupted",
        "sub": "interrupted",
        "d": "interrupted",
        "r": "interrupted",
    }
    for name in ("a", "b"):
        assert group_gone(units[f"/k/net/{name}"]["pgid"])
    done = lhost.run("kill", "/k/net", check=False)
    assert done.returncode == 1 and "AJS3-E403" in done.stderr


def test_kill_a_run_waiting_for_its_start_time(lhost: Any) -> None:
    lhost.define("""
        group: /k
        jobnets:
          - name: later
            units:
              - {name: a, command: [/bin/true]}
    """)
    at = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() + 3600))
    run = lhost.entry("/k/later", "--at", at)
    assert status_of(lhost, run, "/k/later") == "wait_start_time"
    lhost.run("kill", "/k/later")
    lhost.wait(run, timeout=10)
    units = lhost.units(run)
    assert units["/k/later"]["status"] == "interrupted"
    assert units["/k/later/a"]["status"] == "interrupted"
    assert units["/k/later/a"]["run_id"] is None


def test_entry_sent_again_with_its_key_registers_once(lhost: Any) -> None:
    """An operator who got AJS3-E314 (no answer) repeats the entry with the same --key:
    the daemon returns the first registration, the jobnet is not registered twice."""
    lhost.define("""
        group: /k
        jobnets:
          - name: net
            units:
              - {name: a, command: [/bin/true]}
    """)
    first = lhost.json("entry", "/k/net", "--hold", "--key", "nightly-2027-01-04")
    again = lhost.json("entry", "/k/net", "--hold", "--key", "nightly-2027-01-04")
    other = lhost.json("entry", "/k/net", "--hold", "--key", "nightly-2027-01-05")
    assert again["run"] == first["run"] and again.get("repeated") is True
    assert other["run"] != first["run"]
    runs = lhost.journal_query("SELECT COUNT(*) FROM jobnet_runs WHERE jobnet='/k/net'")
    assert runs == [(2,)]
