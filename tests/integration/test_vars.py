"""Values for runs: `entry --var`, AJS3_VARS_OUT between jobs, ${NAME} in command
arguments; journaled, so a rerun and the next daemon see the same ones (a real daemon)."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from lhost import LogicalHost, unprivileged_user, wait_for

from ajs3.errors import AjsError, Code
from ajs3.service.client import Client


def defs(out: Path, extra: str = "") -> str:
    return f"""
        group: /v
        jobnets:
          - name: net
            units:
              - name: first
                command: [/bin/sh, -c, 'printf "%s|%s|%s\\n" "$DAY" "$1" "$2" > {out}/first;
                          {extra}', sh, "${{DAY}}-x", "$${{DAY}}"]
              - name: second
                after: [first]
                command: [/bin/sh, -c, 'printf "%s|%s\\n" "$TOKEN" "$1" > {out}/second',
                          sh, "${{TOKEN}}"]
    """


def runs_of(host: LogicalHost) -> int:
    return int(host.journal_query("SELECT count(*) FROM jobnet_runs")[0][0])


def test_entry_values_reach_the_environment_and_the_arguments(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    lhost.define(defs(tmp_path, "echo TOKEN=from-first >> $AJS3_VARS_OUT"))
    run = lhost.entry("/v/net", "--var", "DAY=2027-01-04", "--var", "UNUSED=a b=c")
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    # $DAY from the environment, ${DAY} replaced in an argument, $${DAY} a literal ${DAY}
    assert (tmp_path / "first").read_text() == "2027-01-04|2027-01-04-x|${DAY}\n"
    # the value first handed on reaches second, in its environment and its arguments
    assert (tmp_path / "second").read_text() == "from-first|from-first\n"
    shown = {v["name"]: v for v in lhost.show(run=run)["vars"]}
    assert shown["DAY"]["value"] == "2027-01-04" and shown["DAY"]["source"] == ""
    assert shown["UNUSED"]["value"] == "a b=c"
    assert shown["TOKEN"] == {**shown["TOKEN"], "value": "from-first", "source": "/v/net/first"}
    text = lhost.run("show", "/v/net", "--run", str(run)).stdout
    assert "value TOKEN=from-first  (from /v/net/first)" in text


def test_a_rerun_sees_the_same_values(lhost: LogicalHost, tmp_path: Path) -> None:
    lhost.define(defs(tmp_path, "echo TOKEN=t-$DAY >> $AJS3_VARS_OUT"))
    run = lhost.entry("/v/net", "--var", "DAY=mon")
    lhost.wait(run)
    (tmp_path / "second").unlink()
    lhost.run("rerun", "/v/net", "--run", str(run), "--only", "/v/net/second")
    wait_for(lambda: (tmp_path / "second").exists(), 20, "second to run again")
    lhost.wait(run)
    assert (tmp_path / "second").read_text() == "t-mon|t-mon\n"


def test_bad_names_are_refused_with_e407_and_nothing_is_registered(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    lhost.define(defs(tmp_path))
    before = runs_of(lhost)
    for bad in ("PATH=/tmp", "lower=x", "AJS3_RUN_ID=x", "LD_PRELOAD=/x.so", "NOEQUALS", "1A=x"):
        done = lhost.run("entry", "/v/net", "--var", "DAY=ok", "--var", bad, check=False)
        assert done.returncode != 0, bad
        assert "AJS3-E407" in done.stderr, (bad, done.stderr)
    big = lhost.run("entry", "/v/net", "--var", "DAY=" + "x" * 5000, check=False)
    assert big.returncode != 0 and "AJS3-E407" in big.stderr
    # the daemon checks too (a client other than the ajs3 command), and audits the refusal
    c = Client(lhost.rundir / "control.sock")
    try:
        c.entry("/v/net", vars=["DAY=ok", "HOME=/root", "bad-name=1"])
    except AjsError as exc:
        assert exc.code is Code.BAD_VARIABLE
        assert "HOME" in exc.message and "bad-name" in exc.message  # every problem at once
    else:
        raise AssertionError("the daemon registered a run with bad values")
    assert runs_of(lhost) == before
    assert lhost.journal_query("SELECT count(*) FROM run_vars")[0][0] == 0
    codes = [r[0] for r in lhost.journal_query("SELECT code FROM audit WHERE op='entry'")]
    assert codes == [Code.BAD_VARIABLE.value]


def test_a_bad_vars_out_file_applies_nothing_and_fails_the_job(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    lhost.define(defs(tmp_path, 'printf "GOOD=1\\nbad name=2\\nPATH=/x\\n" >> $AJS3_VARS_OUT'))
    run = lhost.entry("/v/net", "--var", "DAY=d")
    lhost.wait(run)
    units = lhost.units(run)
    assert units["/v/net/first"]["status"] == "ended_abnormally"
    assert units["/v/net/first"]["exit_code"] == 0
    assert "AJS3-E407" in units["/v/net/first"]["reason"]
    assert "line 2" in units["/v/net/first"]["reason"]
    assert "line 3" in units["/v/net/first"]["reason"]
    assert units["/v/net/second"]["status"] == "not_executed"
    names = [v["name"] for v in lhost.show(run=run)["vars"]]
    assert names == ["DAY"]  # GOOD was not applied either


def test_after_a_crash_the_next_daemon_reruns_with_the_journaled_values(
    make_lhost: Any, tmp_path: Path
) -> None:
    host = make_lhost("vc")
    host.start()
    ledger = tmp_path / "ledger"
    host.define(f"""
        group: /v
        jobnets:
          - name: crash
            units:
              - name: work
                on_failover: rerun
                command: [/bin/sh, -c, 'echo "$1 $AJS3_ATTEMPT" >> {ledger}; sleep $2',
                          sh, "${{DAY}}", "${{PAUSE}}"]
    """)
    host.entry("/v/crash", "--var", "DAY=tue", "--var", "PAUSE=30")
    wait_for(lambda: ledger.exists() and ledger.read_text(), 20, "the job to start")
    host.crash()  # the next daemon has nothing but the journal
    host.start("hot")
    wait_for(lambda: len(ledger.read_text().splitlines()) >= 2, 30, "the job to be started again")
    assert ledger.read_text().splitlines() == ["tue 1", "tue 2"]


def test_a_job_of_another_user_hands_values_on_and_cannot_reach_others(
    tmp_path: Path,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="ajs3-vars-"))
    base.chmod(0o755)
    with unprivileged_user("v") as user:
        host = LogicalHost(base, "vu", allow_root_jobs=False)
        try:
            host.start()
            host.define(f"""
                group: /v
                jobnets:
                  - name: net
                    units:
                      - name: first
                        user: {user.pw_name}
                        script: 'O="$AJS3_VARS_OUT"; V={host.datadir}/vars;
                                 echo HANDED=by-$(id -un) >> "$O";
                                 ls "$V" >/dev/null 2>&1 && echo LISTED=1 >> "$O";
                                 touch "$V/mine" 2>/dev/null && echo MADE=1 >> "$O";
                                 true'
                      - name: second
                        after: [first]
                        user: {user.pw_name}
                        command: [/bin/echo, '${{HANDED}}']
            """)
            run = host.entry("/v/net")
            assert host.wait(run)["units"][0]["status"] == "ended_normally"
            values = {v["name"]: v["value"] for v in host.show(run=run)["vars"]}
            assert values == {"HANDED": f"by-{user.pw_name}"}  # nothing listed, nothing made
            assert host.run("log", "/v/net/second").stdout == f"by-{user.pw_name}\n"
            out = host.datadir / "vars" / f"{host.units(run)['/v/net/first']['run_id']}.out"
            st = out.stat()
            assert st.st_uid == user.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
            assert stat.S_IMODE((host.datadir / "vars").stat().st_mode) == 0o711
        finally:
            host.cleanup()
            shutil.rmtree(base, ignore_errors=True)
