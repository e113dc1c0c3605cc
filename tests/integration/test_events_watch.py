"""File-watch jobs and start conditions with a real daemon: a file that arrives starts
a run once, a size-stable wait, exactly once through a kill -9 and a restart, the
count limit and the valid range (ADR 0023).

Nothing here asserts how fast a watch reacted: that something did NOT fire is shown
by a later sentinel file firing, in order, with nothing between.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lhost import LogicalHost, wait_for


def condition_defs(
    inbox: Path, out: Path, *, extra: str = "", stable: str = "0", on: str = "created"
) -> str:
    return f"""
        group: /ev
        jobnets:
          - name: intake
            start_condition:
              watches:
                - path: {inbox}/*.csv
                  condition: {on}
                  stable_for: {stable}
{extra}
            units:
              - name: take
                command: [/bin/sh, -c, 'echo "$AJS3_FILE_EVENT $1" >> {out}', sh,
                          "${{AJS3_FILE_PATH}}"]
    """


def runs(host: LogicalHost) -> list[int]:
    return [int(r[0]) for r in host.journal_query("SELECT id FROM jobnet_runs ORDER BY id")]


def values(host: LogicalHost, run: int) -> dict[str, str]:
    return {v["name"]: v["value"] for v in host.show(run=run)["vars"]}


def wait_runs(host: LogicalHost, count: int, timeout: float = 60) -> list[int]:
    found: list[int] = wait_for(
        lambda: (r := runs(host)) and len(r) >= count and r,
        timeout,
        f"{count} run(s) registered",
    )
    for run in found:
        host.wait(run, timeout)
    return found


def watch_began(host: LogicalHost, key_prefix: str = "cond:") -> None:
    wait_for(
        lambda: host.journal_query(
            "SELECT count(*) FROM watches WHERE watch LIKE ?", (key_prefix + "%",)
        )[0][0],
        60,
        "the watch to begin",
    )


def write(path: Path, text: str = "x\n") -> None:
    tmp = path.with_name("." + path.name + ".part")  # not matching *.csv until renamed
    tmp.write_text(text)
    tmp.rename(path)


def test_a_created_file_starts_the_jobnet_once(lhost: LogicalHost, tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    (inbox / "old.csv").write_text("there before the watch\n")
    lhost.define(condition_defs(inbox, out))
    watch_began(lhost)
    write(inbox / "a.csv")
    (first,) = wait_runs(lhost, 1)
    assert values(lhost, first) == {
        "AJS3_FILE_PATH": str(inbox / "a.csv"),
        "AJS3_FILE_EVENT": "created",
    }
    # neither a change of a.csv, nor a file not matching, nor the old file makes a run:
    # the sentinel's run comes next
    with (inbox / "a.csv").open("a") as f:
        f.write("more\n")
    (inbox / "note.txt").write_text("not a csv\n")
    write(inbox / "z-sentinel.csv")
    first_two = wait_runs(lhost, 2)
    assert len(first_two) == 2
    assert values(lhost, first_two[1])["AJS3_FILE_PATH"] == str(inbox / "z-sentinel.csv")
    assert out.read_text().splitlines() == [
        f"created {inbox / 'a.csv'}",
        f"created {inbox / 'z-sentinel.csv'}",
    ]
    assert runs(lhost) == first_two


def test_the_size_stable_wait_fires_once_the_file_holds_still(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(condition_defs(inbox, out, stable="4s"))
    watch_began(lhost)
    target = inbox / "big.csv"
    gaps: list[float] = []
    last = time.monotonic()
    with target.open("w") as f:
        for _ in range(15):
            f.write("chunk " * 100 + "\n")
            f.flush()
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            time.sleep(0.2)
    final = target.stat().st_size
    (run,) = wait_runs(lhost, 1)
    recorded = lhost.journal_query(
        "SELECT size, fired, run FROM watch_files WHERE path=?", (str(target),)
    )
    assert recorded and recorded[0][1:] == (1, run)
    if max(gaps) < 4.0:  # the writer never paused as long as the wait: one event, whole file
        assert recorded[0][0] == final, (recorded, final, gaps)
    assert len(runs(lhost)) == 1


def test_a_file_watch_job_waits_and_hands_the_path_on(lhost: LogicalHost, tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(
        f"""
        group: /ev
        jobnets:
          - name: net
            units:
              - name: wait
                type: filewatch
                watch:
                  path: "{inbox}/data-??.txt"
                  condition: [created, changed]
                  stable_for: 1s
              - name: use
                after: [wait]
                command: [/bin/sh, -c, 'echo "$1 $AJS3_FILE_EVENT" > {out}', sh,
                          "${{AJS3_FILE_PATH}}"]
        """
    )
    run = lhost.entry("/ev/net")
    wait_for(
        lambda: lhost.units(run)["/ev/net/wait"]["status"] == "running", 60, "the watch to begin"
    )
    watch_began(lhost, "unit:")
    write(inbox / "data-01.txt", "payload\n")
    shown = lhost.wait(run)
    units = {u["path"]: u for u in shown["units"]}
    assert units["/ev/net/wait"]["status"] == "ended_normally"
    assert units["/ev/net"]["status"] == "ended_normally"
    assert out.read_text() == f"{inbox / 'data-01.txt'} created\n"
    # the watch of an ended job is gone from the journal
    assert lhost.journal_query("SELECT count(*) FROM watches WHERE watch LIKE 'unit:%'")[0][0] == 0


def test_killing_the_run_ends_a_watching_job(lhost: LogicalHost, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    lhost.define(
        f"""
        group: /ev
        jobnets:
          - name: net
            units:
              - name: wait
                type: filewatch
                watch: {{path: "{inbox}/never", condition: created}}
        """
    )
    run = lhost.entry("/ev/net")
    wait_for(lambda: lhost.units(run)["/ev/net/wait"]["status"] == "running", 60, "watching")
    lhost.run("kill", "/ev/net", "--run", str(run))
    units = {u["path"]: u for u in lhost.wait(run)["units"]}
    assert units["/ev/net/wait"]["status"] == "killed"


def test_kill_of_a_watching_job_ends_it_and_its_jobnet_goes_on(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    lhost.define(
        f"""
        group: /ev
        jobnets:
          - name: net
            units:
              - name: wait
                type: filewatch
                watch: {{path: "{inbox}/never", condition: created}}
              - name: cleanup
                recovery: true
                after: [wait]
                command: [/bin/true]
        """
    )
    run = lhost.entry("/ev/net")
    wait_for(lambda: lhost.units(run)["/ev/net/wait"]["status"] == "running", 60, "watching")
    lhost.run("kill", "/ev/net/wait", "--run", str(run))
    units = {u["path"]: u for u in lhost.wait(run)["units"]}
    assert units["/ev/net/wait"]["status"] == "killed"
    assert units["/ev/net/cleanup"]["status"] == "ended_normally"


def test_a_watching_job_sees_a_file_that_arrived_while_the_daemon_was_dead(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(
        f"""
        group: /ev
        jobnets:
          - name: net
            units:
              - name: wait
                type: filewatch
                watch: {{path: "{inbox}/*.dat"}}
              - name: use
                after: [wait]
                command: [/bin/sh, -c, 'echo "$1" >> {out}', sh, "${{AJS3_FILE_PATH}}"]
        """
    )
    run = lhost.entry("/ev/net")
    watch_began(lhost, "unit:")
    lhost.crash()
    write(inbox / "late.dat")
    lhost.start("hot")
    units = {u["path"]: u for u in lhost.wait(run)["units"]}
    assert units["/ev/net/use"]["status"] == "ended_normally"
    assert out.read_text() == f"{inbox / 'late.dat'}\n"


def test_a_file_arriving_while_the_daemon_is_dead_fires_exactly_once(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(condition_defs(inbox, out))
    watch_began(lhost)
    write(inbox / "before.csv")
    wait_runs(lhost, 1)
    lhost.crash()  # SIGSTOP, then kill -9: nothing records anything more
    write(inbox / "while-down.csv")
    lhost.start("hot")
    got = wait_runs(lhost, 2)
    assert values(lhost, got[1])["AJS3_FILE_PATH"] == str(inbox / "while-down.csv")
    write(inbox / "z-sentinel.csv")
    got = wait_runs(lhost, 3)
    assert [values(lhost, r)["AJS3_FILE_PATH"] for r in got] == [
        str(inbox / "before.csv"),
        str(inbox / "while-down.csv"),
        str(inbox / "z-sentinel.csv"),
    ]


def test_a_file_that_fired_does_not_fire_again_after_a_restart(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(condition_defs(inbox, out))
    watch_began(lhost)
    write(inbox / "once.csv")
    wait_runs(lhost, 1)
    lhost.crash()
    lhost.start("hot")
    lhost.stop()
    lhost.start("hot")
    write(inbox / "z-sentinel.csv")
    got = wait_runs(lhost, 2)
    assert [values(lhost, r)["AJS3_FILE_PATH"] for r in got] == [
        str(inbox / "once.csv"),
        str(inbox / "z-sentinel.csv"),
    ]


def test_the_count_limit_is_honoured(lhost: LogicalHost, tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(condition_defs(inbox, out, extra="              limit: 2"))
    watch_began(lhost)
    for name in ("1.csv", "2.csv", "3.csv"):
        write(inbox / name)
    seen: list[Any] = wait_for(
        lambda: (
            (rows := lhost.journal_query("SELECT path, fired FROM watch_files ORDER BY path"))
            and len(rows) == 3
            and rows
        ),
        60,
        "three files taken into account",
    )
    assert [fired for _, fired in seen] == [1, 1, 0]
    got = runs(lhost)
    assert len(got) == 2
    ids = set()
    for run in got:
        units = lhost.wait(run)["units"]
        # registered in the same step, with the same scheduled time: each job still
        # has a run id (and a job directory) of its own, and ends on its own
        assert [u["status"] for u in units] == ["ended_normally", "ended_normally"], units
        ids.add(units[1]["run_id"])
    assert len(ids) == 2


def test_outside_the_valid_range_nothing_starts(lhost: LogicalHost, tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    lhost.define(
        condition_defs(inbox, out, extra="              from: '2999-01-01T00:00:00+00:00'")
    )
    watch_began(lhost)
    write(inbox / "early.csv")
    wait_for(
        lambda: lhost.journal_query("SELECT fired FROM watch_files") == [(0,)],
        60,
        "the file taken into account",
    )
    assert runs(lhost) == []


def test_events_of_a_suspended_jobnet_wait_for_its_resume(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    other = f"""
          - name: other
            start_condition:
              watches: [{{path: "{inbox}/*.csv"}}]
            units:
              - name: j
                command: [/bin/true]
    """
    lhost.define(condition_defs(inbox, out) + other)
    wait_for(lambda: lhost.journal_query("SELECT count(*) FROM watches")[0][0] == 2, 60, "watches")
    lhost.run("suspend", "/ev/intake")
    write(inbox / "held.csv")
    # the jobnet not suspended started: the daemon has looked at held.csv for both
    wait_for(
        lambda: (
            lhost.journal_query("SELECT count(*) FROM jobnet_runs WHERE jobnet='/ev/other'")
            == [(1,)]
        ),
        60,
        "the run of /ev/other",
    )
    assert lhost.journal_query("SELECT count(*) FROM jobnet_runs WHERE jobnet='/ev/intake'") == [
        (0,)
    ]
    lhost.run("resume", "/ev/intake")
    found = wait_for(
        lambda: lhost.journal_query("SELECT id FROM jobnet_runs WHERE jobnet='/ev/intake'"),
        120,
        "the run of /ev/intake after resume",
    )
    assert len(found) == 1
    assert values(lhost, int(found[0][0]))["AJS3_FILE_PATH"] == str(inbox / "held.csv")
