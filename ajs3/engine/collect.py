"""Collection: the ends of jobs (exit code, signal, retry), their timeouts and kills.

A supervisor that exits is noticed by the daemon (its pidfd); the step collects it
(:meth:`Collector.handle_exit`) in the same transaction as the starts it allows.
"""

from __future__ import annotations

import signal
from typing import Any

from ajs3 import logs
from ajs3.definitions.units import Unit
from ajs3.engine import jobgroups, runvars
from ajs3.engine import runner as rn
from ajs3.engine.core import Core
from ajs3.engine.indoubt import InDoubt
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import SUCCESS, ReasonCode, RecoveryPolicy, Status


def end_status(unit: Unit, exit_code: int) -> Status:
    """End judgment by exit code (JP1's warning and abnormal thresholds)."""
    if exit_code > unit.abnormal_threshold or exit_code < 0:
        return Status.ENDED_ABNORMALLY
    if unit.warning_threshold is not None and exit_code > unit.warning_threshold:
        return Status.ENDED_WARNING
    return Status.ENDED_NORMALLY


def should_retry(unit: Unit, ur: UnitRun, code: Any) -> bool:
    if ur.retries >= unit.retry.count:
        return False
    return not unit.retry.on_exit_codes or code in unit.retry.on_exit_codes


