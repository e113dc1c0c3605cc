"""Jobs on execution hosts through failures (issue 16; docs/exechosts.md).

Two execution hosts (tests/cluster/exechosts.py: sshd and `ajs3 exechost serve` in
namespaces of their own on the lab's switch, no cluster software) run lh1's jobs of the
jobnet /xh/thirty: 30 jobs of a host group of both, each writing `start` and `end`
lines to a ledger of its own (the workload's format, workload.py) and exiting with an
exit code of its own (0-3). Then:

- the node that holds lh1 is crashed while all 30 run: after the failover each ends
  with its true exit code, each started once, none in doubt (the jobs were never on the
  node that died), and the checker proves it from the ledger and the journal;
- an execution host's cable is pulled while its jobs run: they wait (`show --why`
  says so), and end with their true exit codes once it is back;
- an execution host crashes (its PID 1 killed with all its jobs): after
  `exechost_timeout` their `on_failover` policy decides (`fail`: killed, reason code
  exec-host-lost), and the other host's jobs end with their own exit codes.

Runs in the cluster tier, as root: `pytest tests/cluster/test_failover_exechosts.py`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import checker
import pytest
import yaml
from exechosts import AJS3, ExecHosts
from lab import HERE, LEDGER_DIR, MOUNT_ROOT, PYTHON, Lab, LabError, infra_suite, wait_until

from ajs3.exechost import protocol

pytestmark = pytest.mark.cluster

LH = "lh1"
GROUP = "/xh"
DEFS_FILE = "exechosts.yaml"
LEDGER = f"{LH}-exechosts.ledger"
JOBS = 30
#: seconds an execution host may be out of reach before its jobs' policy decides
TIMEOUT = 20
QUERY_PY = """
import json, sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
print(json.dumps(list(c.execute(sys.argv[2], json.loads(sys.argv[3])))))
"""


def job_script(seconds: float, rc: int) -> str:
    ledger = f"{LEDGER_DIR}/{LEDGER}"
    ident = "$AJS3_RUN_ID $AJS3_ATTEMPT $AJS3_EPOCH $(hostname) $AJS3_UNIT $AJS3_JOBNET_RUN"
    return (
        f"L={shlex.quote(ledger)}\n"
        f'echo "start {ident} $(date +%s.%N)" >> "$L" || exit 97\n'
        f"sleep {seconds:g}\n"
        f'echo "end {ident} $(date +%s.%N) {rc}" >> "$L"\n'
        f"exit {rc}\n"
    )


def definitions(seconds: float) -> str:
    units = [
        {"name": f"j{k:02d}", "script": job_script(seconds + 0.1 * k, k % 4), "on_failover": "fail"}
        for k in range(JOBS)
    ]
    doc = {"group": GROUP, "jobnets": [{"name": "thirty", "host": "xhs", "units": units}]}
    return json.dumps(doc, indent=1) + "\n"


class Rig:
    """lh1 with two execution hosts in its settings, driven from the host."""

    def __init__(self, lab: Lab, xh: ExecHosts) -> None:
        self.lab = lab
        self.xh = xh
        self.ledger = lab.state_dir / "ledger" / LEDGER

    def where(self) -> str:
        node = self.lab.group_location(LH)
        if node is None:
            raise LabError(f"{LH} is not running")
        return node

    def ajs3(self, *args: str, check: bool = True) -> str:
        proc = self.lab.exec(self.where(), [AJS3, *args, "-h", LH], timeout=120)
        if check and proc.returncode != 0:
            raise LabError(f"ajs3 {' '.join(args)}: {proc.stderr.strip()[-400:]}")
        return proc.stdout

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        proc = self.lab.exec(
            self.where(),
            [PYTHON, "-S", "-c", QUERY_PY, f"{MOUNT_ROOT}/{LH}/journal.db", sql, json.dumps(args)],
            timeout=60,
        )
        if proc.returncode != 0:
            raise LabError(f"journal query failed: {proc.stderr.strip()[-300:]}")
        return [tuple(r) for r in json.loads(proc.stdout)]

    def journal(self) -> checker.Journal:
        proc = self.lab.exec(
            self.where(),
            [
                PYTHON,
                str(HERE / "checker.py"),
                "--dump",
                "--journal",
                f"{MOUNT_ROOT}/{LH}/journal.db",
            ],
            timeout=120,
        )
        if proc.returncode != 0:
            raise LabError(f"journal dump failed: {proc.stderr.strip()[-300:]}")
        return checker.Journal.from_json(json.loads(proc.stdout))

    def settings(self) -> dict[str, Any]:
        out = self.lab.exec(self.where(), ["cat", f"{MOUNT_ROOT}/{LH}/ajs3.yaml"]).stdout
        loaded = yaml.safe_load(out) if out.strip() else None
        return loaded if isinstance(loaded, dict) else {}

    def write_settings(self, settings: dict[str, Any]) -> None:
        self.lab.exec(
            self.where(),
            ["sh", "-c", f"cat > {MOUNT_ROOT}/{LH}/ajs3.yaml"],
            input=json.dumps(settings) + "\n",
            check=True,
        )

    def define(self, text: str | None) -> None:
        target = f"{MOUNT_ROOT}/{LH}/definitions/{DEFS_FILE}"
        if text is None:
            self.lab.exec(self.where(), ["rm", "-f", target], check=True)
        else:
            self.lab.exec(
                self.where(),
                ["sh", "-c", f"mkdir -p {MOUNT_ROOT}/{LH}/definitions && cat > {target}"],
                input=text,
                check=True,
            )
        self.ajs3("define")

    def restart(self) -> None:
        """Restart lh1's daemon where it runs: it reads its settings at start."""
        node = next(iter(self.lab.running_nodes()))
        proc = self.lab.exec(node, ["pcs", "resource", "restart", f"{LH}-ajs3"], timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.lab.wait_groups(timeout=180)
        wait_until(self.answers, 60, 0.5, f"{LH} answering")

    def answers(self) -> bool:
        try:
            node = self.where()
        except LabError:
            return False
        return self.lab.exec(node, [AJS3, "service", "status", "-h", LH]).returncode == 0

    # ---- one run of /xh/thirty

    def enter(self) -> int:
        return int(json.loads(self.ajs3("entry", "--json", f"{GROUP}/thirty"))["run"])

    def jobs(self, run: int) -> dict[str, dict[str, Any]]:
        rows = self.query(
            "SELECT path, status, exit_code, attempt, run_id, exec_host, reason FROM unit_runs"
            " WHERE jobnet_run=? AND kind='job'",
            (run,),
        )
        keys = ("status", "exit_code", "attempt", "run_id", "exec_host", "reason")
        return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}

    def started_lines(self, run: int) -> list[checker.Job]:
        led = checker.read_ledger(self.ledger.read_text() if self.ledger.exists() else "")
        return [s for s in led.starts if s.jobnet_run == run]

    def wait_all_running(self, run: int, hosts: set[str] | None = None) -> dict[str, Any]:
        """Until every job runs on an execution host and has written its start line."""

        def ready() -> dict[str, Any] | None:
            try:
                jobs = self.jobs(run)
            except LabError:
                return None
            if len(jobs) != JOBS or any(j["status"] != "running" for j in jobs.values()):
                return None
            if hosts is not None and {j["exec_host"] for j in jobs.values()} != hosts:
                return None
            return jobs if len(self.started_lines(run)) == JOBS else None

        got: dict[str, Any] = wait_until(ready, 120, 0.5, f"{JOBS} jobs running on execution hosts")
        return got

    def wait_ended(self, run: int, timeout: float = 240) -> dict[str, dict[str, Any]]:
        def ended() -> dict[str, dict[str, Any]] | None:
            try:
                jobs = self.jobs(run)
            except LabError:
                return None
            return jobs if all(j["status"] in checker.FINAL for j in jobs.values()) else None

        got: dict[str, dict[str, Any]] = wait_until(ended, timeout, 0.5, f"run {run} to end")
        return got

    def codes(self, run: int) -> dict[str, list[str]]:
        """Each job's event reason codes, in order."""
        rows = self.query(
            "SELECT u.path, e.code FROM events e JOIN unit_runs u ON u.id = e.unit_run"
            " WHERE u.jobnet_run=? AND u.kind='job' ORDER BY e.id",
            (run,),
        )
        out: dict[str, list[str]] = {}
        for path, code in rows:
            out.setdefault(path, []).append(code)
        return out

    def prove(self, run: int) -> None:
        """The checker, on this test's ledger and the journal's runs under /xh."""
        led = checker.read_ledger(self.ledger.read_text())
        report = checker.check(led, checker.only_group(self.journal(), GROUP), lhost=LH, final=True)
        assert report.ok, report.text()
        ends = {e.run_id: e.rc for e in led.ends if e.jobnet_run == run}
        assert len(ends) == JOBS, sorted(ends)


