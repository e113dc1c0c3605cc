"""The failover proof (issue 5): after a failover no job is lost and none runs twice
unless its definition says it may.

The workload (workload.py) keeps entering a jobnet with every recovery policy on both
logical hosts, through `ajs3 entry` on whichever node runs each; every job writes its
run id, attempt, epoch and node to the shared ledger. Each scenario takes nodes or
daemons down while jobs run, releases the `unknown` units the way an operator would,
and runs the checker (checker.py) on the ledger and the live journal. The last test
drains the workload and checks that every run ended.

Figures (seconds after the kill, cut, move or daemon kill): fencing done at the power
switch, logical host started on the survivor (crm_mon), first job started there (the
ledger). Per scenario median and worst; into the "cluster lab timings" summary and
$AJS3_LAB_TIMINGS. AJS3_LAB_FAILOVERS sets the soak's rounds (default 20).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import checker
import pytest
import workload
from lab import HERE, LEDGER_DIR, MOUNT_ROOT, PYTHON, TIMINGS, Lab, LabError, wait_until

pytestmark = pytest.mark.cluster

AJS3 = "/opt/ajs3/venv/bin/ajs3"
LHOSTS = ("lh1", "lh2")
ALL_POLICIES = set(workload.POLICIES)
QUERY_PY = """
import json, sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
print(json.dumps(list(c.execute(sys.argv[2], json.loads(sys.argv[3])))))
"""
# Scenario -> figure -> seconds of every occurrence.
FIGURES: dict[str, dict[str, list[float]]] = {}


def record(scenario: str, **seconds: float | None) -> None:
    for name, value in seconds.items():
        if value is not None:
            FIGURES.setdefault(scenario, {}).setdefault(name, []).append(value)
    print(
        f"FIGURES {scenario}: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items() if v is not None)
    )


def publish(scenario: str) -> None:
    """Median and worst of a scenario's figures, into the run's timings summary."""
    for name, values in FIGURES.get(scenario, {}).items():
        TIMINGS.append((f"failover {scenario}: {name}, median", statistics.median(values)))
        TIMINGS.append((f"failover {scenario}: {name}, worst", max(values)))


@dataclass
class Outage:
    scenario: str
    lhost: str
    how: str
    t0: float
    victim: str
    survivor: str
    fenced_after: float | None
    ready_after: float | None
    first_job_after: float | None
    epoch_after: float | None
    epoch: int


@dataclass
class LabWorkload:
    """The workload on the lab, and what the scenarios need to see of it."""

    lab: Lab
    driver: workload.Driver = field(init=False)
    outages: list[Outage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger_dir = self.lab.state_dir / "ledger"
        self.driver = workload.Driver(
            LHOSTS,
            self.ledger_dir,
            locate=self.locate,
            run=lambda node, argv: self.lab.exec(node, argv, timeout=30),
            period=2.5,
            ajs3=AJS3,
        )

    # ---- where things are

    def locate(self, lh: str) -> str | None:
        """Where lh runs, as any node that is in the cluster sees it (a node that has
        just rebooted answers crm_mon with nothing until it has joined)."""
        for viewpoint in self.lab.running_nodes():
            try:
                where = self.lab.group_location(lh, viewpoint)
            except (LabError, IndexError, ET.ParseError, subprocess.TimeoutExpired):
                continue  # the cluster is changing under us
            if where:
                return where
        return None

    def _node(self, lh: str, node: str | None) -> str:
        node = node or self.locate(lh)
        if node is None:
            raise LabError(f"{lh} is not running")
        return node

    # SQLite resolves /proc/PID/root to "/", so a node's journal can not be opened from
    # the host through it: it is read inside the node (read-only), with the host's
    # interpreter and this very module (the host's file system is the nodes').
    def query(
        self, lh: str, sql: str, args: tuple[Any, ...] = (), node: str | None = None
    ) -> list[tuple[Any, ...]]:
        node = self._node(lh, node)
        proc = self.lab.exec(
            node,
            [
                PYTHON,
                "-S",
                "-c",
                QUERY_PY,
                f"{MOUNT_ROOT}/{lh}/journal.db",
                sql,
                json.dumps(list(args)),
            ],
            timeout=60,
        )
        if proc.returncode != 0:
            raise LabError(f"journal query on {node} failed: {proc.stderr.strip()[-300:]}")
        return [tuple(r) for r in json.loads(proc.stdout)]

    def journal(self, lh: str, node: str | None = None) -> checker.Journal:
        node = self._node(lh, node)
        proc = self.lab.exec(
            node,
            [
                PYTHON,
                str(HERE / "checker.py"),
                "--dump",
                "--journal",
                f"{MOUNT_ROOT}/{lh}/journal.db",
            ],
            timeout=120,
        )
        if proc.returncode != 0:
            raise LabError(f"journal dump on {node} failed: {proc.stderr.strip()[-300:]}")
        return checker.Journal.from_json(json.loads(proc.stdout))

    def notified(self, lh: str) -> list[dict[str, Any]]:
        """The events lh's notification route delivered so far (at least once each)."""
        p = self.ledger_dir / f"{lh}.events"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    def ledger_text(self, lh: str) -> str:
        p = Path(workload.ledger_path(self.ledger_dir, lh))
        return p.read_text() if p.exists() else ""

    # ---- set-up

    def install(self) -> None:
        for lh in LHOSTS:
            node = self._node(lh, None)
            d = f"{MOUNT_ROOT}/{lh}/definitions"
            self.lab.exec(
                node,
                ["sh", "-c", f"mkdir -p {d} && cat > {d}/{workload.DEFS_FILE}"],
                input=workload.definitions_text(lh, LEDGER_DIR),
                check=True,
            )
            # The workload's jobs append to a root-owned ledger outside the nodes: they
            # run as root, which a logical host allows only when its settings say so.
            # ... and a notification route that appends the events of jobs decided
            # after a failover to a file beside the ledger (issue 15: the new owner
            # delivers them); it takes effect at the logical host's next start.
            events = f"{LEDGER_DIR}/{lh}.events"
            # The checker proves every ledger line against the journal, so nothing is
            # purged (keep: null): the soak enters more runs than the default 99 kept,
            # and retention took runs 1-3 from under the checker once (a CI run).
            settings = {
                "allow_root_jobs": True,
                "keep": None,
                "notify": [
                    {
                        "name": "ledger",
                        "kind": "command",
                        "command": ["/bin/sh", "-c", f"{{ cat; echo; }} >> {events}"],
                        "user": "root",
                        "events": ["unit_killed", "unit_unknown"],
                    }
                ],
            }
            self.lab.exec(
                node,
                ["sh", "-c", f"cat > {MOUNT_ROOT}/{lh}/ajs3.yaml"],
                input=json.dumps(settings) + "\n",
                check=True,
            )
            self.lab.exec(node, [AJS3, "define", "-h", lh], check=True)

    # ---- waiting for the right moment

    def running_jobs(self, lh: str) -> list[str]:
        return [
            r[0]
            for r in self.query(
                lh, "SELECT path FROM unit_runs WHERE kind='job' AND status='running'"
            )
        ]

    def wait_running(
        self, lh: str, policies: set[str] = ALL_POLICIES, timeout: float = 30
    ) -> list[str]:
        """Until the long job of each given policy is running on lh."""

        def ready() -> list[str] | None:
            try:
                paths = self.running_jobs(lh)
            except LabError:
                return None
            have = {p.split("/")[-2] for p in paths if p.endswith("/long")}
            return paths if policies <= have else None

        return wait_until(ready, timeout, 0.3, f"long jobs {sorted(policies)} running on {lh}")

    def epoch(self, lh: str, node: str | None = None) -> tuple[int, float]:
        (row,) = self.query(
            lh, "SELECT epoch, started_at FROM epochs ORDER BY epoch DESC LIMIT 1", node=node
        )
        return int(row[0]), float(row[1])

    def first_start(self, lh: str, after: float, node: str, timeout: float = 30) -> float | None:
        """When the first job started on node after `after` (the ledger's clock)."""

        def found() -> float | None:
            led = checker.read_ledger(self.ledger_text(lh))
            ts = [s.time for s in led.starts if s.node == node and s.time > after]
            return min(ts) if ts else None

        try:
            return wait_until(found, timeout, 0.2, f"a job to start on {node}")
        except LabError:
            return None

    # ---- operator actions

    def release_unknown(self, lh: str) -> int:
        """Decide every `unknown` unit as an operator would (after checking the job's
        outcome): `ajs3 release --as normal`. Returns how many."""
        node = self.locate(lh)
        if node is None:
            return 0
        rows = self.query(
            lh, "SELECT jobnet_run, path FROM unit_runs WHERE status='unknown'", node=node
        )
        for run, path in rows:
            workload.append(self.ledger_dir, lh, "release", lh, run, path, "normal")
            self.lab.exec(
                node,
                [AJS3, "release", "-h", lh, path, "--run", str(run), "--as", "normal"],
                check=True,
            )
        return len(rows)

    # ---- outages

    def failover(self, scenario: str, lh: str, how: str) -> Outage:
        before = self.epoch(lh)[0]
        fo = self.lab.failover(lh, how)
        t0 = fo.started_at - fo.started_after
        workload.append(self.ledger_dir, lh, "failover", lh, fo.victim, how)
        return self.settle_outage(
            scenario, lh, how, t0, fo.victim, fo.survivor, fo.fenced_after, fo.started_after, before
        )

    def settle_outage(
        self,
        scenario: str,
        lh: str,
        how: str,
        t0: float,
        victim: str,
        survivor: str,
        fenced_after: float | None,
        ready_after: float | None,
        epoch_before: int,
    ) -> Outage:
        self.driver.forget_locations()
        epoch, started = wait_until(
            lambda: (e := self.epoch(lh, survivor))[0] > epoch_before and e,
            60,
            0.2,
            f"a new epoch of {lh}",
        )
        first = self.first_start(lh, t0, survivor)
        out = Outage(
            scenario,
            lh,
            how,
            t0,
            victim,
            survivor,
            fenced_after,
            ready_after,
            None if first is None else first - t0,
            started - t0,
            epoch,
        )
        record(
            scenario,
            **{
                "-> fenced": fenced_after,
                "-> logical host started": ready_after,
                "-> daemon's new epoch": started - t0,
                "-> first job started": out.first_job_after,
            },
        )
        self.outages.append(out)
        return out

    # ---- the proof

    def check(self, lh: str, final: bool = False) -> checker.Report:
        read_at = time.time()
        led = checker.read_ledger(self.ledger_text(lh))  # the ledger first: see checker.py
        journal = self.journal(lh)
        rep = checker.check(led, journal, lhost=lh, final=final, ledger_read_at=read_at)
        print(rep.text())
        return rep

    def in_doubt_since(self, lh: str, epoch: int) -> dict[str, str]:
        """Unit path -> new status of every in-doubt decision made by epoch."""
        rows = self.query(
            lh,
            "SELECT u.path, e.new, e.code FROM events e JOIN unit_runs u "
            "ON u.id = e.unit_run WHERE e.epoch >= ? AND e.old='running'",
            (epoch,),
        )
        return {p: new for p, new, code in rows if code in checker.IN_DOUBT}


