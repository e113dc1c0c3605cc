"""Retention with a real daemon: generations kept, what is never purged, a purge cut
short by kill -9, the output cap (docs/retention.md)."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from lhost import LogicalHost, run_ended, wait_for

from bench import history


def runs_of(host: LogicalHost, jobnet: str) -> list[int]:
    return [
        r[0]
        for r in host.journal_query(
            "SELECT id FROM jobnet_runs WHERE jobnet=? ORDER BY id", (jobnet,)
        )
    ]


def run_ids(host: LogicalHost, run: int) -> list[str]:
    return [
        r[0]
        for r in host.journal_query(
            "SELECT run_id FROM unit_runs WHERE jobnet_run=? AND run_id IS NOT NULL", (run,)
        )
    ]


def purge(host: LogicalHost, *extra: str) -> Any:
    return host.json("purge", *extra)


NETS = """
    group: /k
    jobnets:
      - name: three
        keep: {runs: 3}
        units:
          - {name: a, command: [/bin/echo, hello]}
          - {name: b, command: [/bin/echo, bye], after: [a]}
      - name: deflt
        units:
          - {name: a, command: [/bin/true]}
"""


def test_keeps_exactly_the_configured_generations(make_lhost: Any) -> None:
    host = make_lhost("keep1")
    host.write_settings("keep: {runs: 2}\npurge_interval: 1\n")
    host.start()
    host.define(NETS)
    made, dirs = [], {}
    for _ in range(6):
        run = host.entry("/k/three")
        host.wait(run)
        made.append(run)
        dirs[run] = run_ids(host, run)  # before the purge of every second takes it
    for _ in range(4):
        host.wait(host.entry("/k/deflt"))
    old_dirs = [d for r in made[:3] for d in dirs[r]]
    assert len(old_dirs) == 6
    # the background purge (every second here) keeps the 3 newest, and the default 2
    wait_for(lambda: len(runs_of(host, "/k/three")) == 3, timeout=60, message="3 kept")
    wait_for(lambda: len(runs_of(host, "/k/deflt")) == 2, timeout=60, message="2 kept")
    assert runs_of(host, "/k/three") == made[3:]
    assert not any((host.datadir / "jobs" / d).exists() for d in old_dirs)
    assert all((host.datadir / "vars" / f"{d}.out").is_file() for d in dirs[made[-1]])
    assert not any((host.datadir / "vars" / f"{d}.out").exists() for d in old_dirs)
    kept = [d for r in made[3:] for d in run_ids(host, r)]
    # a job's directory holds its output; its end is in the record logs (ADR 0039)
    assert all((host.datadir / "jobs" / d / "stdout").is_file() for d in kept)
    assert all(run_ended(host.datadir, d) is not None for d in kept)
    orphans = (
        host.journal_query(
            "SELECT count(*) FROM unit_runs u LEFT JOIN jobnet_runs r ON r.id = u.jobnet_run"
            " WHERE r.id IS NULL"
        )[0][0]
        + host.journal_query(
            "SELECT count(*) FROM events e LEFT JOIN unit_runs u ON u.id = e.unit_run"
            " WHERE u.id IS NULL"
        )[0][0]
    )
    assert orphans == 0
    # on demand: nothing more to do, and the dry run says so
    plan = purge(host, "--dry-run")
    assert plan["total"]["jobnet_runs"] == 0 and plan["marked"] == 0
    done = purge(host)
    assert done["removed"]["jobnet_runs"] == 0
    audit = host.journal_query("SELECT op, code FROM audit WHERE op='purge'")
    assert audit and all(code == "ok" for _, code in audit)


def test_never_touches_active_held_or_in_doubt_runs(make_lhost: Any, tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    host = make_lhost("keep2")
    host.write_settings("purge_interval: 3600\n")  # only on demand in this test
    host.start()
    host.define(f"""
        group: /k
        jobnets:
          - name: net
            keep: {{runs: 1}}
            units:
              - name: j
                on_failover: unknown
                script: 'echo ran; if [ -e {hang} ]; then exec sleep 600; fi'
    """)
    ended_before = [host.entry("/k/net") for _ in range(2)]
    for run in ended_before:
        host.wait(run)
    held = host.entry("/k/net", "--hold")
    hang.touch()
    doubt = host.entry("/k/net")
    wait_for(lambda: host.units(doubt)["/k/net/j"]["status"] == "running", message="running")
    host.crash()  # daemon, supervisor and job killed (SIGSTOP first): the end is in doubt
    host.start()
    wait_for(lambda: host.units(doubt)["/k/net/j"]["status"] == "unknown", message="in doubt")
    active = host.entry("/k/net")
    wait_for(lambda: host.units(active)["/k/net/j"]["status"] == "running", message="active")
    hang.unlink()
    ended_after = [host.entry("/k/net") for _ in range(2)]
    for run in ended_after:
        host.wait(run)
    # the round at the restart took the first ended run already (keep 1)
    ended = [r for r in runs_of(host, "/k/net") if r in ended_before + ended_after]
    assert ended == [ended_before[-1], *ended_after]
    plan = purge(host, "--dry-run")
    assert plan["total"]["jobnet_runs"] == 2  # the one before, the first after
    assert plan["jobnets"]["/k/net"]["runs"] == 2 and plan["total"]["job_dirs"] == 2
    assert plan["total"]["bytes"] > 0  # the output of each
    done = purge(host)
    assert done["removed"] == plan["total"]
    left = runs_of(host, "/k/net")
    assert left == [held, doubt, active, ended_after[-1]]
    assert host.units(held)["/k/net"]["status"] == "held"
    assert host.units(doubt)["/k/net/j"]["status"] == "unknown"
    assert host.units(active)["/k/net/j"]["status"] == "running"
    for run in (doubt, active):
        for rid in run_ids(host, run):
            assert (host.datadir / "jobs" / rid / "stdout").is_file()
    host.run("kill", "/k/net", "--run", str(active))
    host.wait(active)


def _history_host(make_lhost: Any, name: str, job_runs: int) -> LogicalHost:
    """A stopped logical host with ``job_runs`` past job runs and their job directories
    (a few bytes of stdout each), written directly (bench/history.py)."""
    host = make_lhost(name)
    host.write_settings("keep: {runs: 5}\npurge_interval: 3600\n")
    (host.datadir / "definitions" / "hist.yaml").write_text(history.definitions_yaml())
    host.run("define")
    history.add_history(host.datadir / "journal.db", job_runs)
    jobs = host.datadir / "jobs"
    jobs.mkdir(mode=0o750, exist_ok=True)
    for (rid,) in host.journal_query("SELECT run_id FROM unit_runs WHERE run_id IS NOT NULL"):
        d = jobs / rid
        d.mkdir(mode=0o750)
        (d / "stdout").write_bytes(b"x" * 100)
    return host


def _true_to_files(host: LogicalHost) -> None:
    """Every run left unmarked has all its job directories (only a marked run may be
    half removed); read with the daemon stopped (SIGSTOP), if one runs."""
    pid = host.daemon_pid()
    if pid is not None and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGSTOP)
        try:
            _check_files(host)
        finally:
            os.kill(pid, signal.SIGCONT)
    else:
        _check_files(host)


def _check_files(host: LogicalHost) -> None:
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    try:
        rows = conn.execute(
            "SELECT u.run_id FROM unit_runs u WHERE u.run_id IS NOT NULL AND u.jobnet_run"
            " NOT IN (SELECT jobnet_run FROM purging)"
        ).fetchall()
    finally:
        conn.close()
    missing = [r for (r,) in rows if not (host.datadir / "jobs" / r).is_dir()]
    assert not missing, f"{len(missing)} runs in the journal lost their files: {missing[:3]}"


def test_a_purge_cut_short_by_kill_9_is_finished_by_the_next_start(make_lhost: Any) -> None:
    host = _history_host(make_lhost, "keep3", 8_000)
    before = host.journal_query("SELECT count(*) FROM jobnet_runs")[0][0]
    # the state a kill -9 between the files and the rows leaves: marked, half removed
    marked = [r for (r,) in host.journal_query("SELECT id FROM jobnet_runs ORDER BY id LIMIT 3")]
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    conn.executemany("INSERT INTO purging(jobnet_run, since) VALUES (?, 0)", [(r,) for r in marked])
    conn.commit()
    conn.close()
    for rid in run_ids(host, marked[0])[:4]:
        for f in (host.datadir / "jobs" / rid).iterdir():
            f.unlink()
        (host.datadir / "jobs" / rid).rmdir()
    host.start()
    # finished at start, before the daemon said it was ready (the round that starts
    # then may have marked others already)
    assert all(not runs_of_id(host, r) for r in marked)
    _true_to_files(host)
    # a real kill -9 in the middle of a long purge
    answer = host.run("purge", "--timeout", "0.5", check=False)
    assert answer.returncode != 0 or "removed" in answer.stdout
    wait_for(
        lambda: host.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] < before - 50,
        timeout=60,
        message="the purge under way",
    )
    pid = host.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), message="daemon gone")
    left = host.journal_query("SELECT count(*) FROM jobnet_runs")[0][0]
    assert 10 * 5 < left < before  # cut short
    _true_to_files(host)
    cut = [r for (r,) in host.journal_query("SELECT jobnet_run FROM purging")]
    host.start()
    assert all(not runs_of_id(host, r) for r in cut)
    done = purge(host)
    assert host.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == history.JOBNETS * 5
    assert done["round"] >= 1
    _true_to_files(host)
    kept = {r for (r,) in host.journal_query("SELECT run_id FROM unit_runs WHERE run_id NOT NULL")}
    assert {d.name for d in (host.datadir / "jobs").iterdir()} == kept


def runs_of_id(host: LogicalHost, run: int) -> list[tuple[Any, ...]]:
    return host.journal_query("SELECT id FROM jobnet_runs WHERE id=?", (run,))


def test_output_is_cut_at_the_limit_with_a_marker(make_lhost: Any) -> None:
    host = make_lhost("cap")
    host.write_settings("output_limit: 4096\n")
    host.start()
    host.define("""
        group: /o
        jobnets:
          - name: net
            units:
              - name: chatty
                script: 'head -c 100000 /dev/zero | tr "\\0" x; echo err >&2; exit 3'
                abnormal_threshold: 5
              - name: own
                output_limit: 2048
                script: 'seq 1 100000; seq 1 100000 >&2'
              - name: quiet
                script: 'echo small'
    """)
    run = host.entry("/o/net")
    host.wait(run)
    units = host.units(run)
    assert units["/o/net/chatty"]["exit_code"] == 3  # the job ran to its end
    assert units["/o/net/own"]["status"] == "ended_normally"

    def out(unit: str, name: str = "stdout") -> bytes:
        (rid,) = host.journal_query(
            "SELECT run_id FROM unit_runs WHERE jobnet_run=? AND path=?", (run, unit)
        )[0]
        return (host.datadir / "jobs" / rid / name).read_bytes()

    chatty = out("/o/net/chatty")
    assert chatty.startswith(b"x" * 4096)
    assert chatty[4096:].startswith(b"\n[ajs3: output cut here: more than 4096 bytes")
    assert chatty.count(b"x") == 4096 and chatty.endswith(b"]\n")
    assert out("/o/net/chatty", "stderr") == b"err\n"
    own = out("/o/net/own")
    assert len(own.split(b"\n[ajs3: output cut")[0]) == 2048
    assert b"more than 2048 bytes" in out("/o/net/own", "stderr")
    assert out("/o/net/quiet") == b"small\n"
    log = host.run("log", "/o/net/chatty").stdout
    assert "output cut here" in log


def test_bad_retention_input_is_refused_and_nothing_applied(make_lhost: Any) -> None:
    host = make_lhost("bad")
    host.start()
    host.define(NETS)
    version = host.journal_query("SELECT max(version) FROM definitions")[0][0]
    for bad in ("{runs: 1000}", "{runs: 0}", "{days: soon}", "3", "{runs: 2, weeks: 1}"):
        (host.datadir / "definitions" / "defs.yaml").write_text(
            f"group: /b\njobnets:\n  - name: n\n    keep: {bad}\n"
            "    units:\n      - {name: a, command: [/bin/true]}\n"
        )
        done = host.run("define", check=False)
        assert done.returncode != 0
        assert "defs.yaml:4: AJS3-E10" in done.stderr and "keep" in done.stderr, done.stderr
    assert host.journal_query("SELECT max(version) FROM definitions")[0][0] == version
    host.stop()
    host.write_settings("keep: {runs: 1000}\n")
    done = host.run("service", "start", "--timeout", "30", check=False)
    assert done.returncode != 0 and "AJS3-E206" in done.stderr and "keep" in done.stderr
