"""The typed tree of unit definitions, as the engine uses it.

Definitions are loaded from YAML by :mod:`ajs3.definitions.loader`, validated as a
whole, and stored in the journal as JSON (``to_dict``/``from_dict``), so that a run
always refers to the exact definitions it was registered with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ajs3.definitions.events import StartCondition, Watch
from ajs3.keep import Keep
from ajs3.model import Compare, RecoveryPolicy, UnitKind


class Period(StrEnum):
    """What ``every: N ...`` of a schedule rule counts."""

    DAY = "day"
    """Every N days from the rule's start date."""
    WEEK = "week"
    """Every N weeks from the week of the start date (on its weekday, or on ``weekdays``)."""
    MONTH = "month"
    """Every N months from the month of the start date."""


class ClosedDay(StrEnum):
    """What a rule does when the day it picks is a closed day of its calendar."""

    BEFORE = "before"
    """Run on the nearest open day before, at most ``shift_limit`` days earlier."""
    AFTER = "after"
    """Run on the nearest open day after, at most ``shift_limit`` days later."""
    CANCEL = "cancel"
    """Do not run on that day (the default, as JP1's "cancel")."""
    RUN = "run"
    """Run anyway, closed or not."""


class Overlap(StrEnum):
    """What happens when a run is due while an earlier run of the jobnet still runs."""

    SKIP = "skip"
    """The new run is not started (the default)."""
    QUEUE = "queue"
    """Keep one run waiting; it starts when the running one ends. A third is skipped."""
    PARALLEL = "parallel"
    """Start it beside the running ones, up to ``max_parallel`` runs at once."""


class CatchUp(StrEnum):
    """What a logical host does at start with runs that fell due while it was down."""

    SKIP = "skip"
    """Run none of them."""
    LATEST = "latest"
    """Run only the latest one that is within the window (the default)."""
    ALL = "all"
    """Run every one within the window, oldest first."""


class BaseMonth(StrEnum):
    """Which month a period that begins at the base day is named after (JP1's ``md``)."""

    THIS = "this"
    """The month the base day is in: base day 21, Jan 21..Feb 20 is January."""
    NEXT = "next"
    """The month after it: base day 21, Jan 21..Feb 20 is February."""


@dataclass(frozen=True)
class Calendar:
    """Open and closed days: a weekly pattern plus dated exceptions, the base time
    and the base day.

    A scheduling day ``D`` begins at ``base_time`` (minutes after midnight) on ``D``
    and ends at the base time of ``D + 1``. Dates are ISO text (``2027-01-04``).

    A calendar may leave days undefined: a weekday in neither ``open_weekdays`` nor
    ``closed_weekdays`` and not a listed date, or a base time or base day of None. A
    job group's calendar takes those from the calendar of the group above it (JP1's
    upper-level calendar, docs/schedules.md); at the top a day is open, the base time
    00:00, the base day the 1st. The calendar a schedule carries is always complete
    (:func:`ajs3.definitions.calendars.layered`).
    """

    name: str
    #: Weekdays that are open (0 = Monday ... 6 = Sunday).
    open_weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    #: Dates that are open whatever the weekly pattern says.
    open_dates: tuple[str, ...] = ()
    #: Dates that are closed whatever the weekly pattern says.
    closed_dates: tuple[str, ...] = ()
    #: Minutes after midnight a scheduling day begins at; None: the upper level's.
    base_time: int | None = None
    source: str = ""
    #: Weekdays that are closed.
    closed_weekdays: tuple[int, ...] = ()
    #: The day of the month each month begins on (1..31; the last day in a shorter
    #: month), or None: the upper level's, else the 1st.
    base_day: int | None = None
    #: Or the month begins on the nth (1..5; the last when there is no 5th) weekday:
    #: (weekday, nth).
    base_weekday: tuple[int, int] | None = None
    #: The month a period beginning at the base day is named after; None: the upper
    #: level's, else this month.
    base_month: BaseMonth | None = None

    def undefined_weekdays(self) -> tuple[int, ...]:
        return tuple(d for d in range(7) if d not in self.open_weekdays + self.closed_weekdays)

    @staticmethod
    def from_dict(cal: dict[str, Any]) -> Calendar:
        opened = tuple(cal["open_weekdays"])
        weekday = cal.get("base_weekday")
        month = cal.get("base_month")
        return Calendar(
            name=cal["name"],
            open_weekdays=opened,
            open_dates=tuple(cal["open_dates"]),
            closed_dates=tuple(cal["closed_dates"]),
            base_time=cal["base_time"],
            source=cal["source"],
            # stored before calendars could leave weekdays undefined: complete
            closed_weekdays=tuple(
                cal.get("closed_weekdays", [d for d in range(7) if d not in opened])
            ),
            base_day=cal.get("base_day"),
            base_weekday=None if weekday is None else (weekday[0], weekday[1]),
            base_month=None if month is None else BaseMonth(month),
        )