def assert_clean(rep: checker.Report) -> None:
    assert rep.ok, rep.text()


def policies_of(paths: dict[str, str]) -> set[str]:
    return {p.split("/")[-2] for p in paths if p.endswith("/long")}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def wl(lab: Lab) -> Iterator[LabWorkload]:
    if not lab.app.startswith("ocf:ajs3:ajs3"):
        pytest.skip(f"the lab runs {lab.app!r}; the failover proof needs ocf:ajs3:ajs3")
    lab.wait_cluster(timeout=120)
    lab.wait_groups(timeout=120)
    w = LabWorkload(lab)
    w.install()
    w.driver.start()
    try:
        yield w
    finally:
        w.driver.stop()
        for scenario in FIGURES:
            publish(scenario)
        print(
            "driver failures (expected while a logical host moves):",
            len(w.driver.failures),
            w.driver.failures[-5:],
        )


@pytest.fixture
def busy(settled: Lab, wl: LabWorkload) -> LabWorkload:
    """Every node up, both logical hosts running, the workload going."""
    wl.driver.forget_locations()
    wl.driver.resume()
    return wl


# --------------------------------------------------------------------------- scenarios


def test_node_crash_with_jobs_running(busy: LabWorkload) -> None:
    w = busy
    w.wait_running("lh1")
    out = w.failover("node crash", "lh1", "kill")
    decided = w.in_doubt_since("lh1", out.epoch)
    # every policy met a job in doubt, and did what it says
    assert policies_of(decided) == ALL_POLICIES, decided
    assert decided[f"{workload.ROOT}/fail/long"] == "killed"
    assert decided[f"{workload.ROOT}/unknown/long"] == "unknown"
    assert decided[f"{workload.ROOT}/rerun/long"] == "waiting"
    # the new owner delivers the in-doubt decisions to the notification route, as its own
    want = {
        (f"{workload.ROOT}/fail/long", "unit_killed"),
        (f"{workload.ROOT}/unknown/long", "unit_unknown"),
    }

    def delivered() -> bool:
        got = {(e["unit"], e["kind"]) for e in w.notified("lh1") if e["epoch"] == out.epoch}
        return want <= got

    wait_until(delivered, 60, 0.5, "the in-doubt events of the new owner")
    assert w.release_unknown("lh1") >= 1
    assert_clean(w.check("lh1"))
    assert out.fenced_after is not None and out.fenced_after <= out.ready_after + 0.5
    assert out.first_job_after is not None


