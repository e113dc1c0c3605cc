"""What `ajs3 chgstat` may set from each status (pure: the table and the settable list)."""

from __future__ import annotations

from ajs3.engine.chgstat import SETTABLE, allowed_from
from ajs3.model import TRANSITIONS, Status


def test_chgstat_never_goes_beyond_the_transition_table() -> None:
    for old in Status:
        for new in allowed_from(old):
            assert new in TRANSITIONS[old] and new in SETTABLE


def test_what_an_operator_may_set_from_the_usual_statuses() -> None:
    assert allowed_from(Status.ENDED_ABNORMALLY) == [Status.ENDED_NORMALLY, Status.ENDED_WARNING]
    assert allowed_from(Status.ENDED_NORMALLY) == [Status.ENDED_WARNING, Status.ENDED_ABNORMALLY]
    assert allowed_from(Status.WAITING) == [
        Status.HELD,
        Status.ENDED_NORMALLY,
        Status.NOT_EXECUTED,
    ]
    assert allowed_from(Status.UNKNOWN) == [Status.ENDED_NORMALLY, Status.ENDED_ABNORMALLY]
    # a killed job, one that never started or was not executed: only a rerun runs it
    for status in (Status.KILLED, Status.FAILED_TO_START, Status.NOT_EXECUTED):
        assert allowed_from(status) == []
    assert Status.RUNNING not in SETTABLE and Status.WAITING not in SETTABLE