def true_codes(jobs: dict[str, dict[str, Any]]) -> dict[str, int | None]:
    return {path: j["exit_code"] for path, j in jobs.items()}


def expected_codes(run_paths: list[str]) -> dict[str, int]:
    return {p: int(p.rsplit("/j", 1)[1]) % 4 for p in run_paths}


@pytest.fixture(scope="module")
def rig(lab: Lab) -> Iterator[Rig]:
    if not lab.app.startswith("ocf:ajs3:ajs3"):
        pytest.skip(f"the lab runs {lab.app!r}; this test needs ocf:ajs3:ajs3")
    for n in lab.node_names():
        if not lab.is_on(n):
            lab.power_on(n)
    lab.wait_cluster(timeout=120)
    node = lab.running_nodes()[0]
    lab.exec(node, ["pcs", "resource", "cleanup", LH], timeout=120)
    lab.wait_groups(timeout=180)
    xh = ExecHosts(lab)
    xh.up([LH])
    r = Rig(lab, xh)
    before = r.settings()
    r.write_settings(
        {
            "allow_root_jobs": True,
            "keep": None,
            **before,
            **xh.settings(LH),
            "exechost_timeout": TIMEOUT,
        }
    )
    r.restart()
    r.define(definitions(seconds=40))
    try:
        yield r
    finally:
        for name in xh.names():
            xh.restore_link(name)
            xh.boot(name)
        try:
            r.define(None)
            r.write_settings(before)
            r.restart()
        finally:
            xh.down()


