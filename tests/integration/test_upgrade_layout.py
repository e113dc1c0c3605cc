"""An upgrade with jobs running: runs started by the server of a daemon from before
ADR 0039 (a directory per run with started.json and status.json) are finished by a
daemon that keeps its own runs in record logs.

The older daemon is this one with its Runner built without ``records``: the only
thing slice 3 of ADR 0039 changed in the daemon. Its server is the real one, run
without ``--records`` as before. The hook is a ``sitecustomize`` module on the
daemon's PYTHONPATH (a job gets a clean environment, so none of it reaches a job).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from lhost import run_ended, run_started, wait_for

OLD_DAEMON = """
    import ajs3.engine.runner as _runner

    _init = _runner.Runner.__init__

    def _files_only(self, datadir, settings, *, claim_log=False, records=False):
        _init(self, datadir, settings, claim_log=claim_log, records=False)

    _runner.Runner.__init__ = _files_only
"""


def old_daemon_env(tmp_path: Path) -> dict[str, str]:
    hook = tmp_path / "old-daemon"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(OLD_DAEMON))
    return {"PYTHONPATH": str(hook)}


def test_runs_of_the_old_layout_are_finished_after_the_upgrade(
    make_lhost: Any, tmp_path: Path
) -> None:
    lhost = make_lhost("lh1")
    marks = tmp_path / "marks"
    marks.mkdir()
    waits = "while [ ! -e {m}/go-{n} ]; do sleep 0.05; done"
    lhost.define(f"""
        group: /u
        jobnets:
          - name: net
            units:
              - name: a
                abnormal_threshold: 10
                script: 'echo a >> {marks}/ran; {waits.format(m=marks, n="a")}; echo out-a; exit 4'
              - name: b
                abnormal_threshold: 10
                script: 'echo b >> {marks}/ran; {waits.format(m=marks, n="b")}; echo out-b; exit 5'
              - name: c
                after: [a, b]
                script: 'echo c >> {marks}/ran'
    """)
    lhost.start(env=old_daemon_env(tmp_path))
    run = lhost.entry("/u/net")

    def units() -> dict[str, dict[str, Any]]:
        return {p.rsplit("/", 1)[-1]: u for p, u in lhost.units(run).items()}

    wait_for(lambda: units()["a"]["status"] == units()["b"]["status"] == "running", 30, "start")
    first: dict[str, str] = {name: units()[name]["run_id"] for name in "ab"}
    # the old layout is in use (else this test proves nothing)
    old_files = [lhost.datadir / "jobs" / run_id / "started.json" for run_id in first.values()]
    wait_for(lambda: all(path.exists() for path in old_files), 10, "started.json")

    lhost.stop(jobs="leave")
    # a ends while no daemon runs: its old server writes its status.json
    (marks / "go-a").touch()
    wait_for(lambda: (lhost.datadir / "jobs" / first["a"] / "status.json").exists(), 30, "a")

    lhost.start()  # the upgraded daemon: record logs
    wait_for(lambda: units()["a"]["status"] == "ended_normally", 30, "a read after the start")
    assert units()["b"]["status"] == "running"
    (marks / "go-b").touch()  # b ends under the old server, watched by the new daemon
    final = lhost.wait(run, timeout=60)
    assert final["units"][0]["status"] == "ended_normally", final

    got = units()
    assert (got["a"]["exit_code"], got["b"]["exit_code"], got["c"]["exit_code"]) == (4, 5, 0)
    assert all(got[n]["attempt"] == 1 for n in "abc"), got
    assert sorted((marks / "ran").read_text().split()) == ["a", "b", "c"]  # nothing twice
    assert lhost.run("log", first["a"]).stdout.strip() == "out-a"
    assert lhost.run("log", first["b"]).stdout.strip() == "out-b"
    # c ran under the new daemon: its records are lines of the record logs, no files
    c_run = got["c"]["run_id"]
    assert not (lhost.datadir / "jobs" / c_run / "started.json").exists()
    started, ended = run_started(lhost.datadir, c_run, wait=0), run_ended(lhost.datadir, c_run)
    assert started is not None and ended is not None and ended["exit_code"] == 0, (started, ended)
