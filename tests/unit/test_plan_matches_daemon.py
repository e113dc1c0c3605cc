"""`ajs3 plan` and the daemon agree: the runs the daemon's timetable registers, waking
at arbitrary moments, are exactly the forecast's runs (hypothesis, real SQLite)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_schedule_properties import ZONES, jobnet, rules  # type: ignore[import-not-found]

from ajs3.definitions.units import DefinitionSet, Overlap
from ajs3.engine.scheduler import Scheduler
from ajs3.journal.store import Journal
from ajs3.schedule import forecast
from ajs3.settings import Settings

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

T0 = datetime(2027, 3, 20, tzinfo=UTC).timestamp()  # spans the spring DST changes


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    rule_list=st.lists(rules(), min_size=1, max_size=2),
    wakes=st.lists(st.floats(60, 3 * 86400), min_size=1, max_size=12),
)
def test_the_daemon_registers_exactly_the_forecast(zone: str, rule_list: list, wakes: list) -> None:
    unit, defs = jobnet(zone, rule_list)
    # Whether an earlier run is still active is a fact of run time that a forecast
    # cannot know; with runs allowed in parallel, every due run must be registered.
    assert unit.schedule is not None
    unit = replace(
        unit, schedule=replace(unit.schedule, overlap=Overlap.PARALLEL, max_parallel=10**6)
    )
    defs = DefinitionSet(jobnets={"/n": unit})
    end = T0 + 14 * 86400
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.open(Path(tmp))
        try:
            clock = [T0]
            sched = Scheduler(
                journal, Settings(lhost="t", datadir=Path(tmp)), clock=lambda: clock[0]
            )
            sched.apply_definitions(defs, ["test"])
            sched.start_timetable(T0)
            # the daemon wakes when it likes (its own next_due, or late): any moments
            for moment in sorted({T0 + w for w in wakes} | {end}):
                clock[0] = moment
                sched.register_due(moment)
            registered = sorted(r.scheduled_at for r in journal.jobnet_runs(limit=10**6))
        finally:
            journal.close()
    # the daemon's last wake at `end` takes runs due at `end` too; plan's --to excludes it
    planned = [
        r.due
        for r in forecast(
            defs, datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(end + 60, UTC)
        )
    ]
    # the first instant belongs to the start's catch-up, not to a wake-up
    planned = [t for t in planned if t > T0]
    assert registered == [t for t in planned if t <= end]
