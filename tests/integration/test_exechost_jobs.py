"""Jobs on an execution host over a real OpenSSH (docs/exechosts.md).

The execution host is a real /usr/sbin/sshd in a network namespace of this session
(tests/exechost_lab.py), reached with a key whose forced command is `ajs3 exechost
serve`; the logical host is a real daemon. Needs root (skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from lhost import wait_for

from ajs3.exechost import transport
from ajs3.exechost_config import ExecHost
from bench.exechost_lab import HOST_ADDR, ExecHostLab, available, lab

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def xlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecHostLab]:
    with lab(tmp_path_factory.mktemp("xhlab")) as the_lab:
        yield the_lab


def remote_host(make_lhost: Any, xlab: ExecHostLab, name: str, extra: str = "") -> Any:
    host = make_lhost(name)
    key = xlab.key(f"key-{name}")
    xlab.authorize(key, name)
    host.write_settings(xlab.settings(key, extra=extra))
    host.start()
    return host


def test_a_job_runs_there_and_its_end_and_output_come_back(
    make_lhost: Any, xlab: ExecHostLab
) -> None:
    host = remote_host(make_lhost, xlab, "xhrun")
    mine = f'ip -o -4 addr show | grep -cF "inet {xlab.addr}/"'  # the lab's address its own
    host.define(
        f"""
        jobnets:
          - name: net
            host: xh1
            units:
              - name: there
                script: 'echo "on $({mine}) $AJS3_LHOST";
                  echo oops >&2; exit 7'
                abnormal_threshold: 10
                warning_threshold: 5
              - {{name: here, type: job, command: [/bin/true], host: xh1, after: [there]}}
        """
    )
    run = host.entry("/net")
    data = host.wait(run, timeout=120)
    units = {u["path"]: u for u in data["units"]}
    there = units["/net/there"]
    assert (there["status"], there["exit_code"], there["exec_host"]) == ("ended_warning", 7, "xh1")
    assert units["/net/here"]["status"] == "ended_normally"
    # it ran in the execution host's namespace, where the lab's address is its own
    log = host.run("log", there["run_id"]).stdout
    assert log == "on 1 xhrun\n"
    assert host.run("log", there["run_id"], "--stderr").stdout == "oops\n"
    # durable there, keyed by logical host and run id
    assert (xlab.jobdir("xhrun", there["run_id"]) / "status.json").exists()
    assert "HOST" in host.run("show", "--run", str(run)).stdout


def test_kill_and_timeout_reach_the_job_there(make_lhost: Any, xlab: ExecHostLab) -> None:
    host = remote_host(make_lhost, xlab, "xhkill")
    host.define(
        """
        jobnets:
          - name: long
            host: xh1
            units:
              - {name: sleeper, type: job, command: [sleep, "300"]}
          - name: slow
            host: xh1
            units:
              - {name: late, type: job, command: [sleep, "300"], timeout: 2, kill_grace: 1}
        """
    )
    run = host.entry("/long")
    wait_for(lambda: host.units(run)["/long/sleeper"]["status"] == "running", 60, "start")
    ur = host.units(run)["/long/sleeper"]
    wait_for(lambda: (xlab.jobdir("xhkill", ur["run_id"]) / "started.json").exists(), 30, "claim")
    host.run("kill", "/long/sleeper", "--run", str(run))
    data = host.wait(run, timeout=60)
    sleeper = {u["path"]: u for u in data["units"]}["/long/sleeper"]
    assert sleeper["status"] == "killed" and sleeper["signal"] == signal.SIGTERM
    run2 = host.entry("/slow")
    late = {u["path"]: u for u in host.wait(run2, timeout=60)["units"]}["/slow/late"]
    assert late["status"] == "killed" and "timed out" in late["reason"]


def test_daemon_killed_while_jobs_run_there_loses_nothing(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """kill -9 of the daemon (SIGSTOP first) while 8 jobs run on the execution host:
    after a hot start each is collected with its true exit code, each started once."""
    host = remote_host(make_lhost, xlab, "xhcrash")
    ledger, flag = tmp_path / "ledger", tmp_path / "go"
    units = "".join(
        f"""
              - name: j{i}
                script: 'echo "start $AJS3_RUN_ID" >> {ledger};
                  {"sleep 1" if i % 2 else f"while [ ! -e {flag} ]; do sleep 0.1; done"};
                  exit {i}'
                abnormal_threshold: 20"""
        for i in range(8)
    )
    host.define("jobnets:\n  - name: wide\n    host: xh1\n    units:" + units + "\n")
    run = host.entry("/wide")
    wait_for(lambda: ledger.exists() and len(ledger.read_text().splitlines()) == 8, 90, "starts")
    pid = host.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)
    time.sleep(2.5)  # the odd jobs end while no daemon runs
    host.start("hot")
    flag.touch()
    data = host.wait(run, timeout=120)
    jobs = {u["path"]: u for u in data["units"] if u["kind"] == "job"}
    assert {p: (u["status"], u["exit_code"], u["attempt"]) for p, u in jobs.items()} == {
        f"/wide/j{i}": ("ended_normally", i, 1) for i in range(8)
    }
    starts = Counter(line.split()[1] for line in ledger.read_text().splitlines())
    assert sorted(starts.values()) == [1] * 8
    assert set(starts) == {u["run_id"] for u in jobs.values()}


def test_a_lower_epoch_is_refused_there(make_lhost: Any, xlab: ExecHostLab) -> None:
    host = remote_host(make_lhost, xlab, "xhepoch")
    host.define(
        "jobnets:\n  - name: n\n    host: xh1\n    units:\n"
        "      - {name: a, type: job, command: [/bin/true]}\n"
    )
    host.wait(host.entry("/n"), timeout=120)
    epoch = host.journal_query("SELECT MAX(epoch) FROM epochs")[0][0]
    target = ExecHost(
        name="xh1",
        destination=HOST_ADDR,
        user="root",
        identity_file=str(xlab.base / "key-xhepoch"),
        known_hosts=str(xlab.known_hosts),
    )
    control = transport.control_dir(xlab.base / "ctl-epoch")
    poll = {"op": "poll", "run_ids": []}
    with pytest.raises(transport.AjsError) as err:
        transport.exchange(target, control, "xhepoch", epoch - 1 if epoch > 1 else 0, [poll])
    if epoch > 0:
        assert err.value.code is not None and err.value.code.value == "AJS3-E333"
    # a former owner cut off: it cannot start anything there
    start = {
        "op": "start",
        "run_id": "r" + "0" * 20,
        "argv": ["/bin/true"],
        "env": {},
    }
    with pytest.raises(transport.AjsError):
        transport.exchange(target, control, "xhepoch", 0, [start])
    assert not xlab.jobdir("xhepoch", "r" + "0" * 20).exists()
    # the owner's own epoch is served
    [answer] = transport.exchange(target, control, "xhepoch", epoch, [poll])
    assert answer["ok"] is True


def test_wrong_key_and_unreachable_host_are_coded_errors(
    make_lhost: Any, xlab: ExecHostLab
) -> None:
    stranger = xlab.key("stranger")  # never authorized
    control = transport.control_dir(xlab.base / "ctl-wrong")
    target = ExecHost(
        name="xh1",
        destination=HOST_ADDR,
        user="root",
        identity_file=str(stranger),
        known_hosts=str(xlab.known_hosts),
    )
    with pytest.raises(transport.Unreachable) as err:
        transport.exchange(target, control, "xhwrong", 1, [{"op": "poll", "run_ids": []}])
    assert err.value.code is not None and err.value.code.value == "AJS3-E331"
    nowhere = ExecHost(
        name="gone",
        destination="10.232.0.77",
        user="root",
        identity_file=str(stranger),
        known_hosts=str(xlab.known_hosts),
    )
    with pytest.raises(transport.Unreachable) as err:
        transport.exchange(nowhere, control, "xhwrong", 1, [{"op": "poll", "run_ids": []}])
    assert err.value.code is not None and err.value.code.value == "AJS3-E330"

    # through the daemon: the job waits, and show --why says why
    host = make_lhost("xhwrong")
    host.write_settings(xlab.settings(stranger))
    host.start()
    host.define(
        "jobnets:\n  - name: n\n    host: xh1\n    units:\n"
        "      - {name: a, type: job, command: [/bin/true]}\n"
    )
    run = host.entry("/n")

    def why() -> str:
        return host.run("show", "--why", "/n/a", "--run", str(run)).stdout

    wait_for(lambda: "AJS3-E331" in why(), 60, "show --why to name the refused key")
    assert host.units(run)["/n/a"]["status"] in ("waiting", "running")


def test_an_unknown_host_is_refused_at_define(make_lhost: Any, xlab: ExecHostLab) -> None:
    host = remote_host(make_lhost, xlab, "xhdef")
    path = host.datadir / "definitions" / "bad.yaml"
    path.write_text(
        "jobnets:\n  - name: n\n    units:\n"
        "      - {name: a, type: job, command: [/bin/true], host: nowhere}\n"
    )
    done = host.run("define", check=False)
    assert done.returncode != 0
    assert "AJS3-E150" in done.stderr and "bad.yaml:4" in done.stderr


def _link(xlab: ExecHostLab, state: str) -> None:
    import subprocess

    subprocess.run(["ip", "link", "set", xlab.ns + "a", state], check=True, timeout=30)


def test_cut_link_jobs_wait_then_finish_or_their_policy_decides(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """The link to the execution host is cut while jobs run: they wait (show --why
    says so). Back within exechost_timeout, they finish with their true exit code;
    out of reach longer, their on_failover policy decides."""
    flag = tmp_path / "go"
    host = remote_host(make_lhost, xlab, "xhcut", extra="exechost_timeout: 40\n")
    host.define(
        f"""
        jobnets:
          - name: n
            host: xh1
            units:
              - name: a
                script: 'while [ ! -e {flag} ]; do sleep 0.1; done; exit 3'
                abnormal_threshold: 5
        """
    )
    run = host.entry("/n")
    wait_for(lambda: host.units(run)["/n/a"]["status"] == "running", 60, "start")
    ur = host.units(run)["/n/a"]
    wait_for(lambda: (xlab.jobdir("xhcut", ur["run_id"]) / "started.json").exists(), 30, "claim")
    _link(xlab, "down")
    try:
        wait_for(
            lambda: "cannot be reached" in host.run("show", "--why", "/n/a").stdout,
            90,
            "show --why to say the execution host is out of reach",
        )
        flag.touch()  # it ends there while the link is cut
        time.sleep(1)
    finally:
        _link(xlab, "up")
    a = {u["path"]: u for u in host.wait(run, timeout=120)["units"]}["/n/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 3, 1)

    # out of reach longer than exechost_timeout: policy fail
    flag.unlink()
    run = host.entry("/n")
    wait_for(lambda: host.units(run)["/n/a"]["status"] == "running", 60, "start")
    ur = host.units(run)["/n/a"]
    wait_for(lambda: (xlab.jobdir("xhcut", ur["run_id"]) / "started.json").exists(), 30, "claim")
    _link(xlab, "down")
    try:
        a = {u["path"]: u for u in host.wait(run, timeout=180)["units"]}["/n/a"]
    finally:
        _link(xlab, "up")
        flag.touch()
    assert a["status"] == "killed" and "could not be reached" in a["reason"]


def test_a_group_spreads_jobs_and_max_jobs_holds(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """Two names for the lab's host, max_jobs 1 each, in a round-robin group: six
    parallel jobs alternate between them and never more than two run at once."""
    name = "xhgroup"
    host = make_lhost(name)
    key = xlab.key(f"key-{name}")
    xlab.authorize(key, name)
    second = xlab.settings(key, name="xh2").split("\n", 1)[1]  # without the key line
    host.write_settings(
        xlab.settings(key, extra="    max_jobs: 1\n")
        + second
        + "    max_jobs: 1\nhost_groups:\n"
        + "  both: {members: [xh1, xh2], distribution: round_robin}\n"
    )
    host.start()
    ledger = tmp_path / "ledger"
    units = "".join(
        f"""
              - name: j{i}
                script: 'echo "start $(date +%s.%N)" >> {ledger}; sleep 1;
                  echo "end $(date +%s.%N)" >> {ledger}'"""
        for i in range(6)
    )
    host.define("jobnets:\n  - name: wide\n    host: both\n    units:" + units + "\n")
    data = host.wait(host.entry("/wide"), timeout=180)
    jobs = [u for u in data["units"] if u["kind"] == "job"]
    assert all(u["status"] == "ended_normally" for u in jobs)
    assert Counter(u["exec_host"] for u in jobs) == {"xh1": 3, "xh2": 3}
    events = sorted(
        (float(t), 1 if kind == "start" else -1)
        for kind, t in (line.split() for line in ledger.read_text().splitlines())
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2


def test_a_start_that_never_reached_is_claimed_there_and_started_once(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """The start's intent is recorded but the link is cut, then the daemon dies: the
    new daemon finds the run absent there, claims it (void) and starts it again; it
    runs once. A big output comes home in chunks."""
    ledger = tmp_path / "ledger"
    host = remote_host(make_lhost, xlab, "xhnever")
    host.define(
        f"""
        jobnets:
          - name: n
            host: xh1
            units:
              - name: a
                script: 'echo "start $AJS3_RUN_ID" >> {ledger};
                  head -c 3000000 /dev/zero | tr "\\0" x; exit 4'
                abnormal_threshold: 5
        """
    )
    # the master connection and session are up: a first run goes through
    host.wait(host.entry("/n"), timeout=120)
    ledger.unlink()
    _link(xlab, "down")
    try:
        run = host.entry("/n")
        wait_for(lambda: host.units(run)["/n/a"]["status"] == "running", 60, "intent")
        wait_for(
            lambda: "cannot be reached" in host.run("show", "--why", "/n/a").stdout,
            120,
            "the start to fail",
        )
        pid = host.daemon_pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
    finally:
        _link(xlab, "up")
    first = host.units(run)["/n/a"]["run_id"]
    host.start("hot")
    data = host.wait(run, timeout=120)
    a = {u["path"]: u for u in data["units"]}["/n/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 4, 2)
    assert ledger.read_text().split() == ["start", a["run_id"]]
    assert '"void": true' in (xlab.jobdir("xhnever", first) / "started.json").read_text()
    out = host.run("log", a["run_id"]).stdout
    assert len(out) == 3_000_000 and set(out) == {"x"}


def _serves(xlab: ExecHostLab, lhost: str) -> list[psutil.Process]:
    """The `ajs3 exechost serve` processes of ``lhost``'s sessions in the lab."""
    import subprocess

    pids = subprocess.run(
        ["ip", "netns", "pids", xlab.ns], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(pid))
            argv = proc.cmdline()
            if "serve" in argv and argv[argv.index("--lhost-key") + 1 :][:1] == [lhost]:
                found.append(proc)
    return found


def test_a_stuck_execution_host_never_stalls_the_loop(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """The far side of the daemon's session stops answering (its `exechost serve` is
    SIGSTOPped) while a job runs there. While that exchange is under way, a local job
    starts and ends and `show` answers; the exchange is still under way afterwards
    (the same session, show --why says so). Then SIGCONT: the exchange completes and
    the job there ends with its true exit code. Stopping the daemon while an exchange
    is stuck returns too (the link's thread is cut short and joined); a hot start
    collects the job stuck meanwhile."""
    flag = tmp_path / "go"
    host = remote_host(make_lhost, xlab, "xhstuck")
    host.define(
        f"""
        jobnets:
          - name: far
            host: xh1
            units:
              - name: a
                script: 'while [ ! -e {flag} ]; do sleep 0.1; done; exit 6'
                abnormal_threshold: 10
          - name: near
            units:
              - {{name: b, type: job, command: [/bin/sh, -c, "exit 0"]}}
        """
    )

    def why(run: int) -> str:  # answered by the daemon (a plain show reads the journal)
        return host.run("show", "--why", "/far/a", "--run", str(run)).stdout

    def stuck_while_running_there() -> tuple[int, psutil.Process]:
        run = host.entry("/far")
        wait_for(lambda: host.units(run)["/far/a"]["status"] == "running", 60, "start")
        ur = host.units(run)["/far/a"]
        claim = xlab.jobdir("xhstuck", ur["run_id"]) / "started.json"
        wait_for(claim.exists, 30, "claim")
        [serve] = wait_for(lambda: _serves(xlab, "xhstuck") or None, 30, "the session")
        serve.suspend()  # SIGSTOP: the next poll gets no answer
        wait_for(lambda: "has not answered" in why(run), 60, "show --why: an exchange under way")
        return run, serve

    run, serve = stuck_while_running_there()
    try:
        flag.touch()  # it ends there meanwhile; the stopped session cannot say so yet
        near = host.entry("/near")
        b = {u["path"]: u for u in host.wait(near, timeout=60)["units"]}["/near/b"]
        assert (b["status"], b["exit_code"]) == ("ended_normally", 0)
        # ... while the exchange with the stuck host is still under way: nothing gave
        # up on the session, whose far side is still stopped
        assert "has not answered" in why(run)
        assert host.units(run)["/far/a"]["status"] == "running"
        assert [p.pid for p in _serves(xlab, "xhstuck")] == [serve.pid]
        assert serve.status() == psutil.STATUS_STOPPED
    finally:
        serve.resume()
    a = {u["path"]: u for u in host.wait(run, timeout=120)["units"]}["/far/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 6, 1)

    # a stop while the exchange is stuck: the daemon stops (jobs left running)
    flag.unlink()
    run, serve = stuck_while_running_there()
    try:
        done = host.json("service", "stop", "--jobs", "leave", "--timeout", "60")
        assert done["was_running"] and not done["escalated"]  # it stopped on its own
    finally:
        serve.resume()
    flag.touch()
    host.start("hot")
    a = {u["path"]: u for u in host.wait(run, timeout=120)["units"]}["/far/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 6, 1)


def test_a_job_there_hands_values_on_through_ajs3_vars_out(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """A job on the execution host writes NAME=VALUE lines into its AJS3_VARS_OUT file
    there; they come home with its end and reach the units after it, local and
    remote (environment and ${NAME} arguments). A bad file fails the job with
    AJS3-E407 and nothing of it is applied, as locally."""
    out = tmp_path / "here"
    host = remote_host(make_lhost, xlab, "xhvars")
    host.define(
        f"""
        jobnets:
          - name: pass
            units:
              - name: there
                host: xh1
                script: 'echo ROWS=42 >> "$AJS3_VARS_OUT";
                  echo "FROM=$AJS3_RUN_ID" >> "$AJS3_VARS_OUT"'
              - name: here
                after: [there]
                command: [/bin/sh, -c, 'echo "$ROWS $1" > {out}', sh, "${{FROM}}"]
              - name: again
                host: xh1
                after: [there]
                command: [/bin/sh, -c, 'echo "$ROWS ${{ROWS}} $FROM"']
              - name: bad
                host: xh1
                after: [again]
                script: 'echo "lower=1" >> "$AJS3_VARS_OUT"; echo OK=1 >> "$AJS3_VARS_OUT"'
        """
    )
    run = host.entry("/pass")
    data = host.wait(run, timeout=120)
    units = {u["path"]: u for u in data["units"]}
    there = units["/pass/there"]
    assert (there["status"], there["exec_host"]) == ("ended_normally", "xh1")
    assert out.read_text() == f"42 {there['run_id']}\n"  # local: env and ${FROM}
    again = units["/pass/again"]
    assert host.run("log", again["run_id"]).stdout == f"42 42 {there['run_id']}\n"
    bad = units["/pass/bad"]
    assert bad["status"] == "ended_abnormally" and "AJS3-E407" in bad["reason"]
    shown = {v["name"]: v for v in host.show(run=run)["vars"]}
    assert set(shown) == {"ROWS", "FROM"}  # nothing of the bad file
    assert shown["ROWS"] == {**shown["ROWS"], "value": "42", "source": "/pass/there"}
    # the file there, next to the run's record; its copy home, checked by the collector
    assert (xlab.state_dir / "xhvars" / "vars" / f"{there['run_id']}.out").exists()
    assert (host.datadir / "vars" / f"{there['run_id']}.out").read_text().startswith("ROWS=42")