def test_daemon_crash_restarts_in_place_and_readopts(busy: LabWorkload) -> None:
    w, lab = busy, busy.lab
    lh = "lh2"
    running = w.wait_running(lh)
    node = w.locate(lh)
    assert node
    epoch_before = w.epoch(lh)[0]
    pid = json.loads(
        Path(f"/proc/{lab.node_pid(node)}/root/run/ajs3/{lh}/daemon.json").read_text()
    )["pid"]
    t0 = time.time()
    lab.exec(node, ["kill", "-9", str(pid)], check=True)
    # Pacemaker's monitor notices, stops and starts it on the same node: no fencing
    out = w.settle_outage(
        "daemon crash", lh, "kill -9 daemon", t0, node, node, None, None, epoch_before
    )
    assert lab.wait_groups(timeout=60)[lh] == node
    assert not [e for e in lab.pdu_log() if e["time"] >= t0], "nobody was fenced"
    # nothing was in doubt: the jobs kept running and were re-adopted with their ends
    assert w.in_doubt_since(lh, out.epoch) == {}
    led = checker.read_ledger(w.ledger_text(lh))
    adopted = [e for e in led.ends if e.epoch == epoch_before and e.time > t0]
    assert adopted, f"no job of epoch {epoch_before} ended after the kill ({running})"
    for e in adopted:
        (status, code) = w.query(
            lh, "SELECT status, exit_code FROM unit_runs WHERE run_id=?", (e.run_id,)
        )[0]
        if status != "running":
            assert (status, code) == ("ended_normally", 0), (e, status, code)
    assert_clean(w.check(lh))