@dataclass(frozen=True)
class Rule:
    """One schedule rule of a root jobnet (JP1 allows 144 per jobnet; ajs3 1000).

    Which days: ``weekdays`` with ``nth`` (the Nth such weekday of a month, -1 the
    last), ``days`` (day N of the month, negative from the end), ``open_days`` (the
    Nth open day, negative from the end), ``weekdays`` alone (those weekdays of every
    ``every``-th week), or else every ``every`` ``period`` from ``start_date``. Months
    of ``days``, ``open_days`` and ``nth`` are the calendar's (they begin at its base
    day). Times are minutes after midnight of the scheduling day; a time before the
    calendar's base time belongs to the scheduling day that began the day before.
    """

    at: int
    every: int = 1
    period: Period = Period.DAY
    weekdays: tuple[int, ...] = ()
    nth: tuple[int, ...] = ()
    days: tuple[int, ...] = ()
    open_days: tuple[int, ...] = ()
    start_date: str | None = None
    end_date: str | None = None
    closed_days: ClosedDay = ClosedDay.CANCEL
    shift_limit: int = 2
    #: Repetition within the day: every ``repeat_every`` minutes until ``repeat_until``.
    repeat_every: int | None = None
    repeat_until: int | None = None
    #: Seconds after the due time after which a start that has not happened is skipped.
    deadline: float | None = None
    source: str = ""

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Rule:
        return Rule(
            at=data["at"],
            every=data["every"],
            period=Period(data["period"]),
            weekdays=tuple(data["weekdays"]),
            nth=tuple(data["nth"]),
            days=tuple(data["days"]),
            open_days=tuple(data["open_days"]),
            start_date=data["start_date"],
            end_date=data["end_date"],
            closed_days=ClosedDay(data["closed_days"]),
            shift_limit=data["shift_limit"],
            repeat_every=data["repeat_every"],
            repeat_until=data["repeat_until"],
            deadline=data["deadline"],
            source=data["source"],
        )


@dataclass(frozen=True)
class Schedule:
    """When a root jobnet runs by itself, and what to do when runs collide or are missed.

    ``calendar`` is resolved at load time (from the jobnet's ``calendar`` or its
    job group's, inherited), so the schedule stored with the jobnet is complete.
    """

    time_zone: str
    rules: tuple[Rule, ...] = ()
    calendar: Calendar | None = None
    overlap: Overlap = Overlap.SKIP
    max_parallel: int = 1
    catch_up: CatchUp = CatchUp.LATEST
    #: Seconds; a missed run older than this at start is skipped.
    catch_up_window: float = 3600.0

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Schedule:
        cal = data.get("calendar")
        return Schedule(
            time_zone=data["time_zone"],
            rules=tuple(Rule.from_dict(r) for r in data["rules"]),
            calendar=Calendar.from_dict(cal) if cal else None,
            overlap=Overlap(data["overlap"]),
            max_parallel=data["max_parallel"],
            catch_up=CatchUp(data["catch_up"]),
            catch_up_window=data["catch_up_window"],
        )


class Match(StrEnum):
    """Which run of its target a jobnet connector waits for (JP1's execution order
    control, ``ncs``): docs/definitions.md, Jobnet connectors."""

    SCHEDULING_DAY = "scheduling-day"
    """The target's run of the same scheduling day (JP1: synchronize, ``ncs=y``)."""
    LATEST = "latest"
    """The target's latest run (JP1: asynchronous, ``ncs=n``)."""


@dataclass(frozen=True)
class Retry:
    """Retries on abnormal end."""

    count: int = 0
    interval: float = 0.0
    #: Exit codes that trigger a retry; empty means any abnormal end.
    on_exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Delay:
    """Delay monitoring of a job or jobnet (JP1's start delay and end delay): crossing
    a limit raises a notification and marks the unit; the run goes on."""

    #: latest start as a clock time on the run's scheduling day, minutes after its
    #: midnight (up to 47:59, as a schedule's ``at``)
    start_by_clock: int | None = None
    #: latest start as seconds after the run's scheduled start
    start_by_after: float | None = None
    #: longest run time, seconds
    longest: float | None = None


