"""Jobs on an execution host over a real OpenSSH (docs/exechosts.md).

The execution host is a real /usr/sbin/sshd in a network namespace of this session
(bench/exechost_lab.py), reached with a key whose forced command is `ajs3 exechost
serve`; the logical host is a real daemon. Needs root (skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from lhost import wait_for

from ajs3.exechost import transport
from ajs3.exechost_config import ExecHost
from bench.exechost_lab import ExecHostLab, available, lab

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

#: One job on the execution host xh1: /n/a.
ONE_JOB = """
    jobnets:
      - name: n
        host: xh1
        units:
          - {name: a, type: job, command: [/bin/true]}
    """


@pytest.fixture(scope="module")
def xlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecHostLab]:
    with lab(tmp_path_factory.mktemp("xhlab")) as the_lab:
        yield the_lab


def remote_host(
    make_lhost: Any,
    xlab: ExecHostLab,
    name: str,
    defs: str | None = None,
    *,
    extra: str = "",
    settings: Callable[[Path], str] | None = None,
) -> Any:
    """A started logical host ``name`` whose own key the lab's sshd takes (forced
    command) for xh1 (or ``settings`` of that key), with ``defs`` defined."""
    host = make_lhost(name)
    key = xlab.key(f"key-{name}")
    xlab.authorize(key, name)
    host.write_settings(settings(key) if settings else xlab.settings(key, extra=extra))
    host.start()
    if defs is not None:
        host.define(defs)
    return host


def ended(host: Any, run: int, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """The units of ``run`` by path, once it ended."""
    return {u["path"]: u for u in host.wait(run, timeout=timeout)["units"]}


def running_there(host: Any, xlab: ExecHostLab, run: int, path: str) -> dict[str, Any]:
    """The unit ``path`` of ``run`` once it runs and is claimed on the execution host."""
    wait_for(lambda: host.units(run)[path]["status"] == "running", 60, f"{path} to start")
    ur: dict[str, Any] = host.units(run)[path]
    claim = xlab.jobdir(host.lhost, ur["run_id"]) / "started.json"
    wait_for(claim.exists, 30, f"{path} to be claimed there")
    return ur


def ended_there(xlab: ExecHostLab, lhost: str, run_id: str) -> None:
    """Wait until the run's end is recorded on the execution host."""
    wait_for((xlab.jobdir(lhost, run_id) / "status.json").exists, 60, f"{run_id} to end there")