def test_planned_switchover_fails_nothing(busy: LabWorkload) -> None:
    w, lab = busy, busy.lab
    lh = "lh1"
    w.wait_running(lh)
    src = w.locate(lh)
    other = w.locate("lh2")
    dst = next(n for n in lab.node_names() if n not in (src, other))
    epoch_before = w.epoch(lh)[0]
    t0 = time.time()
    move = lab.exec(dst, ["pcs", "resource", "move", lh, dst], timeout=180)
    assert move.returncode == 0, move.stdout + move.stderr
    lab.wait_groups(timeout=120, where={lh: dst})
    ready = time.time() - t0
    out = w.settle_outage(
        "switchover", lh, "pcs resource move", t0, src or "?", dst, None, ready, epoch_before
    )
    assert not [e for e in lab.pdu_log() if e["time"] >= t0], "nobody was fenced"
    # Jobs only: a jobnet that ends abnormally after t0 because a job of an earlier
    # scenario was killed in doubt (policy fail) is that scenario's outcome. Seen once
    # (/fo/mix ended abnormally, no job event after t0), most likely when the daemon
    # crash before this test was noticed quickly and a `rerun` job that the node crash
    # restarted still ran at t0.
    bad = w.query(
        lh,
        "SELECT u.path, e.new, e.reason, u.jobnet_run FROM events e JOIN "
        "unit_runs u ON u.id = e.unit_run WHERE e.at >= ? AND u.kind = 'job' "
        "AND e.new IN ('killed', 'unknown', 'ended_abnormally', 'interrupted', "
        "'failed_to_start')",
        (t0,),
    )
    # what the whole run looked like, to tell the switchover from an earlier scenario
    runs = {
        r[3]: w.query(
            lh,
            "SELECT u.path, u.status, u.reason, u.epoch, e.at FROM "
            "unit_runs u LEFT JOIN events e ON e.unit_run = u.id AND "
            "e.new = u.status WHERE u.jobnet_run = ?",
            (r[3],),
        )
        for r in bad
    }
    assert bad == [], f"a planned switchover failed jobs: {bad} (t0 {t0}; runs: {runs})"
    assert w.in_doubt_since(lh, out.epoch) == {}
    assert_clean(w.check(lh))