class Collector:
    def __init__(self, core: Core, doubt: InDoubt) -> None:
        self.core = core
        self.doubt = doubt
        #: while :meth:`handle_exits` runs: the plain ends (no retry or rerun follows),
        #: by their status, code and reason, set together at its end
        self._ends: dict[tuple[Status, ReasonCode, str], list[tuple[UnitRun, dict[str, Any]]]]
        self._ends = {}
        self._batching = False

    # -- ends of jobs --------------------------------------------------------------------

    def handle_exits(self, fds: list[int]) -> None:
        """:meth:`handle_exit` for each; the plain ends among them are journaled with one
        statement for each status and reason (most often: all of them, exit code 0)."""
        self._batching = True
        try:
            for fd in fds:
                self.handle_exit(fd)
            for (new, code, why), changes in self._ends.items():
                self.core.journal.set_statuses(changes, new, code, why)
        finally:
            self._batching = False
            self._ends = {}

    def handle_exit(self, fd: int) -> None:
        core = self.core
        unit_run = core.by_fd.pop(fd, None)
        if unit_run is None:
            return
        t = core.tracked.pop(unit_run)
        if core.by_jobdir.get(t.jobdir) == fd:
            del core.by_jobdir[t.jobdir]
        core.release(fd)
        if t.kill_stage == 1 and t.kill_at is not None and t.host is None:
            pgid = (t.info or core.runner.started(t.jobdir) or {}).get("pgid")
            if pgid and jobgroups.group_alive(pgid):
                # The leader died of TERM, but the kill is for the whole group.
                core.stragglers.append((int(pgid), t.kill_at))
        found = core.index.get(unit_run)
        if found is None:
            core.kill_codes.pop(unit_run, None)
            return
        state, ur = found
        status = core.runner.status(t.jobdir, t.told)
        if status is None:
            core.kill_codes.pop(unit_run, None)
            started = core.runner.started(t.jobdir)
            if started is None and t.host is None:
                # No whole start record: the server ended before it took up (or
                # finished claiming) the request (ADR 0031). The recovery table decides,
                # as after a restart: claimed by the daemon, it starts again.
                core.unclaimed.append((state, ur))
                return
            if started and t.host is None:
                jobgroups.kill_group(started.get("pgid"), signal.SIGKILL, started)
            why = "its supervisor died before recording an end"
            if core.disk_full_at >= t.started_at:  # it exits 70 when it cannot write
                why += " (the disk was full meanwhile: the end may not have been writable)"
            self.doubt.apply(state, ur, ReasonCode.SUPERVISOR_DIED, why)
            return
        self.collect(state, ur, status, t.kill_reason, t.told.vars_out_size if t.told else None)

    def collect(
        self,
        state: RunState,
        ur: UnitRun,
        status: dict[str, Any],
        killed: str,
        vars_out_size: int | None = None,
    ) -> None:
        """Record a job's end from its status.json; ``killed`` says why ajs3 killed it;
        ``vars_out_size``: the size of its AJS3_VARS_OUT file as its end was recorded, if
        the server told it (0 or less: nothing to read)."""
        core = self.core
        unit = state.units[ur.path]
        now = core.clock()
        ended = float(status.get("ended_at") or now)
        # The supervisor repeats its start record's pids in status.json; an older one
        # (before a rolling upgrade) did not.
        started = (
            status
            if "pgid" in status
            else (core.runner.started(core.runner.jobdir(ur.run_id or "")) or {})
        )
        common: dict[str, Any] = {
            "ended_at": ended,
            "pid": started.get("job_pid"),
            "pgid": started.get("pgid"),
            "pid_start": started.get("supervisor_start"),
        }
        code = status.get("exit_code")
        sig = status.get("signal")
        kill_code = core.kill_codes.pop(ur.id, ReasonCode.KILLED_BY_OPERATOR)
        if status.get("failed_to_start"):
            new, why = Status.FAILED_TO_START, f"could not start: {status['failed_to_start']}"
            reason = ReasonCode.FAILED_TO_START
        elif sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            if killed:
                new, why, reason = Status.KILLED, f"{killed} ({name})", kill_code
            else:
                new, why = Status.ENDED_ABNORMALLY, f"ended by signal {name}"
                reason = ReasonCode.SIGNALLED
        else:
            new = end_status(unit, int(code) if code is not None else 255)
            why, reason = f"exit code {code}", ReasonCode.EXITED
        maybe_values = vars_out_size is None or vars_out_size > 0
        if not status.get("failed_to_start") and ur.run_id and maybe_values:
            refused = runvars.collect(
                core.journal, core.settings.datadir, state.run.id, ur.run_id, ur.path
            )
            if refused is not None:  # AJS3-E407: nothing of it applied; the job failed
                why = f"{why}; {refused}"
                if new in SUCCESS:
                    new, reason = Status.ENDED_ABNORMALLY, ReasonCode.VALUES_REFUSED
        rerun = (
            killed == core.stop_reason
            and unit.on_failover is RecoveryPolicy.RERUN
            and new is Status.KILLED
        )
        retry = new is Status.ENDED_ABNORMALLY and not killed and should_retry(unit, ur, code)
        values = {"exit_code": code, "signal": sig, **common}
        if self._batching and not (rerun or retry):
            self._ends.setdefault((new, reason, why), []).append((ur, values))
        else:
            core.journal.set_status(ur, new, reason, why, **values)
        if logs.enabled("info"):
            log = core.log.bind(run_id=ur.run_id, unit=ur.path, attempt=ur.attempt)
            log.info("job ended", status=new.value, exit_code=code, signal=sig)
        if rerun:
            core.journal.set_status(
                ur,
                Status.WAITING,
                ReasonCode.RERUN_AFTER_STOP,
                "killed at service stop; policy rerun",
            )
        elif retry:
            core.journal.set_status(
                ur,
                Status.WAITING,
                ReasonCode.RETRY,
                f"retry {ur.retries + 1} of {unit.retry.count} after exit code {code}",
                retries=ur.retries + 1,
                not_before=now + unit.retry.interval,
            )
        core.dirty.add(state.run.id)
        if core.settings.host_concurrency is not None:
            core.dirty.update(core.runs)

    # -- timeouts and kills --------------------------------------------------------------

    def check_timers(self) -> None:
        core = self.core
        now = core.clock()
        for pgid, at in [g for g in core.stragglers if g[1] <= now]:
            jobgroups.kill_group(pgid, signal.SIGKILL)
            core.stragglers.remove((pgid, at))
        for t in list(core.tracked.values()):
            if t.kill_at is not None and now >= t.kill_at and t.kill_stage == 1:
                self._signal(t, signal.SIGKILL)
                t.kill_stage = 2
                t.kill_at = None
            elif t.kill_stage == 0 and t.deadline is not None and now >= t.deadline:
                self.kill_tracked(
                    t, ReasonCode.TIMED_OUT, f"timed out after {t.deadline - t.started_at:g} s"
                )

    def _signal(self, t: rn.Tracked, sig: int) -> None:
        if t.host is not None and self.core.exechosts is not None:
            self.core.exechosts.signal(t, sig)  # on its execution host
            return
        if not t.info:  # not cached while the supervisor has not written it yet
            t.info = self.core.runner.started(t.jobdir) or {}
        jobgroups.kill_group(t.info.get("pgid"), sig, t.info or None)

    def kill_tracked(
        self, t: rn.Tracked, code: ReasonCode, reason: str, grace: float | None = None
    ) -> None:
        if t.kill_stage:
            return
        t.kill_reason = reason
        self.core.kill_codes[t.unit_run] = code
        self._signal(t, signal.SIGTERM)
        t.kill_stage = 1
        t.kill_at = self.core.clock() + (t.grace if grace is None else grace)
        self.core.log.info("job being killed", run_id=t.run_id, reason=reason)

    def kill_all(self, reason: str, grace: float) -> None:
        """Kill every running job (at service stop: ``reason`` is the stop reason)."""
        code = (
            ReasonCode.KILLED_AT_STOP
            if reason == self.core.stop_reason
            else ReasonCode.KILLED_BY_OPERATOR
        )
        for t in list(self.core.tracked.values()):
            self.kill_tracked(t, code, reason, grace)
