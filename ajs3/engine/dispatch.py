"""Dispatch: record the intent of each start, then start the supervisors (docs/design.md rule 1).

:meth:`Dispatcher.record_intents` runs inside the step's transaction; only once that
has committed does :meth:`Dispatcher.spawn` hand the whole batch to the supervisor
server. Every supervisor started (or re-adopted) is watched through a pidfd.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ajs3 import logs
from ajs3.definitions.units import Unit
from ajs3.engine import runner as rn
from ajs3.engine import runvars
from ajs3.engine.core import Core
from ajs3.engine.jobenv import JobUser
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, Status

#: Starts sent to the supervisor server in one write, at most.
SEND_EVERY = 16


def make_run_id(lhost: str, run: int, path: str, scheduled_at: float, attempt: int) -> str:
    """A stable id of one attempt of one unit of one jobnet run (docs/design.md rule 2).

    The jobnet run's number is part of it: two runs of a jobnet may share their
    scheduled time (file events taken in the same step), and their jobs must not share
    a run id (nor a job directory)."""
    key = f"{lhost}\0{run}\0{path}\0{scheduled_at:.6f}\0{attempt}".encode()
    return "r" + hashlib.blake2b(key, digest_size=10).hexdigest()


@functools.lru_cache(maxsize=1024)
def iso(ts: float | None) -> str:
    """A time as ISO 8601 in UTC, to the millisecond (a run's scheduled time, for each
    of its jobs: kept for the next ones)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Dispatcher:
    """Starts jobs and watches their supervisors."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.vars_dir = runvars.VarsDir(core.settings.datadir)

    def job_env(
        self, state: RunState, ur: UnitRun, unit: Unit, run_id: str, attempt: int
    ) -> dict[str, str]:
        core = self.core
        # Only the job's own variables and its identity: the runner completes them
        # for the job's user (ajs3/engine/jobenv.py), with nothing of the daemon's.
        env = dict(unit.env)
        env.update(
            {
                "AJS3_RUN_ID": run_id,
                "AJS3_LHOST": core.lhost,
                "AJS3_UNIT": unit.path,
                "AJS3_SCHEDULED_AT": iso(state.run.scheduled_at),
                "AJS3_ATTEMPT": str(attempt),
                "AJS3_EPOCH": str(core.journal.epoch or 0),
                "AJS3_JOBNET_RUN": str(state.run.id),
                "AJS3_DATADIR": str(core.settings.datadir),
            }
        )
        return env

    def record_intents(self, launches: list[tuple[RunState, UnitRun]], now: float) -> None:
        """Record each start as a new attempt with its run id (in the step's commit)."""
        journal = self.core.journal
        xh, busy = self.core.exechosts, None
        kept: list[tuple[RunState, UnitRun]] = []
        changes: list[tuple[UnitRun, dict[str, Any]]] = []
        for state, ur in launches:
            host = state.units[ur.path].host
            exec_host = None
            if host is not None:  # never run here what is meant for an execution host
                if xh is not None and busy is None:
                    busy = xh.busy()
                exec_host = xh.place(host, busy) if xh is not None and busy is not None else None
                if exec_host is None:  # full or out of reach: waits (docs/exechosts.md)
                    continue
            kept.append((state, ur))
            attempt = ur.attempt + 1
            run_id = make_run_id(
                self.core.lhost, state.run.id, ur.path, state.run.scheduled_at, attempt
            )
            values = {
                "attempt": attempt,
                "run_id": run_id,
                "started_at": now,
                "ended_at": None,
                "exit_code": None,
                "signal": None,
                "epoch": journal.epoch,
                "not_before": None,
                "exec_host": exec_host,
            }
            changes.append((ur, values))
        journal.set_statuses(changes, Status.RUNNING, ReasonCode.STARTED, "started")
        launches[:] = kept

    def spawn(
        self, launches: list[tuple[RunState, UnitRun]], now: float
    ) -> tuple[list[tuple[RunState, UnitRun]], bool]:
        """Start the supervisors of runs whose intent is committed (rule 1).

        Returns the runs whose requests could not be written (the server is gone):
        whether they started is not known, and they must be examined as after a restart.
        The server's answer is not waited for (ADR 0031). And whether any start went to
        the supervisor server, which makes the journal durable before it starts one
        (ADR 0034, 0035); an execution host is sent nothing before the journal is durable.
        """
        core = self.core
        remote = [(s, ur) for s, ur in launches if ur.exec_host is not None]
        if remote and core.exechosts is not None:
            core.journal.sync()
            core.exechosts.spawn(remote, now)
        local = [(s, ur) for s, ur in launches if ur.exec_host is None]
        unanswered: list[tuple[RunState, UnitRun]] = []
        handed_over = False
        dirfd = self.vars_dir.get() if local else None
        log_starts = logs.enabled("info")
        # A few at a time: the server starts the first while the rest are prepared.
        for first in range(0, len(local), SEND_EVERY):
            ready = self._specs(local[first : first + SEND_EVERY], now, dirfd)
            pids = core.runner.spawn_many([(jobdir, spec) for _, _, jobdir, spec in ready])
            for (state, ur, jobdir, _), pid in zip(ready, pids, strict=True):
                if pid is None:
                    unanswered.append((state, ur))
                    continue
                handed_over = True
                self.track(ur, state.units[ur.path], jobdir, pid, now)
                if log_starts:
                    core.log.info(
                        "job started", run_id=ur.run_id, unit=ur.path, attempt=ur.attempt, pid=pid
                    )
        return unanswered, handed_over

    def _specs(
        self, launches: list[tuple[RunState, UnitRun]], now: float, dirfd: int | None
    ) -> list[tuple[RunState, UnitRun, Path, dict[str, Any]]]:
        """What the server needs for each of these local starts (one that cannot be made is
        recorded as failed to start). A run's values and a user's entry are read once
        for them all."""
        core = self.core
        ready: list[tuple[RunState, UnitRun, Path, dict[str, Any]]] = []
        values_of: dict[int, dict[str, str]] = {}
        users: dict[str | None, JobUser] = {}
        for state, ur in launches:
            unit = state.units[ur.path]
            assert ur.run_id is not None
            try:
                env = self.job_env(state, ur, unit, ur.run_id, ur.attempt)
                who = users.get(unit.user)
                if who is None:
                    who = users[unit.user] = core.runner.job_user(unit.user, "the job")
                if state.run.id not in values_of:
                    values_of[state.run.id] = runvars.load(core.journal, state.run.id)
                argv, values = runvars.job_inputs(
                    core.journal,
                    core.settings.datadir,
                    state.run.id,
                    ur.run_id,
                    unit.argv(),
                    unit.script is None,
                    (who.uid, who.gid),
                    values=values_of[state.run.id],
                    dirfd=dirfd,
                    make=dirfd is None,  # else the server makes it, off this loop
                )
                env.update(values)  # over the job's own env; AJS3_* names are refused
                jobdir, spec = core.runner.make_spec(
                    ur.run_id, argv, env, unit.cwd, unit.user, who=who
                )
                if dirfd is not None:
                    spec["vars_out"] = (values["AJS3_VARS_OUT"], who.uid, who.gid)
                if unit.output_limit is not None:
                    spec["output_limit"] = unit.output_limit
            except (KeyError, ValueError) as exc:
                error = f"no such user {unit.user!r}" if isinstance(exc, KeyError) else str(exc)
                core.journal.set_status(
                    ur,
                    Status.FAILED_TO_START,
                    ReasonCode.FAILED_TO_START,
                    f"could not start: {error}",
                    ended_at=now,
                )
                core.log.error("job failed to start", run_id=ur.run_id, unit=ur.path, error=error)
                core.dirty.add(state.run.id)
                continue
            ready.append((state, ur, jobdir, spec))
        return ready

    def track(
        self,
        ur: UnitRun,
        unit: Unit,
        jobdir: Path,
        pid: int,
        started_at: float,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Watch a job's supervisor (just started, or re-adopted with its start record)."""
        assert ur.run_id is not None
        fd = self.core.watch(pid)
        t = rn.Tracked(
            run_id=ur.run_id,
            unit_run=ur.id,
            jobdir=jobdir,
            pid=pid,
            pidfd=fd,
            started_at=started_at,
            grace=unit.kill_grace,
            info=info or {},
        )
        if unit.timeout:
            t.deadline = started_at + unit.timeout
        self.core.tracked[ur.id] = t
        self.core.by_fd[fd] = ur.id
        self.core.by_jobdir[jobdir] = fd
