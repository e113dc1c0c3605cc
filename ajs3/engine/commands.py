"""Operator commands on runs: hold, release, kill, rerun, and explain (``show --why``).

Each one checks the unit's status first and refuses with a stable code and a hint; it
changes statuses only through the journal's one writer.
"""

from __future__ import annotations

from typing import Any

from ajs3.engine.collect import Collector
from ajs3.engine.core import Core
from ajs3.engine.evaluate import Evaluator
from ajs3.engine.runstate import RunState
from ajs3.errors import Code, OperationError
from ajs3.journal.store import UnitRun
from ajs3.model import (
    EXPLAINED,
    FAILED,
    FINAL,
    HOLDABLE,
    PENDING,
    RERUN_FAILED,
    RERUNNABLE,
    ReasonCode,
    Status,
    UnitKind,
)


class Commands:
    def __init__(self, core: Core, evaluator: Evaluator, collector: Collector) -> None:
        self.core = core
        self.evaluator = evaluator
        self.collector = collector

    # -- finding the run and unit -------------------------------------------------------

    def find(self, run_no: int | None, path: str | None, jobnet: str | None) -> RunState:
        core = self.core
        if run_no is None:

            def matches(s: RunState) -> bool:
                if jobnet is not None:
                    return s.root.path == jobnet
                if path is not None:
                    return path == s.root.path or path.startswith(s.root.path.rstrip("/") + "/")
                return True

            candidates = [s for s in core.runs.values() if matches(s)]
            if not candidates:
                found = self._latest_run(jobnet or (path or ""))
                if found is None:
                    raise OperationError(
                        f"no run of {jobnet or path!r} found",
                        code=Code.UNKNOWN_UNIT,
                        hint="list runs with `ajs3 show`",
                    )
                return found
            return max(candidates, key=lambda s: s.run.id)
        state = core.runs.get(run_no) or core.load_run(run_no)
        if state is None:
            raise OperationError(f"no jobnet run {run_no}", code=Code.UNKNOWN_UNIT)
        return state

    def _latest_run(self, path: str) -> RunState | None:
        for run in self.core.journal.jobnet_runs(containing=path, limit=1):
            return self.core.runs.get(run.id) or self.core.load_run(run.id)
        return None

    @staticmethod
    def unit(state: RunState, path: str | None) -> UnitRun:
        key = path or state.root.path
        if key not in state.urs:
            raise OperationError(
                f"no unit {key!r} in run {state.run.id} of {state.root.path}",
                code=Code.UNKNOWN_UNIT,
                hint="see the unit paths with `ajs3 show`",
            )
        return state.urs[key]

    # -- the commands -------------------------------------------------------------------

    def hold(self, run_no: int | None, path: str) -> UnitRun:
        state = self.find(run_no, path, None)
        ur = self.unit(state, path)
        if ur.status not in HOLDABLE:
            raise OperationError(
                f"{path} is {ur.status.label}; only a unit that has not started can be held",
                code=Code.BAD_STATE,
            )
        self.core.journal.set_status(
            ur, Status.HELD, ReasonCode.HELD_BY_OPERATOR, "held by an operator"
        )
        self.core.dirty.add(state.run.id)
        return ur

    def release(self, run_no: int | None, path: str, as_: str | None = None) -> UnitRun:
        state = self.find(run_no, path, None)
        ur = self.unit(state, path)
        journal = self.core.journal
        if ur.status is Status.HELD:
            journal.set_status(ur, Status.WAITING, ReasonCode.RELEASED, "released by an operator")
        elif ur.status is Status.UNKNOWN:
            if as_ not in ("normal", "abnormal"):
                raise OperationError(
                    f"{path} has an unknown end status; say how it ended",
                    code=Code.BAD_ARGUMENT,
                    hint="use `--as normal` or `--as abnormal`, or `ajs3 rerun --only`",
                )
            new = Status.ENDED_NORMALLY if as_ == "normal" else Status.ENDED_ABNORMALLY
            journal.set_status(
                ur,
                new,
                ReasonCode.DECIDED_BY_OPERATOR,
                f"operator decided: ended {as_}ly",
                ended_at=self.core.clock(),
            )
        else:
            raise OperationError(
                f"{path} is {ur.status.label}; only a held unit or one with an unknown end "
                "status can be released",
                code=Code.BAD_STATE,
            )
        self.core.dirty.add(state.run.id)
        return ur

    def kill(self, run_no: int | None, path: str | None, jobnet: str | None) -> RunState:
        core = self.core
        state = self.find(run_no, path, jobnet)
        target = path or state.root.path
        ur = self.unit(state, target)
        unit = state.units[target]
        if unit.kind is UnitKind.JOB:
            t = core.tracked.get(ur.id)
            if t is None:
                raise OperationError(
                    f"{target} is {ur.status.label}, not running", code=Code.BAD_STATE
                )
            self.collector.kill_tracked(t, ReasonCode.KILLED_BY_OPERATOR, "killed by an operator")
            return state
        if unit.kind is UnitKind.FILEWATCH and ur.status is Status.RUNNING:  # no process
            core.journal.set_status(
                ur,
                Status.KILLED,
                ReasonCode.KILLED_BY_OPERATOR,
                "killed by an operator",
                ended_at=core.clock(),
            )
            core.dirty.add(state.run.id)
            return state
        if target != state.root.path:
            raise OperationError("kill a job or a whole root jobnet run", code=Code.BAD_ARGUMENT)
        if state.root_ur.status.is_final:
            raise OperationError(f"run {state.run.id} has ended already", code=Code.BAD_STATE)
        core.journal.set_interrupted(state.run, True)
        for t in list(core.tracked.values()):
            if any(u.id == t.unit_run for u in state.urs.values()):
                self.collector.kill_tracked(
                    t, ReasonCode.KILLED_BY_OPERATOR, "killed by an operator"
                )
        core.dirty.add(state.run.id)
        return state

    def rerun(
        self, run_no: int | None, jobnet: str | None, mode: str, path: str | None
    ) -> RunState:
        core = self.core
        state = self.find(run_no, path, jobnet)
        if mode in ("from", "only") and not path:
            raise OperationError(f"rerun --{mode} needs a unit path", code=Code.BAD_ARGUMENT)
        if any(
            ur.status is Status.RUNNING and ur.kind is UnitKind.JOB for ur in state.urs.values()
        ):
            raise OperationError(
                f"run {state.run.id} still has running jobs",
                code=Code.BAD_STATE,
                hint="wait for them or kill them first",
            )
        targets: list[str] = []
        if mode == "failed":
            for p, ur in state.urs.items():
                unit = state.units[p]
                if unit.kind is UnitKind.JOBNET:
                    continue
                if ur.status in RERUN_FAILED or (unit.recovery and ur.status in FINAL):
                    targets.append(p)
            # Skipped units and unneeded recovery units are rerun along with a failed unit,
            # but are no reason for a rerun on their own.
            if not any(state.urs[p].status in FAILED for p in targets):
                raise OperationError(
                    f"run {state.run.id} has no unit that ended abnormally",
                    code=Code.BAD_STATE,
                    hint="use --from UNIT or --only UNIT",
                )
        else:
            assert path is not None
            self.unit(state, path)
            targets = [path, *state.descendants(path)]
            if mode == "from":
                chain = [path, *state.ancestors(path)]
                for p in chain:
                    for d in state.downstream(p):
                        targets.extend([d, *state.descendants(d)])
        reset = set(targets)
        for p in targets:
            reset.update(state.ancestors(p))
        with core.journal.joined():  # all of it or nothing, with its audit row
            if state.run.interrupted:
                core.journal.set_interrupted(state.run, False)
            for p in state.urs:
                ur = state.urs[p]
                if p in reset and ur.status in RERUNNABLE:
                    core.journal.set_status(
                        ur,
                        Status.WAITING,
                        ReasonCode.RERUN,
                        f"rerun ({mode})",
                        retries=0,
                        not_before=None,
                        verdict=None,
                    )
        core.log.info("rerun", run=state.run.id, mode=mode, unit=path, units=len(reset))
        core.dirty.add(state.run.id)
        return state

    def explain(self, run_no: int | None, path: str) -> dict[str, Any]:
        """Why a unit is where it is: each readiness rule and its result."""
        state = self.find(run_no, path, None)
        ur = self.unit(state, path)
        result: dict[str, Any] = {
            "run": state.run.id,
            "unit": path,
            "status": ur.status.value,
            "label": ur.status.label,
            "reason": ur.reason,
            "checks": [],
        }
        now = self.core.clock()
        if not state.parent[path]:
            d = self.evaluator.decide_root(state, now) if ur.status in PENDING else None
        elif ur.status in EXPLAINED:
            d = self.evaluator.decide(state, path, set(), now, 0)
        else:
            d = None
        if d is not None:
            result["checks"] = [
                {"rule": c.name, "passed": c.passed, "reason": c.reason} for c in d.checks
            ]
        if self.core.exechosts is not None:  # docs/exechosts.md
            result["checks"] += self.core.exechosts.explain(state, ur)
        return result
