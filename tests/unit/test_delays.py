"""``delay:`` of jobs and jobnets: what is read, what is refused, and the latest start
it gives a run (clock time on the run's day in its zone, or after its scheduled start)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ajs3.definitions.loader import load_text
from ajs3.definitions.units import Delay, Unit
from ajs3.engine.delays import start_deadline
from ajs3.errors import Code, DefinitionError


def defs(delay: str, where: str = "job") -> str:
    job_delay = f", delay: {delay}" if where == "job" else ""
    root_delay = f"\n    delay: {delay}" if where == "root" else ""
    return f"""
group: /d
jobnets:
  - name: n{root_delay}
    schedule: {{time_zone: Asia/Tokyo, rules: [{{at: '05:00'}}]}}
    units:
      - {{name: j, command: [/bin/true]{job_delay}}}
"""


def test_every_form_of_delay_is_read_and_kept_through_the_journal_form() -> None:
    cases = {
        "{start_by: '06:00'}": Delay(start_by_clock=360),
        "{start_by: '30:15', longest: 2h}": Delay(start_by_clock=30 * 60 + 15, longest=7200.0),
        "{start_by: '+30m'}": Delay(start_by_after=1800.0),
        "{longest: 90}": Delay(longest=90.0),
    }
    for text, want in cases.items():
        for where in ("job", "root"):
            loaded = load_text(defs(text, where), "d.yaml")
            root = loaded.jobnets["/d/n"]
            unit = root if where == "root" else root.units[0]
            assert unit.delay == want, (text, where)
            assert Unit.from_dict(root.to_dict()) == root


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("{start_by: '25:99'}", Code.BAD_VALUE, "'delay.start_by' of job 'j'"),
        ("{start_by: '48:00'}", Code.BAD_VALUE, "at most 47:59"),
        ("{start_by: '+soon'}", Code.BAD_VALUE, "duration like 30m"),
        ("{longest: 0}", Code.BAD_VALUE, "'delay.longest' of job 'j'"),
        ("{longest: -5}", Code.BAD_VALUE, "'delay.longest'"),
        ("{start_by: '06:00', lates: 1}", Code.UNKNOWN_KEY, "unknown key 'lates'"),
        ("{}", Code.MISSING_KEY, "neither 'start_by' nor 'longest'"),
        ("6h", Code.WRONG_TYPE, "'delay' of job 'j'"),
    ],
)
def test_a_bad_delay_is_refused_with_its_line(text: str, code: Code, words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(defs(text), "d.yaml")
    (problem,) = info.value.problems
    assert problem.code is code and words in problem.message, problem
    assert problem.file == "d.yaml" and problem.line == 7


def test_the_latest_start_of_a_run() -> None:
    root = load_text(defs("{start_by: '06:00'}"), "d.yaml").jobnets["/d/n"]
    tokyo = ZoneInfo("Asia/Tokyo")
    scheduled = datetime(2027, 1, 4, 5, 0, tzinfo=tokyo).timestamp()
    assert start_deadline(Delay(start_by_after=1800.0), root, scheduled) == scheduled + 1800
    six = start_deadline(Delay(start_by_clock=360), root, scheduled)
    assert six == datetime(2027, 1, 4, 6, 0, tzinfo=tokyo).timestamp()
    # 30:00 is 06:00 on the next day, on the day of the run in its zone (not UTC's)
    next_day = start_deadline(Delay(start_by_clock=30 * 60), root, scheduled)
    assert next_day == datetime(2027, 1, 5, 6, 0, tzinfo=tokyo).timestamp()
    assert datetime.fromtimestamp(scheduled, UTC).day == 3
    assert start_deadline(Delay(longest=5.0), root, scheduled) is None
