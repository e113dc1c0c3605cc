"""Fixtures for the cluster tier: one namespace lab shared by the whole session.

The lab lives in AJS3_LAB_TEST_STATE (default /tmp/ajs3-lab-test) with its own
namespace prefix, so it never collides with a lab started by hand from the CLI
(/tmp/ajs3-lab, prefix ajs3lab). A lab left over by an interrupted run is torn down
before a new one is built; the session ends with down() whatever happened.
If the nodes of a new lab do not form a cluster in time (Corosync and Pacemaker's own
start, before anything of ajs3 is configured), the session keeps their logs in a new
/tmp/ajs3-lab-unformed-* directory, says so, and builds the lab once more.
Set AJS3_LAB_KEEP_LOGS=DIR to keep the nodes' /var/log after the run, and
AJS3_LAB_REUSE=1 to run against a lab already up in AJS3_LAB_TEST_STATE and leave it
up (for working on the tests; test_lab's down tests then skip).

Order of the tier: test_lab.py's tests on the fresh lab first (they expect the groups
on their preferred nodes), then the failover proof and everything else, then
test_lab.py's down tests, which end the lab.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import TIMINGS, ClusterNotFormed, Lab, unavailable

STATE = Path(os.environ.get("AJS3_LAB_TEST_STATE", "/tmp/ajs3-lab-test"))
REUSE = os.environ.get("AJS3_LAB_REUSE") == "1"
#: AJS3_LAB_TEST_PREFIX: another prefix (and AJS3_LAB_TEST_STATE another directory) for
#: a second test session beside a first on one machine
PREFIX = os.environ.get("AJS3_LAB_TEST_PREFIX", "ajs3t")


def lab_unavailable() -> str | None:
    """Why the lab can not run here, or None."""
    app = Lab(STATE, prefix=PREFIX).app
    return unavailable("the cluster lab", needs_agent=app.startswith("ocf:ajs3:"))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    if REUSE and (STATE / "state.json").exists():
        yield Lab(STATE)
        return
    Lab(STATE, prefix=PREFIX).down()  # whatever an interrupted run left behind
    the_lab = Lab(STATE, prefix=PREFIX)
    try:
        try:
            the_lab.up()
        except ClusterNotFormed as exc:
            # Not ajs3's part: the cluster stack's start on a busy machine. Once more,
            # with the evidence kept and said.
            kept = Path(tempfile.mkdtemp(prefix="ajs3-lab-unformed-", dir="/tmp"))
            the_lab.down(keep_logs=kept)
            warnings.warn(
                f"{exc}; the nodes' logs are in {kept}; building the lab again", stacklevel=2
            )
            the_lab = Lab(STATE, prefix=PREFIX)
            the_lab.up()
        yield the_lab
    finally:
        keep = os.environ.get("AJS3_LAB_KEEP_LOGS")
        the_lab.down(keep_logs=Path(keep) if keep else None)


@pytest.fixture
def settled(lab: Lab) -> Lab:
    """The lab with every node powered on and online and both logical hosts running."""
    for n in lab.node_names():
        if not lab.is_on(n):
            lab.power_on(n)
        if not lab.link_up(n):
            lab.restore_link(n)
    lab.wait_cluster(timeout=120)
    lab.wait_groups(timeout=120)
    return lab


HERE = Path(__file__).resolve().parent


def _tier_order(item: pytest.Item) -> int:
    path = Path(str(item.fspath))
    if path.name == "test_lab.py":
        return 2 if item.name.startswith("test_down") else 0
    return 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Reorder only this tier's items, in the places they already hold (other tiers run
    # as before); sort is stable, so file order is kept within each part.
    places = [i for i, it in enumerate(items) if Path(str(it.fspath)).parent == HERE]
    mine = sorted((items[i] for i in places), key=_tier_order)
    for i, it in zip(places, mine, strict=True):
        items[i] = it
    if REUSE:
        skip = pytest.mark.skip(reason="AJS3_LAB_REUSE=1: the lab stays up")
        for it in mine:
            if _tier_order(it) == 2:
                it.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("cluster lab timings")
    for name, seconds in TIMINGS:
        terminalreporter.write_line(f"{name}: {seconds:.2f} s")
    out = os.environ.get("AJS3_LAB_TIMINGS")
    if out:
        Path(out).write_text(json.dumps(TIMINGS, indent=1) + "\n")
