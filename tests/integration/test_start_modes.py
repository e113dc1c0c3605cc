"""Warm and cold starts of a logical host with jobs running (docs/design.md rules 5 and 6)."""

from __future__ import annotations

import os
import time
from typing import Any

from lhost import run_started, wait_for


def alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def pgid_of(lhost: Any, run_id: str) -> int:
    started = run_started(lhost.datadir, run_id, wait=10)
    assert started is not None, f"no start record of {run_id}"
    return int(started["pgid"])


def statuses(lhost: Any, run: int) -> dict[str, str]:
    return {p.rsplit("/", 1)[-1]: u["status"] for p, u in lhost.units(run).items()}


def test_warm_start_applies_each_jobs_failover_policy(lhost: Any) -> None:
    lhost.define("""
        group: /m
        jobnets:
          - name: net
            units:
              - {name: f, command: [sleep, 300], on_failover: fail}
              - {name: f_next, after: [f], command: [/bin/true]}
              - {name: f_rec, after: [f], recovery: true, command: [/bin/true]}
              - name: r
                on_failover: rerun
                script: '[ "$AJS3_ATTEMPT" = 1 ] && exec sleep 300; exit 0'
              - {name: r_next, after: [r], command: [/bin/true]}
              - {name: u, command: [sleep, 300], on_failover: unknown}
              - {name: u_next, after: [u], command: [/bin/true]}
    """)
    run = lhost.entry("/m/net")
    wait_for(lambda: all(statuses(lhost, run)[n] == "running" for n in "fru"), message="start")
    first = {n: lhost.units(run)[f"/m/net/{n}"] for n in "fru"}
    groups = {n: pgid_of(lhost, u["run_id"]) for n, u in first.items()}

    lhost.stop(jobs="leave")
    assert lhost.run("service", "status", check=False).returncode == 3
    # left running: the jobs outlive the daemon
    assert all(alive(g) for g in groups.values())
    assert statuses(lhost, run)["f"] == "running"

    lhost.start(mode="warm")
    # the old processes are gone, whatever the policy
    for name, pgid in groups.items():
        assert wait_for(lambda g=pgid: not alive(g), 5, f"group of {name}")
    wait_for(lambda: statuses(lhost, run)["r_next"] == "ended_normally", message="rerun")
    units = lhost.units(run)
    got = statuses(lhost, run)
    # fail: killed, and the normal rules follow (successor skipped, recovery runs)
    assert got["f"] == "killed" and units["/m/net/f"]["attempt"] == 1
    assert "policy fail" in units["/m/net/f"]["reason"]
    assert got["f_rec"] == "ended_normally"
    # rerun: started again as attempt 2 with a new run id
    r = units["/m/net/r"]
    assert (r["status"], r["attempt"]) == ("ended_normally", 2)
    assert r["run_id"] != first["r"]["run_id"]
    assert r["epoch"] == first["r"]["epoch"] + 1
    # unknown: waits for an operator, and so does everything after it
    assert got["u"] == "unknown"
    time.sleep(0.3)
    got = statuses(lhost, run)
    assert got["u_next"] == "waiting" and got["net"] == "running"
    why = lhost.json("show", "--why", "/m/net/u_next")
    assert any(not c["passed"] and "u" in c["reason"] for c in why["checks"])
    # release without saying how it ended is refused
    done = lhost.run("release", "/m/net/u", check=False)
    assert done.returncode == 1 and "AJS3-E406" in done.stderr

    lhost.run("release", "/m/net/u", "--as", "normal")
    final = lhost.wait(run)
    got = statuses(lhost, run)
    assert got["u"] == "ended_normally" and got["u_next"] == "ended_normally"
    assert got["f_next"] == "not_executed"
    assert lhost.units(run)["/m/net/u"]["attempt"] == 1  # decided, not run again
    assert final["units"][0]["status"] == "ended_abnormally"  # f was killed


def test_cold_start_forgets_runs_but_keeps_definitions(lhost: Any) -> None:
    lhost.define("""
        group: /m
        jobnets:
          - name: quick
            units: [{name: a, command: [/bin/true]}]
          - name: long
            units:
              - {name: s, command: [sleep, 300]}
              - {name: t, after: [s], command: [/bin/true]}
    """)
    done_run = lhost.entry("/m/quick")
    lhost.wait(done_run)
    run = lhost.entry("/m/long")
    wait_for(lambda: statuses(lhost, run)["s"] == "running")
    pgid = pgid_of(lhost, lhost.units(run)["/m/long/s"]["run_id"])
    listing = lhost.json("show", "--all")
    assert {r["run"] for r in listing["runs"]} == {done_run, run}

    lhost.stop(jobs="leave")
    assert alive(pgid)
    lhost.start(mode="cold")
    # the job that was left running does not run on unobserved
    assert wait_for(lambda: not alive(pgid), 5, "cold start kills what ran")
    listing = lhost.json("show", "--all")
    assert listing["runs"] == []
    assert [j["jobnet"] for j in listing["jobnets"]] == ["/m/long", "/m/quick"]
    assert all(j["latest"] is None for j in listing["jobnets"])
    done = lhost.run("show", "--run", str(run), check=False)
    assert done.returncode == 1 and "AJS3-E402" in done.stderr
    time.sleep(0.3)  # nothing of the forgotten run starts again
    assert lhost.json("show")["runs"] == []
    # the definitions are still there and run
    again = lhost.entry("/m/quick")
    assert lhost.wait(again)["units"][0]["status"] == "ended_normally"


def test_a_claim_without_its_start_record_is_started_once_again(lhost: Any) -> None:
    """A claim is durable in its server's claim log before the job runs; the job's
    start record is a line of the server's record log, not fsynced (ADR 0039). A claim
    whose start record is gone, from a server of this node and boot that is gone too,
    is a job that never ran: the next start runs it again (attempt 2) instead of
    failing to start or holding it in doubt."""
    lhost.define("""
        group: /m
        jobnets:
          - name: net
            units:
              - {name: s, command: [sleep, 300]}
    """)
    run = lhost.entry("/m/net")
    wait_for(lambda: statuses(lhost, run)["s"] == "running", message="start")
    first = lhost.units(run)["/m/net/s"]
    assert run_started(lhost.datadir, first["run_id"], wait=10) is not None
    lhost.crash()  # daemon, supervisor and job killed (SIGSTOP first)
    # as if the page cache had lost the job's start record (the claim stays)
    for log in (lhost.datadir / "claims").glob("*.records"):
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(x for x in lines if first["run_id"].encode() not in x))
    assert run_started(lhost.datadir, first["run_id"], wait=0) is None
    lhost.start()
    wait_for(lambda: lhost.units(run)["/m/net/s"]["attempt"] == 2, message="started again")
    again = lhost.units(run)["/m/net/s"]
    assert again["run_id"] != first["run_id"] and again["status"] == "running"
    lhost.run("kill", "/m/net")
