"""The typed tree of unit definitions, as the engine uses it.

Definitions are loaded from YAML by :mod:`ajs3.definitions.loader`, validated as a
whole, and stored in the journal as JSON (``to_dict``/``from_dict``), so that a run
always refers to the exact definitions it was registered with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ajs3.model import Compare, RecoveryPolicy, UnitKind


@dataclass(frozen=True)
class Retry:
    """Retries on abnormal end."""

    count: int = 0
    interval: float = 0.0
    #: Exit codes that trigger a retry; empty means any abnormal end.
    on_exit_codes: tuple[int, ...] = ()


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
    """One unit: a jobnet, a Unix job, a judgment job or an OR job.

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
        )


@dataclass(frozen=True)
class DefinitionSet:
    """Every root jobnet of a logical host, by path (``/group/jobnet``)."""

    jobnets: dict[str, Unit]
    #: The job groups that exist (paths), even when empty.
    groups: tuple[str, ...] = ()