def kill_daemon(host: Any) -> None:
    """kill -9 of the daemon, SIGSTOPped first so that it does nothing more."""
    pid = host.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def link_cut(xlab: ExecHostLab) -> Iterator[None]:
    """The veth to the execution host's namespace down, and up again after."""
    veth = ["ip", "link", "set", xlab.ns + "a"]
    subprocess.run([*veth, "down"], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run([*veth, "up"], check=True, timeout=30)


def target(xlab: ExecHostLab, key: Path, port: int = 22) -> ExecHost:
    """The lab's host as the transport is given it, with ``key``."""
    return ExecHost(
        name="xh1",
        destination=xlab.addr,
        port=port,
        user="root",
        identity_file=str(key),
        known_hosts=str(xlab.known_hosts),
    )


def serves(xlab: ExecHostLab, lhost: str) -> list[psutil.Process]:
    """The `ajs3 exechost serve` processes of ``lhost``'s sessions in the lab."""
    pids = subprocess.run(
        ["ip", "netns", "pids", xlab.ns], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(pid))
            argv = proc.cmdline()
            key = argv[argv.index("--lhost-key") + 1 :][:1] if "--lhost-key" in argv else []
            if "serve" in argv and key == [lhost]:
                found.append(proc)
    return found


def test_a_job_runs_there_and_its_end_and_output_come_back(
    make_lhost: Any, xlab: ExecHostLab
) -> None:
    mine = f'ip -o -4 addr show | grep -cF "inet {xlab.addr}/"'  # the lab's address its own
    host = remote_host(
        make_lhost,
        xlab,
        "xhrun",
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
        """,
    )
    run = host.entry("/net")
    units = ended(host, run)
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
    host = remote_host(
        make_lhost,
        xlab,
        "xhkill",
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
        """,
    )
    run = host.entry("/long")
    running_there(host, xlab, run, "/long/sleeper")
    host.run("kill", "/long/sleeper", "--run", str(run))
    sleeper = ended(host, run, 60)["/long/sleeper"]
    assert sleeper["status"] == "killed" and sleeper["signal"] == signal.SIGTERM
    late = ended(host, host.entry("/slow"), 60)["/slow/late"]
    assert late["status"] == "killed" and "timed out" in late["reason"]


def test_daemon_killed_while_jobs_run_there_loses_nothing(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """kill -9 of the daemon (SIGSTOP first) while 8 jobs run on the execution host:
    after a hot start each is collected with its true exit code, each started once."""
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
    defs = "jobnets:\n  - name: wide\n    host: xh1\n    units:" + units + "\n"
    host = remote_host(make_lhost, xlab, "xhcrash", defs)
    run = host.entry("/wide")
    wait_for(lambda: ledger.exists() and len(ledger.read_text().splitlines()) == 8, 90, "starts")
    kill_daemon(host)
    for i in range(1, 8, 2):  # the odd jobs end while no daemon runs
        ended_there(xlab, "xhcrash", host.units(run)[f"/wide/j{i}"]["run_id"])
    host.start("hot")
    flag.touch()
    jobs = {p: u for p, u in ended(host, run).items() if u["kind"] == "job"}
    assert {p: (u["status"], u["exit_code"], u["attempt"]) for p, u in jobs.items()} == {
        f"/wide/j{i}": ("ended_normally", i, 1) for i in range(8)
    }
    starts = Counter(line.split()[1] for line in ledger.read_text().splitlines())
    assert sorted(starts.values()) == [1] * 8
    assert set(starts) == {u["run_id"] for u in jobs.values()}


def test_a_lower_epoch_is_refused_there(make_lhost: Any, xlab: ExecHostLab) -> None:
    host = remote_host(make_lhost, xlab, "xhepoch", ONE_JOB)
    host.wait(host.entry("/n"), timeout=120)
    epoch = host.journal_query("SELECT MAX(epoch) FROM epochs")[0][0]
    owner = target(xlab, xlab.base / "key-xhepoch")
    control = transport.control_dir(xlab.base / "ctl-epoch")
    try:
        poll = {"op": "poll", "run_ids": []}
        with pytest.raises(transport.AjsError) as err:
            transport.exchange(owner, control, "xhepoch", epoch - 1 if epoch > 1 else 0, [poll])
        if epoch > 0:
            assert err.value.code is not None and err.value.code.value == "AJS3-E333"
        # a former owner cut off: it cannot start anything there
        start = {"op": "start", "run_id": "r" + "0" * 20, "argv": ["/bin/true"], "env": {}}
        with pytest.raises(transport.AjsError):
            transport.exchange(owner, control, "xhepoch", 0, [start])
        assert not xlab.jobdir("xhepoch", "r" + "0" * 20).exists()
        # the owner's own epoch is served
        [answer] = transport.exchange(owner, control, "xhepoch", epoch, [poll])
        assert answer["ok"] is True
    finally:
        transport.close_master(owner, control)
        transport.remove_control_dir(control)


def test_wrong_key_and_unreachable_host_are_coded_errors(
    make_lhost: Any, xlab: ExecHostLab
) -> None:
    stranger = xlab.key("stranger")  # never authorized
    control = transport.control_dir(xlab.base / "ctl-wrong")
    poll = {"op": "poll", "run_ids": []}
    with pytest.raises(transport.Unreachable) as err:
        transport.exchange(target(xlab, stranger), control, "xhwrong", 1, [poll])
    assert err.value.code is not None and err.value.code.value == "AJS3-E331"
    # nothing listens on that port in the lab's namespace: refused
    with pytest.raises(transport.Unreachable) as err:
        transport.exchange(target(xlab, stranger, port=2), control, "xhwrong", 1, [poll])
    assert err.value.code is not None and err.value.code.value == "AJS3-E330"
    transport.remove_control_dir(control)

    # through the daemon: the job waits, and show --why says why
    host = make_lhost("xhwrong")
    host.write_settings(xlab.settings(stranger))
    host.start()
    host.define(ONE_JOB)
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


def test_cut_link_jobs_wait_then_finish_or_their_policy_decides(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """The link to the execution host is cut while jobs run: they wait (show --why
    says so). Back within exechost_timeout, they finish with their true exit code;
    out of reach longer, their on_failover policy decides."""
    flag = tmp_path / "go"
    host = remote_host(
        make_lhost,
        xlab,
        "xhcut",
        f"""
        jobnets:
          - name: n
            host: xh1
            units:
              - name: a
                script: 'while [ ! -e {flag} ]; do sleep 0.1; done; exit 3'
                abnormal_threshold: 5
        """,
        extra="exechost_timeout: 40\n",
    )
    run = host.entry("/n")
    ur = running_there(host, xlab, run, "/n/a")
    with link_cut(xlab):
        wait_for(
            lambda: "cannot be reached" in host.run("show", "--why", "/n/a").stdout,
            90,
            "show --why to say the execution host is out of reach",
        )
        flag.touch()  # it ends there while the link is cut
        ended_there(xlab, "xhcut", ur["run_id"])
    a = ended(host, run)["/n/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 3, 1)

    # out of reach longer than exechost_timeout: policy fail
    flag.unlink()
    run = host.entry("/n")
    running_there(host, xlab, run, "/n/a")
    try:
        with link_cut(xlab):
            a = ended(host, run, 180)["/n/a"]
    finally:
        flag.touch()
    assert a["status"] == "killed" and "could not be reached" in a["reason"]


def test_a_group_spreads_jobs_and_max_jobs_holds(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """Two names for the lab's host, max_jobs 1 each, in a round-robin group: six
    parallel jobs alternate between them and never more than two run at once."""

    def both(key: Path) -> str:
        second = xlab.settings(key, name="xh2").split("\n", 1)[1]  # without the key line
        return (
            xlab.settings(key, extra="    max_jobs: 1\n")
            + second
            + "    max_jobs: 1\nhost_groups:\n"
            + "  both: {members: [xh1, xh2], distribution: round_robin}\n"
        )

    ledger = tmp_path / "ledger"
    units = "".join(
        f"""
              - name: j{i}
                script: 'echo "start $(date +%s.%N)" >> {ledger}; sleep 1;
                  echo "end $(date +%s.%N)" >> {ledger}'"""
        for i in range(6)
    )
    defs = "jobnets:\n  - name: wide\n    host: both\n    units:" + units + "\n"
    host = remote_host(make_lhost, xlab, "xhgroup", defs, settings=both)
    jobs = [u for u in ended(host, host.entry("/wide"), 180).values() if u["kind"] == "job"]
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
    host = remote_host(
        make_lhost,
        xlab,
        "xhnever",
        f"""
        jobnets:
          - name: n
            host: xh1
            units:
              - name: a
                script: 'echo "start $AJS3_RUN_ID" >> {ledger};
                  head -c 3000000 /dev/zero | tr "\\0" x; exit 4'
                abnormal_threshold: 5
        """,
    )
    # the master connection and session are up: a first run goes through
    host.wait(host.entry("/n"), timeout=120)
    ledger.unlink()
    with link_cut(xlab):
        run = host.entry("/n")
        wait_for(lambda: host.units(run)["/n/a"]["status"] == "running", 60, "intent")
        wait_for(
            lambda: "cannot be reached" in host.run("show", "--why", "/n/a").stdout,
            120,
            "the start to fail",
        )
        kill_daemon(host)
    first = host.units(run)["/n/a"]["run_id"]
    host.start("hot")
    a = ended(host, run)["/n/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 4, 2)
    assert ledger.read_text().split() == ["start", a["run_id"]]
    assert '"void": true' in (xlab.jobdir("xhnever", first) / "started.json").read_text()
    out = host.run("log", a["run_id"]).stdout
    assert len(out) == 3_000_000 and set(out) == {"x"}


def test_a_stuck_execution_host_never_stalls_the_loop(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """The far side of the daemon's session stops answering (its `exechost serve` is
    SIGSTOPped) while a job runs there. While that exchange is under way, a local job
    starts and ends and the daemon answers `show --why`; the exchange is still under
    way afterwards (the same session, show --why says so). Then SIGCONT: the exchange
    completes and the job there ends with its true exit code. Stopping the daemon
    while an exchange is stuck returns too, unescalated (the link's thread is cut
    short and joined); a hot start collects the job stuck meanwhile."""
    flag = tmp_path / "go"
    host = remote_host(
        make_lhost,
        xlab,
        "xhstuck",
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
        """,
    )

    def why(run: int) -> str:  # answered by the daemon (a plain show reads the journal)
        return host.run("show", "--why", "/far/a", "--run", str(run)).stdout

    def stuck_while_running_there() -> tuple[int, psutil.Process]:
        run = host.entry("/far")
        running_there(host, xlab, run, "/far/a")
        [serve] = wait_for(lambda: serves(xlab, "xhstuck") or None, 30, "the session")
        serve.suspend()  # SIGSTOP: the next poll gets no answer
        wait_for(lambda: "has not answered" in why(run), 60, "show --why: an exchange under way")
        return run, serve

    run, serve = stuck_while_running_there()
    try:
        flag.touch()  # it ends there meanwhile; the stopped session cannot say so yet
        b = ended(host, host.entry("/near"), 60)["/near/b"]
        assert (b["status"], b["exit_code"]) == ("ended_normally", 0)
        # ... while the exchange with the stuck host is still under way: nothing gave
        # up on the session, whose far side is still stopped
        assert "has not answered" in why(run)
        assert host.units(run)["/far/a"]["status"] == "running"
        assert [p.pid for p in serves(xlab, "xhstuck")] == [serve.pid]
        assert serve.status() == psutil.STATUS_STOPPED
    finally:
        serve.resume()
    a = ended(host, run)["/far/a"]
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
    a = ended(host, run)["/far/a"]
    assert (a["status"], a["exit_code"], a["attempt"]) == ("ended_normally", 6, 1)


def test_a_job_there_hands_values_on_through_ajs3_vars_out(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """A job on the execution host writes NAME=VALUE lines into its AJS3_VARS_OUT file
    there; they come home with its end and reach the units after it, local and
    remote (environment and ${NAME} arguments). A bad file fails the job with
    AJS3-E407 and nothing of it is applied, as locally."""
    out = tmp_path / "here"
    host = remote_host(
        make_lhost,
        xlab,
        "xhvars",
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
        """,
    )
    run = host.entry("/pass")
    units = ended(host, run)
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


def test_a_running_jobs_output_there_is_followed_as_a_local_ones(
    make_lhost: Any, xlab: ExecHostLab, tmp_path: Path
) -> None:
    """A job on the execution host prints a line every half second for ~10 s, then
    waits for a flag: while it still runs, `ajs3 log` of it (the real CLI, reading the
    local output file the daemon follows) shows its first lines; once it ended, its
    whole output, byte for byte that of the file there."""
    flag = tmp_path / "go"
    host = remote_host(
        make_lhost,
        xlab,
        "xhfollow",
        f"""
        jobnets:
          - name: chatty
            host: xh1
            units:
              - name: talk
                script: 'i=1; while [ $i -le 20 ]; do echo "line $i"; echo "err $i" >&2;
                  i=$((i+1)); sleep 0.5; done; while [ ! -e {flag} ]; do sleep 0.1; done'
        """,
    )
    run = host.entry("/chatty")
    ur = running_there(host, xlab, run, "/chatty/talk")

    def log(*extra: str) -> str:
        return host.run("log", ur["run_id"], *extra, check=False).stdout

    wait_for(lambda: log().startswith("line 1\nline 2\n"), 120, "the first lines in ajs3 log")
    assert log("--stderr").startswith("err 1\n")
    assert host.units(run)["/chatty/talk"]["status"] == "running"  # it waits for the flag
    wait_for(lambda: log().endswith("line 20\n"), 120, "all 20 lines while it runs")
    flag.touch()
    talk = ended(host, run)["/chatty/talk"]
    assert talk["status"] == "ended_normally"
    there = xlab.jobdir("xhfollow", ur["run_id"])
    assert log() == "".join(f"line {i}\n" for i in range(1, 21))
    assert log().encode() == (there / "stdout").read_bytes()
    assert log("--stderr").encode() == (there / "stderr").read_bytes()