def test_infra_checks_pass_on_the_execution_hosts(rig: Rig) -> None:
    """tests/infra/test_exechosts.py over SSH, as against the Vagrant lab's xh1: ajs3
    and no cluster software on each execution host, no port of ajs3's own, and lh1's
    key, from the node that holds lh1, answered by the forced command only."""
    proc = infra_suite(rig.xh.ssh_config, "test_exechosts.py")
    # every check ran: one per execution host, and lh1's key on each of them
    for name in rig.xh.names():
        assert re.search(rf"test_only_sshd_listens_for_ajs3\[{name}\] PASSED", proc.stdout)
    assert "test_logical_host_keys_only_speak_the_protocol PASSED" in proc.stdout


def test_a_node_crash_while_30_jobs_run_on_two_execution_hosts(rig: Rig) -> None:
    run = rig.enter()
    before = rig.wait_all_running(run, hosts={"xh1", "xh2"})
    epoch_before = int(rig.query("SELECT max(epoch) FROM epochs")[0][0])

    fo = rig.lab.failover(LH, "kill")
    assert fo.survivor != fo.victim
    jobs = rig.wait_ended(run)

    # each with its true exit code, started once, none in doubt, re-adopted in place
    assert true_codes(jobs) == expected_codes(list(jobs)), jobs
    assert all(j["attempt"] == 1 for j in jobs.values()), jobs
    assert {p: j["exec_host"] for p, j in jobs.items()} == {
        p: j["exec_host"] for p, j in before.items()
    }
    in_doubt = {p: c for p, cs in rig.codes(run).items() for c in cs if c in checker.IN_DOUBT}
    assert not in_doubt, in_doubt
    starts = rig.started_lines(run)
    assert len(starts) == JOBS and len({s.run_id for s in starts}) == JOBS
    assert {s.node for s in starts} == {"xh1", "xh2"}
    assert int(rig.query("SELECT max(epoch) FROM epochs")[0][0]) > epoch_before
    rig.prove(run)


