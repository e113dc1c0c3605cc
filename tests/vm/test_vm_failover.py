"""The failover test on the Vagrant lab's VMs: power off the node that holds lh1
(`virsh destroy`), SBD fences it, lh1 starts on a survivor, and the ledger its jobs
wrote proves that nothing was lost or run twice.

    vagrant/lab.sh failover        # after `vagrant/lab.sh vagrant up` (vagrant/README.md)

The workload is the cluster tier's (tests/cluster/workload.py: one jobnet per
recovery policy and a burst), with its ledger on lh1's own shared volume: VMs share
no disk but the iSCSI LUNs, and a powered-off VM loses its page cache, so each
ledger line is fsynced by the job that writes it (`durable`). The checker is the
cluster tier's too (tests/cluster/checker.py), with the journal read on the new
owner. Skipped unless $AJS3_VM_SSH_CONFIG (`vagrant ssh-config` of the lab) and
$AJS3_VM_VIRSH_URI (the lab's libvirtd) are set: vagrant/lab.sh sets both and runs
this inside the lab's network namespace.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import testinfra

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cluster"))
sys.path.insert(0, str(HERE.parent / "infra"))
import checker  # noqa: E402
import workload  # noqa: E402
from clusterinfo import read_cluster  # noqa: E402

SSH_CONFIG = os.environ.get("AJS3_VM_SSH_CONFIG", "")
VIRSH_URI = os.environ.get("AJS3_VM_VIRSH_URI", "")
pytestmark = pytest.mark.skipif(
    not (SSH_CONFIG and VIRSH_URI),
    reason="no VM lab: run `vagrant/lab.sh failover` (it sets AJS3_VM_SSH_CONFIG, "
    "AJS3_VM_VIRSH_URI)",
)

LH = "lh1"
DATADIR = f"/srv/ajs3/{LH}"
LEDGER_DIR = f"{DATADIR}/ledger"  # on lh1's volume: it moves with lh1
AJS3 = "/opt/ajs3/venv/bin/ajs3"
CHECKER = "/ajs3/tests/cluster/checker.py"  # the VMs' copy of the repository
#: under emulation a node's boot, fencing (msgwait 20 s, stonith-timeout 40 s) and
#: lh1's start on a survivor take minutes, not seconds
MOVE_TIMEOUT = 900.0
T = TypeVar("T")


def wait_for(what: str, timeout: float, probe: Callable[[], T | None], every: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = probe()
        except (AssertionError, RuntimeError, ValueError, subprocess.SubprocessError):
            got = None  # a node that is going away, a cluster that is changing
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def ssh_hosts() -> list[str]:
    names = []
    for line in Path(SSH_CONFIG).read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "Host" and words[1].startswith("node"):
            names.append(words[1])
    return names


def virsh(*args: str) -> str:
    proc = subprocess.run(
        ["virsh", "-q", "-c", VIRSH_URI, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"virsh {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


def domain_of(node: str) -> str:
    """vagrant-libvirt names a VM's domain <project>_<machine>."""
    (name,) = [d for d in virsh("list", "--name").split() if d.endswith(f"_{node}")]
    return name


class Nodes:
    """The cluster nodes over `vagrant ssh-config` (root through sudo)."""

    def __init__(self) -> None:
        self.names = ssh_hosts()
        self.hosts = {
            n: testinfra.get_host(f"ssh://{n}", ssh_config=SSH_CONFIG, sudo=True)
            for n in self.names
        }
        self.down: set[str] = set()

    def run(self, node: str, cmd: str, timeout: float = 120) -> str:
        out = self.hosts[node].run(f"timeout {timeout:.0f} sh -c {shlex.quote(cmd)}")
        assert out.rc == 0, f"{node}: {cmd[:200]!r} exit {out.rc}: {out.stderr.strip()[-500:]}"
        return str(out.stdout)

    def locate(self, lh: str) -> str | None:
        """Where lh's group is started, as the first answering node sees it."""
        for name in self.names:
            if name in self.down:
                continue
            try:
                return read_cluster(self.hosts[name]).group_node(lh)
            except Exception:  # a node that does not answer (yet)
                continue
        return None

    def write(self, node: str, path: str, text: str) -> None:
        b64 = base64.b64encode(text.encode()).decode()
        self.run(
            node,
            f"echo {b64} | base64 -d > {shlex.quote(path)}.new && "
            f"mv {shlex.quote(path)}.new {shlex.quote(path)}",
        )

    def append(self, node: str, *fields: object) -> None:
        """One line of the test's own in the ledger, fsynced (as the jobs write theirs)."""
        line = " ".join(str(f) for f in fields) + f" {time.time():.6f}"
        led = shlex.quote(workload.ledger_path(LEDGER_DIR, LH))
        self.run(node, f"echo {shlex.quote(line)} >> {led} && sync {led}")

    def query(self, node: str, sql: str) -> list[list[Any]]:
        py = (
            "import json, sqlite3, sys; "
            "c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=30); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall()))"
        )
        out = self.run(node, shlex.join(["python3", "-c", py, f"{DATADIR}/journal.db", sql]))
        return list(json.loads(out))