def test_link_loss_of_the_active_node(busy: LabWorkload) -> None:
    w = busy
    w.wait_running("lh2")
    out = w.failover("link cut", "lh2", "cut")
    assert out.fenced_after is not None and out.fenced_after <= out.ready_after + 0.5
    assert policies_of(w.in_doubt_since("lh2", out.epoch)) == ALL_POLICIES
    w.release_unknown("lh2")
    # the checker's zombie and stale-epoch rules: the cut-off node, alive until fenced,
    # recorded nothing over the new owner
    assert_clean(w.check("lh2"))


def test_both_logical_hosts_on_one_node_then_it_crashes(busy: LabWorkload) -> None:
    w, lab = busy, busy.lab
    host = w.locate("lh2")
    assert host
    move = lab.exec(host, ["pcs", "resource", "move", "lh1", host], timeout=180)
    assert move.returncode == 0, move.stdout + move.stderr
    lab.wait_groups(timeout=120, where={"lh1": host, "lh2": host})
    w.driver.forget_locations()
    for lh in LHOSTS:
        assert_clean(w.check(lh))
        w.wait_running(lh, {"rerun", "judge"})
    before = {lh: w.epoch(lh)[0] for lh in LHOSTS}
    # host powered on again only once both have moved: as in Lab.failover, a host
    # back early from its fencing's reboot would get its groups back
    with lab.holding(host):
        t0 = lab.kill_node(host)
        where = {lh: lab.wait_moved(lh, host, 90) for lh in LHOSTS}
        ready = {lh: time.time() - t0 for lh in LHOSTS}
        fenced = wait_until(lambda: lab.fencing_done(host, t0), 60, 0.2, "the fencing")
    for lh in LHOSTS:
        workload.append(w.ledger_dir, lh, "failover", lh, host, "kill")
        w.settle_outage(
            "both on one node", lh, "kill", t0, host, where[lh], fenced - t0, ready[lh], before[lh]
        )
        assert fenced <= t0 + ready[lh] + 0.5
    for lh in LHOSTS:
        w.release_unknown(lh)
        assert_clean(w.check(lh))


def test_soak_of_consecutive_failovers_under_load(busy: LabWorkload) -> None:
    """AJS3_LAB_FAILOVERS (default 20) node crashes in a row, alternating lh1 and lh2
    (so the victims alternate between nodes), each with jobs running, each checked."""
    w, lab = busy, busy.lab
    rounds = int(os.environ.get("AJS3_LAB_FAILOVERS", "20"))
    victims = []
    for i in range(rounds):
        lh = LHOSTS[i % 2]
        lab.wait_cluster(timeout=120)  # the last victim rebooted and rejoined: quorum
        lab.wait_groups(timeout=120)
        w.wait_running(lh, {"rerun", "judge"}, timeout=30)
        out = w.failover("soak", lh, "kill")
        victims.append(out.victim)
        assert out.fenced_after is not None and out.fenced_after <= out.ready_after + 0.5
        for x in LHOSTS:
            w.release_unknown(x)
        rep = w.check(lh)
        assert_clean(rep)
        print(
            f"soak {i + 1}/{rounds}: {lh} {out.victim} -> {out.survivor}, fenced "
            f"{out.fenced_after:.2f} s, started {out.ready_after:.2f} s, first job "
            f"{out.first_job_after} s"
        )
    assert len(set(victims)) >= min(3, rounds), victims


def test_everything_is_accounted_for_at_the_end(busy: LabWorkload) -> None:
    """Stop entering, decide the unknowns, let every run end: the final check."""
    w = busy
    w.driver.pause()
    time.sleep(1)

    def drained() -> bool:
        for lh in LHOSTS:
            w.release_unknown(lh)
        left = sum(
            w.query(
                lh,
                "SELECT count(*) FROM unit_runs WHERE status NOT IN "
                f"({','.join(repr(s) for s in checker.FINAL)})",
            )[0][0]
            for lh in LHOSTS
        )
        return left == 0

    wait_until(drained, 120, 1.0, "every run to end")
    total = 0
    for lh in LHOSTS:
        rep = w.check(lh, final=True)
        assert_clean(rep)
        total += rep.summary["jobnet_runs"]
    entered = sum(len(v) for v in w.driver.entered.values())
    assert total >= entered > 0
    print(f"{entered} jobnet runs entered, {total} in the journals, {len(w.outages)} outages")
