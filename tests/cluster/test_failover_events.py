"""Start conditions through a failover (issue 14, ADR 0023): a file that arrives while
the logical host runs nowhere (stopped on one node, not yet started on another) starts
its jobnet exactly once on the new owner, and a file that fired before does not fire
again.

The watched directory is beside the ledger (LEDGER_DIR, bind-mounted into every node
from the lab's state directory), so the host writes files that every node sees. The
logical host is stopped with `pcs resource disable`, banned from the node it ran on,
and enabled again: the file is written in between. The jobnet's job appends the path
it was given (AJS3_FILE_PATH) to a log beside the ledger; the journal's run values say
the same. Nothing is timed: "not twice" is shown by a sentinel file whose run comes
next, with nothing between.

Runs in the cluster tier, as root (it builds the lab, or uses one up with
AJS3_LAB_REUSE=1): `pytest tests/cluster/test_failover_events.py`.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import LEDGER_DIR, MOUNT_ROOT, PYTHON, Lab, LabError, wait_until

pytestmark = pytest.mark.cluster

AJS3 = "/opt/ajs3/venv/bin/ajs3"
LH = "lh1"
DEFS_FILE = "events-failover.yaml"
INBOX = "inbox-events-lh1"
QUERY_PY = """
import json, sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
print(json.dumps(list(c.execute(sys.argv[2], json.loads(sys.argv[3])))))
"""


def definitions() -> str:
    inbox, log = f"{LEDGER_DIR}/{INBOX}", f"{LEDGER_DIR}/{INBOX}.log"
    return textwrap.dedent(
        f"""\
        group: /fe
        jobnets:
          - name: intake
            start_condition:
              watches:
                - path: {inbox}/*.csv
                  condition: created
                  stable_for: 1s
            units:
              - name: take
                command: [/bin/sh, -c, 'echo "$1" >> {log}', sh, "${{AJS3_FILE_PATH}}"]
        """
    )


class Events:
    """lh1 with the start condition defined, driven from the host."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.inbox = lab.state_dir / "ledger" / INBOX
        self.log = lab.state_dir / "ledger" / f"{INBOX}.log"

    def where(self) -> str:
        node = self.lab.group_location(LH)
        if node is None:
            raise LabError(f"{LH} is not running")
        return node

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        proc = self.lab.exec(
            self.where(),
            [PYTHON, "-S", "-c", QUERY_PY, f"{MOUNT_ROOT}/{LH}/journal.db", sql, json.dumps(args)],
            timeout=60,
        )
        if proc.returncode != 0:
            raise LabError(f"journal query failed: {proc.stderr.strip()[-300:]}")
        return [tuple(r) for r in json.loads(proc.stdout)]

    def define(self, text: str | None) -> None:
        """Write (or, with None, remove) the definitions file and apply the directory."""
        node = self.where()
        target = f"{MOUNT_ROOT}/{LH}/definitions/{DEFS_FILE}"
        if text is None:
            self.lab.exec(node, ["rm", "-f", target], check=True)
        else:
            # the job appends to the ledger as root: the logical host must allow it
            # (the failover proof's workload writes the same setting)
            settings = f"{MOUNT_ROOT}/{LH}/ajs3.yaml"
            self.lab.exec(
                node,
                ["sh", "-c", f"test -e {settings} || echo 'allow_root_jobs: true' > {settings}"],
                check=True,
            )
            self.lab.exec(
                node,
                ["sh", "-c", f"mkdir -p {MOUNT_ROOT}/{LH}/definitions && cat > {target}"],
                input=text,
                check=True,
            )
        self.lab.exec(node, [AJS3, "define", "-h", LH], check=True)

    def stopped(self) -> bool:
        """Every resource of the logical host's group is stopped on every node."""
        try:
            return all(not nodes for nodes in self.lab.group_nodes(LH).values())
        except (LabError, ET.ParseError, subprocess.TimeoutExpired):
            return False  # the cluster is changing under us

    def drop(self, name: str) -> None:
        """A file arrives whole (written aside, renamed into the pattern)."""
        part = self.inbox / f".{name}.part"
        part.write_text(f"{name}\n")
        part.rename(self.inbox / name)

    def logged(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_logged(self, count: int, timeout: float = 120) -> list[str]:
        got: list[str] = wait_until(
            lambda: len(lines := self.logged()) >= count and lines,
            timeout,
            0.3,
            f"{count} run(s) of /fe/intake to log their file",
        )
        return got

    def paths_of_runs(self) -> list[str]:
        rows = self.query(
            "SELECT v.value FROM jobnet_runs r JOIN run_vars v ON v.jobnet_run = r.id "
            "WHERE r.jobnet = '/fe/intake' AND v.name = 'AJS3_FILE_PATH' ORDER BY r.id"
        )
        return [str(r[0]) for r in rows]

    def pcs(self, *args: str) -> None:
        node = next(n for n in self.lab.running_nodes())
        proc = self.lab.exec(node, ["pcs", *args], timeout=240)
        assert proc.returncode == 0, f"pcs {' '.join(args)}: {proc.stdout}{proc.stderr}"


@pytest.fixture
def events(settled: Lab) -> Iterator[Events]:
    if not settled.app.startswith("ocf:ajs3:ajs3"):
        pytest.skip(f"the lab runs {settled.app!r}; this test needs ocf:ajs3:ajs3")
    ev = Events(settled)
    # fail counts an earlier test left would keep lh1 off the nodes this test needs
    ev.pcs("resource", "cleanup", LH)
    settled.wait_groups(timeout=180)
    ev.inbox.mkdir(parents=True, exist_ok=True)
    ev.inbox.chmod(0o1777)
    for old in ev.inbox.iterdir():
        old.unlink()
    ev.log.unlink(missing_ok=True)
    ev.define(definitions())
    wait_until(
        lambda: ev.query("SELECT count(*) FROM watches WHERE watch LIKE 'cond:/fe/%'")[0][0],
        60,
        0.3,
        "the start condition's watch to begin",
    )
    try:
        yield ev
    finally:
        ev.pcs("resource", "clear", LH)
        ev.pcs("resource", "enable", LH, "--wait=180")
        settled.wait_groups(timeout=180)
        ev.define(None)


def test_a_file_arriving_while_the_logical_host_is_down_fires_once(events: Events) -> None:
    ev = events
    inbox = f"{LEDGER_DIR}/{INBOX}"
    ev.drop("before.csv")
    assert ev.wait_logged(1) == [f"{inbox}/before.csv"]
    source = ev.where()

    # down everywhere: stopped on its node, kept off it, not yet started elsewhere
    ev.pcs("resource", "disable", LH, "--wait=180")
    wait_until(ev.stopped, 120, 0.5, f"every resource of {LH} stopped")
    ev.pcs("resource", "ban", LH, source)
    ev.drop("while-down.csv")
    ev.pcs("resource", "enable", LH, "--wait=180")
    placed = ev.lab.wait_groups(timeout=180)
    assert placed[LH] != source

    # the new owner found the file nobody watched arrive: once
    assert ev.wait_logged(2) == [f"{inbox}/before.csv", f"{inbox}/while-down.csv"]
    # ... and neither it nor before.csv again: the sentinel's run comes next
    ev.drop("z-sentinel.csv")
    expected = [f"{inbox}/before.csv", f"{inbox}/while-down.csv", f"{inbox}/z-sentinel.csv"]
    assert ev.wait_logged(3) == expected
    assert ev.paths_of_runs() == expected
    assert Path(ev.log).read_text().count("while-down.csv") == 1