# Settings the workload needs: its jobs write a root-owned ledger (so they run as
# root), and the checker proves every ledger line against the journal (nothing purged).
SETTINGS_PY = """
import sys, yaml
path = sys.argv[1]
try:
    with open(path) as f:
        s = yaml.safe_load(f) or {}
except FileNotFoundError:
    s = {}
s.update(allow_root_jobs=True, keep=None)
with open(path + ".new", "w") as f:
    yaml.safe_dump(s, f)
"""


def install_workload(nodes: Nodes, owner: str) -> None:
    nodes.run(owner, f"mkdir -p {LEDGER_DIR} {DATADIR}/definitions && chmod 0755 {LEDGER_DIR}")
    nodes.write(owner, "/tmp/ajs3-settings.py", SETTINGS_PY)
    yml = f"{DATADIR}/ajs3.yaml"
    nodes.run(
        owner,
        f"/opt/ajs3/venv/bin/python /tmp/ajs3-settings.py {yml} && mv {yml}.new {yml}",
    )
    text = workload.definitions_text(LH, LEDGER_DIR, long_s=90, short_s=2, durable=True)
    nodes.write(owner, f"{DATADIR}/definitions/{workload.DEFS_FILE}", text)
    nodes.run(owner, f"{AJS3} define -h {LH}")


def release_unknown(nodes: Nodes, owner: str) -> int:
    rows = nodes.query(owner, "SELECT jobnet_run, path FROM unit_runs WHERE status='unknown'")
    for run, path in rows:
        nodes.append(owner, "release", LH, run, path, "normal")
        nodes.run(owner, f"{AJS3} release -h {LH} {path} --run {run} --as normal")
    return len(rows)


def test_power_off_of_lh1s_node_loses_nothing_and_runs_nothing_twice() -> None:
    nodes = Nodes()
    assert len(nodes.names) >= 2, f"cluster nodes in {SSH_CONFIG}: {nodes.names}"
    owner = wait_for(f"{LH} started", 600, lambda: nodes.locate(LH))
    install_workload(nodes, owner)

    runs = []
    for _ in range(2):
        out = nodes.run(owner, f"{AJS3} entry -h {LH} --json {workload.ROOT}")
        run = int(json.loads(out)["run"])
        nodes.append(owner, "entry", LH, workload.ROOT, run, owner)
        runs.append(run)
    ledger = workload.ledger_path(LEDGER_DIR, LH)

    def long_jobs_started() -> bool:
        out = nodes.run(owner, f"grep -c '^start .*/long ' {ledger} || true")
        return int(out.strip() or 0) >= 2 * len(workload.POLICIES)

    wait_for("every long job to start", 600, long_jobs_started)

    # The power cord: no shutdown, no page cache written back, no goodbye to corosync.
    t0 = time.monotonic()
    virsh("destroy", domain_of(owner))
    nodes.down.add(owner)

    def moved_away() -> str | None:
        # the survivors go on showing lh1 on the dead node until they miss it
        where = nodes.locate(LH)
        return where if where != owner else None

    survivor = wait_for(f"{LH} to start on a survivor", MOVE_TIMEOUT, moved_away, every=5)
    moved = time.monotonic() - t0
    nodes.append(survivor, "failover", LH, owner, "virsh-destroy")
    fenced = nodes.run(survivor, f"stonith_admin --history {owner} || true")
    print(f"{LH}: {owner} powered off, started on {survivor} after {moved:.0f} s; {fenced}")

    final = ",".join(repr(s) for s in sorted(checker.FINAL))

    def drained() -> bool:
        release_unknown(nodes, survivor)
        left = nodes.query(
            survivor, f"SELECT count(*) FROM unit_runs WHERE status NOT IN ({final})"
        )
        return int(left[0][0]) == 0

    wait_for("every run to end", 900, drained, every=10)

    read_at = time.time()
    led = checker.read_ledger(nodes.hosts[survivor].file(ledger).content_string)
    dump = nodes.run(survivor, f"python3 {CHECKER} --dump --journal {DATADIR}/journal.db")
    journal = checker.Journal.from_json(json.loads(dump))
    rep = checker.check(led, journal, lhost=LH, final=True, ledger_read_at=read_at)
    print(rep.text())
    assert rep.ok, rep.text()
    assert rep.summary["jobnet_runs"] >= len(runs)
    doubted = nodes.query(
        survivor,
        "SELECT count(*) FROM events WHERE code IN "
        f"({','.join(repr(c) for c in sorted(checker.IN_DOUBT))})",
    )
    print(f"{len(runs)} jobnet runs, {int(doubted[0][0])} in-doubt decisions after the failover")