def test_a_cut_link_makes_jobs_wait_and_they_end_when_it_is_back(rig: Rig) -> None:
    run = rig.enter()
    rig.wait_all_running(run, hosts={"xh1", "xh2"})
    rig.xh.cut_link("xh1")
    try:
        on_xh1 = [p for p, j in rig.jobs(run).items() if j["exec_host"] == "xh1"]

        # "has not answered for N s" while the exchange is under way, "cannot be
        # reached" once it failed: either way show --why says the job waits for xh1
        def says_it_waits() -> str | None:
            out = rig.ajs3("show", "--why", on_xh1[0], "--run", str(run))
            return out if "execution host xh1" in out and "waits for it" in out else None

        wait_until(says_it_waits, 60, 1.0, "show --why to say the job waits for xh1")
    finally:
        rig.xh.restore_link("xh1")
    jobs = rig.wait_ended(run)
    assert true_codes(jobs) == expected_codes(list(jobs)), jobs
    in_doubt = {p: c for p, cs in rig.codes(run).items() for c in cs if c in checker.IN_DOUBT}
    assert not in_doubt, in_doubt
    rig.prove(run)


def test_an_execution_host_crash_lets_the_policy_decide(rig: Rig) -> None:
    run = rig.enter()
    rig.wait_all_running(run, hosts={"xh1", "xh2"})
    lost = {p for p, j in rig.jobs(run).items() if j["exec_host"] == "xh2"}
    rig.xh.crash("xh2")
    try:
        jobs = rig.wait_ended(run, timeout=TIMEOUT + 240)
    finally:
        rig.xh.boot("xh2")
    codes = rig.codes(run)
    for path, job in jobs.items():
        if path in lost:
            # its supervisor died with the host: in doubt, its policy decided (fail:
            # killed, docs/engine.md's recovery table)
            assert job["status"] == "killed", (path, job)
            assert "exec-host-lost" in codes[path], (path, codes[path])
        else:
            assert job["exit_code"] == expected_codes([path])[path], (path, job)
            assert not [c for c in codes[path] if c in checker.IN_DOUBT], (path, codes[path])
    # the lost jobs wrote a start and no end; nothing ran twice
    starts = rig.started_lines(run)
    assert len(starts) == JOBS and len({s.run_id for s in starts}) == JOBS
    led = checker.read_ledger(Path(rig.ledger).read_text())
    ended = {e.unit for e in led.ends if e.jobnet_run == run}
    assert not ended & lost


def test_a_former_owner_s_epoch_is_refused_by_every_execution_host(rig: Rig) -> None:
    """What a cut-off former owner would send once the new owner has reached the
    execution hosts: the protocol's hello with its older epoch, over ssh with lh1's own
    key from a node, is refused (AJS3-E333) and nothing of it can start."""
    epochs = [int(r[0]) for r in rig.query("SELECT epoch FROM epochs ORDER BY epoch")]
    assert len(epochs) >= 2, "the node crash test raised the epoch"
    node = rig.where()
    rid = "r" + "0" * 19 + "1"
    for name in rig.xh.names():
        requests = [
            {"op": "hello", "version": protocol.VERSION, "lhost": LH, "epoch": epochs[-2]},
            {"op": "start", "run_id": rid, "argv": ["/bin/true"], "env": {}, "cwd": "/"},
        ]
        proc = rig.lab.exec(
            node,
            [
                "ssh",
                "-i",
                str(rig.xh.key(LH)),
                "-o",
                f"UserKnownHostsFile={rig.xh.known_hosts}",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                f"root@{rig.xh.addr(name)}",
                "serve",
            ],
            input="".join(json.dumps(r) + "\n" for r in requests),
            timeout=60,
        )
        answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        assert answers and answers[0]["ok"] is False, (name, proc.stdout, proc.stderr)
        assert answers[0]["code"] == "AJS3-E333", (name, answers)
        assert not rig.xh.jobdir(name, LH, rid).exists()
