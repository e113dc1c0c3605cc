"""Calendars, schedule rules, time zones, catch-up and forecasts (pure functions).

The daemon uses :func:`next_due` to sleep until the next due run, :func:`due_between`
to find what fell due, :func:`catch_up` at start, and :func:`overlap_action` when a
run is due while an earlier one is active. ``ajs3 plan`` uses :func:`forecast`.
"""

from ajs3.schedule.catchup import Decision, OverlapAction, catch_up, overlap_action
from ajs3.schedule.forecast import (
    Occurrence,
    PlannedRun,
    due_between,
    forecast,
    next_due,
    next_run,
    occurrence_details,
    occurrences,
)

__all__ = [
    "Decision",
    "Occurrence",
    "OverlapAction",
    "PlannedRun",
    "catch_up",
    "due_between",
    "forecast",
    "next_due",
    "next_run",
    "occurrence_details",
    "occurrences",
    "overlap_action",
]