@dataclass(frozen=True)
class Condition:
    """The condition of a judgment job."""

    op: Compare
    value: int | None = None
    low: int | None = None
    high: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class Unit:
    """One unit: a jobnet, a Unix job, a judgment job, an OR job or a file-watch job.

    ``path`` is the full unit path (``/group/jobnet/job``); ``name`` its last part.
    ``after`` names sibling units this one runs after. ``source`` is ``file:line``
    of the definition, for messages.
    """

    name: str
    path: str
    kind: UnitKind
    source: str = ""
    description: str = ""
    after: tuple[str, ...] = ()
    recovery: bool = False
    hold: bool = False
    # Unix job
    command: tuple[str, ...] = ()
    script: str | None = None
    shell: str = "/bin/sh"
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    warning_threshold: int | None = None
    abnormal_threshold: int = 0
    timeout: float | None = None
    kill_grace: float = 10.0
    retry: Retry = field(default_factory=Retry)
    on_failover: RecoveryPolicy = RecoveryPolicy.FAIL
    failover_check: tuple[str, ...] = ()
    # judgment job
    condition: Condition | None = None
    # jobnet
    concurrency: int | None = None
    units: tuple[Unit, ...] = ()
    #: Root jobnets only: when the jobnet runs by itself (None: only on ``ajs3 entry``).
    schedule: Schedule | None = None
    #: Jobs and jobnets: delay monitoring (None: none).
    delay: Delay | None = None
    #: Root jobnets only: the history kept of it (None: the logical host's default).
    keep: Keep | None = None
    #: Jobs only: bytes kept of each of stdout and stderr (None: the logical host's).
    output_limit: int | None = None
    #: Jobnet connectors only: the root jobnet waited for, and which run of it.
    waits_for: str | None = None
    match: Match | None = None
    #: File-watch jobs only: what it waits for (ajs3.definitions.events).
    watch: Watch | None = None
    #: Root jobnets only: a run starts each time one of its watches fires.
    start_condition: StartCondition | None = None
    #: Jobs and jobnets: the execution host or host group it runs on (None: locally;
    #: a jobnet's is inherited by the units below it that name none).
    host: str | None = None

    def argv(self) -> list[str]:
        """The program and arguments to execute for a Unix job."""
        if self.script is not None:
            return [self.shell, "-c", self.script]
        return list(self.command)

    def walk(self) -> list[Unit]:
        """This unit and every unit below it, parents first."""
        found = [self]
        for child in self.units:
            found.extend(child.walk())
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Unit:
        retry = Retry(
            count=data["retry"]["count"],
            interval=data["retry"]["interval"],
            on_exit_codes=tuple(data["retry"]["on_exit_codes"]),
        )
        cond = data.get("condition")
        condition = (
            Condition(
                op=Compare(cond["op"]),
                value=cond["value"],
                low=cond["low"],
                high=cond["high"],
                path=cond["path"],
            )
            if cond
            else None
        )
        return Unit(
            name=data["name"],
            path=data["path"],
            kind=UnitKind(data["kind"]),
            source=data["source"],
            description=data["description"],
            after=tuple(data["after"]),
            recovery=data["recovery"],
            hold=data["hold"],
            command=tuple(data["command"]),
            script=data["script"],
            shell=data["shell"],
            cwd=data["cwd"],
            env=tuple((k, v) for k, v in data["env"]),
            user=data["user"],
            warning_threshold=data["warning_threshold"],
            abnormal_threshold=data["abnormal_threshold"],
            timeout=data["timeout"],
            kill_grace=data["kill_grace"],
            retry=retry,
            on_failover=RecoveryPolicy(data["on_failover"]),
            failover_check=tuple(data["failover_check"]),
            condition=condition,
            concurrency=data["concurrency"],
            units=tuple(Unit.from_dict(u) for u in data["units"]),
            # Definitions stored before schedules existed have no "schedule" key.
            schedule=Schedule.from_dict(data["schedule"]) if data.get("schedule") else None,
            delay=Delay(**data["delay"]) if data.get("delay") else None,
            keep=Keep.from_dict(data["keep"]) if data.get("keep") else None,
            output_limit=data.get("output_limit"),
            waits_for=data.get("waits_for"),
            match=Match(data["match"]) if data.get("match") else None,
            # stored before event jobs existed: no "watch" or "start_condition" key
            watch=Watch.from_dict(data["watch"]) if data.get("watch") else None,
            start_condition=(
                StartCondition.from_dict(data["start_condition"])
                if data.get("start_condition")
                else None
            ),
            host=data.get("host"),
        )


@dataclass(frozen=True)
class DefinitionSet:
    """Every root jobnet of a logical host, by path (``/group/jobnet``)."""

    jobnets: dict[str, Unit]
    #: The job groups that exist (paths), even when empty.
    groups: tuple[str, ...] = ()
    #: Named calendars, for reference; each jobnet's schedule carries its own copy.
    calendars: dict[str, Calendar] = field(default_factory=dict)
    #: Job group path -> name of the calendar assigned to it (inherited below it).
    group_calendars: dict[str, str] = field(default_factory=dict)
