"""The jobs of a logical host that run on execution hosts (docs/exechosts.md).

A job with ``host:`` is recorded as started like any other (its intent, with the
execution host chosen, in the step's commit: ``unit_runs.exec_host``), then its start
request goes over ssh (:mod:`ajs3.exechost.transport`). It is watched as a
:class:`~ajs3.engine.runner.Tracked` whose key is no descriptor; the execution host
is polled while it has jobs. An end that comes back is written into the job's local
directory (``status.json``, its output), and the key is queued, so the collector
records it exactly as a local end.

A start is idempotent on the execution host (the supervisor's O_EXCL claim), so a
start without an answer is simply sent again. At a hot start every job the journal
says runs on an execution host is asked for: ended ones are collected, running ones
re-adopted, never-started ones claimed there (void) and started again, and a lost
one (its supervisor died without an end) gets its ``on_failover`` policy. While an
execution host cannot be reached its jobs wait; after ``exechost_timeout`` their
policy decides.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ajs3 import datadir as dd
from ajs3.engine import runner as rn
from ajs3.engine import runvars
from ajs3.engine.core import Core
from ajs3.engine.runstate import RunState
from ajs3.errors import AjsError
from ajs3.exechost import placement, transport
from ajs3.exechost import protocol as pr
from ajs3.exechost.session import Sessions
from ajs3.exechost_config import ExecHost
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, StartMode, Status

if TYPE_CHECKING:
    from ajs3.engine.dispatch import Dispatcher
    from ajs3.engine.indoubt import InDoubt

#: Seconds between two polls of an execution host that runs jobs of ours.
POLL_INTERVAL = 0.25
#: Seconds between two attempts to reach an execution host that is out of reach.
RETRY_INTERVAL = 5.0


@dataclass
class Remote:
    """What the logical host knows of one job on an execution host."""

    host: str
    unit_run: int
    run_id: str
    #: the start request, sent (again) until an answer says the run is claimed
    request: dict[str, Any] | None = None
    #: known only from the journal (a hot start): a run absent there is voided
    adopted: bool = False
    #: warm start: kill it at the first contact
    kill_on_contact: bool = False
    #: signals asked for while its host was out of reach
    signals: list[int] = field(default_factory=list)


class ExecHostJobs:
    """The remote half of dispatch, collection and recovery."""

    def __init__(self, core: Core, dispatch: Dispatcher, doubt: InDoubt) -> None:
        self.core = core
        self.dispatch = dispatch
        self.doubt = doubt
        self.remote: dict[int, Remote] = {}
        #: execution hosts out of reach, since when
        self.down: dict[str, float] = {}
        #: the last error of each execution host out of reach
        self.errors: dict[str, str] = {}
        self.next_poll: dict[str, float] = {}
        self.turns: dict[str, int] = {}
        self.rundir: Path | None = None
        self.sessions = Sessions()
        #: ends found by the exchange under way: (run, its answer), brought home after it
        self.ended: list[tuple[Remote, dict[str, Any]]] = []
        self._control: Path | None = None

    # -- placement, at the step's commit ----------------------------------------------

    def busy(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.remote.values():
            counts[r.host] = counts.get(r.host, 0) + 1
        return counts

    def place(self, host: str, busy: dict[str, int]) -> str | None:
        """The execution host a job of ``host:`` starts on now, counted in ``busy``;
        None: it waits (every candidate full or out of reach, or unknown)."""
        chosen = placement.choose(
            self.core.settings.exechosts, host, busy, set(self.down), self.turns
        )
        if chosen is not None:
            busy[chosen] = busy.get(chosen, 0) + 1
        return chosen

    # -- starting ----------------------------------------------------------------------

    def spawn(self, items: list[tuple[RunState, UnitRun]], now: float) -> None:
        """Send the start of each run (its intent and host are committed)."""
        core = self.core
        by_host: dict[str, list[Remote]] = {}
        for state, ur in items:
            assert ur.run_id is not None and ur.exec_host is not None
            unit = state.units[ur.path]
            env = self.dispatch.job_env(state, ur, unit, ur.run_id, ur.attempt)
            values = runvars.load(core.journal, state.run.id)
            argv = unit.argv()
            if unit.script is None:
                argv = runvars.expand(argv, values)
            env.update(values)
            request = {
                "op": "start",
                "run_id": ur.run_id,
                "argv": argv,
                "env": env,
                "cwd": unit.cwd,
                "user": unit.user,
                "output_limit": unit.output_limit or core.settings.output_limit,
            }
            r = Remote(ur.exec_host, ur.id, ur.run_id, request)
            self._track(state, ur, r, now)
            by_host.setdefault(r.host, []).append(r)
            core.log.info("job sent to execution host", run_id=ur.run_id, host=r.host)
        for host, remotes in by_host.items():
            self._exchange(host, remotes, now, poll=False)

    def _track(self, state: RunState, ur: UnitRun, r: Remote, started_at: float) -> None:
        core = self.core
        unit = state.units[ur.path]
        key = core.gone_key()  # no descriptor: its end is queued by this module
        t = rn.Tracked(
            run_id=r.run_id,
            unit_run=ur.id,
            jobdir=core.runner.jobdir(r.run_id),
            pid=0,
            pidfd=key,
            started_at=started_at,
            grace=unit.kill_grace,
            host=r.host,
        )
        if unit.timeout:
            t.deadline = started_at + unit.timeout
        core.tracked[ur.id] = t
        core.by_fd[key] = ur.id
        self.remote[ur.id] = r

    # -- recovery at start ---------------------------------------------------------------

    def adopt(self, state: RunState, ur: UnitRun, mode: StartMode) -> None:
        """A job the journal says runs on an execution host: asked for at the next poll."""
        assert ur.run_id is not None and ur.exec_host is not None
        r = Remote(ur.exec_host, ur.id, ur.run_id, adopted=True)
        r.kill_on_contact = mode is StartMode.WARM
        self._track(state, ur, r, ur.started_at or self.core.clock())
        self.next_poll[r.host] = 0.0

    # -- signals -------------------------------------------------------------------------

    def signal(self, t: rn.Tracked, sig: int) -> None:
        r = self.remote.get(t.unit_run)
        if r is None:
            return
        r.signals.append(int(sig))
        if r.host not in self.down:
            self._exchange(r.host, [r], self.core.clock(), poll=False)

    # -- the loop ------------------------------------------------------------------------

    def poll(self) -> None:
        """Ask each execution host that is due for its jobs' states."""
        now = self.core.clock()
        hosts = {r.host for r in self.remote.values()} | set(self.down)
        for host in sorted(hosts):
            if now < self.next_poll.get(host, 0.0):
                continue
            remotes = [r for r in self.remote.values() if r.host == host]
            self._exchange(host, remotes, now, poll=True)
            if host in self.down:
                self._expire(host, now)

    def next_wake(self) -> float | None:
        hosts = {r.host for r in self.remote.values()} | set(self.down)
        times = [self.next_poll.get(h, 0.0) for h in hosts]
        return min(times) if times else None

    def explain(self, state: RunState, ur: UnitRun) -> list[dict[str, Any]]:
        """The execution host check of ``show --why``: a running job whose host is out
        of reach, or a waiting job that no execution host can take now."""
        host = state.units[ur.path].host
        if host is None:
            return []
        why = self.why(ur)
        if why is not None:
            return [{"rule": "execution_host", "passed": False, "reason": why}]
        if ur.status is not Status.WAITING:
            return []
        xh = self.core.settings.exechosts
        chosen = placement.choose(xh, host, self.busy(), set(self.down), dict(self.turns))
        if chosen is not None:
            return [{"rule": "execution_host", "passed": True, "reason": f"{chosen} can take it"}]
        parts = []
        for name in xh.members(host):
            if name in self.down:
                parts.append(f"{name} cannot be reached ({self.errors.get(name, '')})")
            else:
                parts.append(f"{name} is full ({self.busy().get(name, 0)} jobs)")
        reason = "; ".join(parts) or f"{host} is no execution host or group of the settings"
        return [{"rule": "execution_host", "passed": False, "reason": reason}]

    def why(self, ur: UnitRun) -> str | None:
        """Why a job waits on its execution host (``show --why``), if it does."""
        r = self.remote.get(ur.id)
        host = r.host if r is not None else None
        if host is None or host not in self.down:
            return None
        left = self.core.settings.exechosts.timeout - (self.core.clock() - self.down[host])
        return (
            f"execution host {host} cannot be reached since "
            f"{self.core.clock() - self.down[host]:.0f} s ({self.errors.get(host, '')}); "
            f"the job waits for it, its on_failover policy decides in {max(0.0, left):.0f} s"
        )

    def close(self) -> None:
        """At a clean stop: the shared ssh connections end (jobs there run on)."""
        self.sessions.close()
        if self._control is None:
            return
        for host in self.core.settings.exechosts.hosts:
            transport.close_master(host, self._control)

    # -- one exchange with one execution host ------------------------------------------------

    def control(self) -> Path:
        if self._control is None:
            self._control = transport.control_dir(self.rundir)
        return self._control

    def _exchange(self, name: str, remotes: list[Remote], now: float, *, poll: bool) -> None:
        core = self.core
        host = core.settings.exechosts.host(name)
        if host is None:
            self._lost(remotes, f"execution host {name} is no longer in the settings")
            return
        requests: list[dict[str, Any]] = []
        starts = [r.request for r in remotes if r.request and r.request["op"] == "start"]
        if len(starts) > 1:  # forked at once there
            requests.append({"op": "start_many", "runs": starts})
        for r in remotes:
            if r.request is not None and (len(starts) <= 1 or r.request["op"] != "start"):
                requests.append(r.request)
            for sig in r.signals:
                requests.append({"op": "kill", "run_id": r.run_id, "signal": sig})
        ids = [r.run_id for r in remotes]
        if poll or not requests:
            requests.append({"op": "poll", "run_ids": ids})
        try:
            answers = self.sessions.exchange(
                host, self.control(), core.lhost, core.journal.epoch or 0, requests
            )
        except transport.Unreachable as exc:
            self._unreachable(name, exc, now)
            return
        except AjsError as exc:  # refused: an older version, a lower epoch
            self._unreachable(name, exc, now)
            return
        refused = next((a for a in answers if a.get("ok") is not True), None)
        if refused is not None:  # a lower epoch now, or a request it would not take
            try:
                pr.raise_refusal(refused, name)
            except AjsError as exc:
                self._unreachable(name, exc, now)
            return
        if name in self.down:
            core.log.info("execution host reachable again", host=name)
            self.down.pop(name)
            self.errors.pop(name, None)
            core.dirty.update(core.runs)  # jobs waiting for it may start
        self.next_poll[name] = now + POLL_INTERVAL
        states: dict[str, dict[str, Any]] = {}
        for req, answer in zip(requests, answers, strict=True):
            if req["op"] in ("start", "void"):
                states[req["run_id"]] = answer
            elif req["op"] in ("poll", "start_many"):
                states.update(answer.get("runs") or {})
        for r in remotes:
            r.signals.clear()
            if r.unit_run in self.remote and r.run_id in states:
                self._apply(host, r, states[r.run_id])
        if self.ended:
            ended, self.ended = self.ended, []
            self._bring_home(host, ended)

    def _unreachable(self, name: str, exc: AjsError, now: float) -> None:
        if name not in self.down:
            self.core.log.error(
                "execution host cannot be reached; its jobs wait",
                host=name,
                code=exc.code.value if exc.code else None,
                error=exc.message,
            )
            self.down[name] = now
        self.errors[name] = f"{exc.code.value if exc.code else ''} {exc.message}".strip()
        self.next_poll[name] = now + RETRY_INTERVAL

    def _expire(self, name: str, now: float) -> None:
        timeout = self.core.settings.exechosts.timeout
        if now - self.down[name] < timeout:
            return
        lost = [r for r in self.remote.values() if r.host == name]
        self._lost(
            lost,
            f"execution host {name} could not be reached for {timeout:g} s "
            f"({self.errors.get(name, '')})",
        )

    # -- what a state means -----------------------------------------------------------

    def _apply(self, host: ExecHost, r: Remote, answer: dict[str, Any]) -> None:
        core = self.core
        state = answer.get("state")
        log = core.log.bind(run_id=r.run_id, host=r.host)
        if state in ("running", "starting"):
            r.request = None
            if r.kill_on_contact:
                r.kill_on_contact = False
                r.signals.append(int(signal.SIGKILL))
                self._exchange(r.host, [r], core.clock(), poll=False)
                self._doubt(r, ReasonCode.KILLED_BY_WARM_START, "killed by a warm start")
            elif r.adopted:
                r.adopted = False
                log.info("re-adopted a job running on an execution host")
        elif state == "ended":
            if isinstance(answer.get("status"), dict):
                self.ended.append((r, answer))
        elif state == "failed":
            self._forget(r)
            found = core.index.get(r.unit_run)
            if found is not None:
                core.journal.set_status(
                    found[1],
                    Status.FAILED_TO_START,
                    ReasonCode.FAILED_TO_START,
                    f"could not start on {r.host}: {answer.get('error')}",
                    ended_at=core.clock(),
                )
                core.dirty.add(found[0].run.id)
        elif state == "absent" and r.adopted:
            # never claimed there: claim it (void) so that a start still on its way
            # can never run it, then it starts again like a local run never started
            why = f"never started; restarted by epoch {core.journal.epoch}"
            r.request = {"op": "void", "run_id": r.run_id, "why": why}
            self._exchange(r.host, [r], core.clock(), poll=False)
        elif state == "void":
            self._forget(r)
            found = core.index.get(r.unit_run)
            if found is not None:
                log.info("job was recorded but never started; it will start now")
                core.journal.set_status(
                    found[1],
                    Status.WAITING,
                    ReasonCode.NEVER_STARTED,
                    f"recorded but never started on {r.host}; restarted",
                )
                core.dirty.add(found[0].run.id)
        elif state == "lost":
            self._lost([r], f"its supervisor on {r.host} died before recording an end")

    def _bring_home(self, host: ExecHost, ended: list[tuple[Remote, dict[str, Any]]]) -> None:
        """Bring the ends home (status.json, output) and queue them for the collector.
        Output the poll did not carry comes in batched ``output`` requests."""
        core = self.core
        outputs: dict[tuple[str, str], bytearray] = {}
        sizes: dict[tuple[str, str], int] = {}
        for r, answer in ended:
            for stream in (dd.STDOUT, dd.STDERR):
                got = (answer.get("output") or {}).get(stream)
                if isinstance(got, dict):
                    outputs[r.run_id, stream] = bytearray(base64.b64decode(got.get("data") or ""))
                    sizes[r.run_id, stream] = int(got.get("size") or 0)
                else:
                    outputs[r.run_id, stream] = bytearray()
                    sizes[r.run_id, stream] = -1  # not known yet
        for r, _ in ended:
            limit = self._limit(r)
            for stream in (dd.STDOUT, dd.STDERR):
                key = (r.run_id, stream)
                while len(outputs[key]) <= limit + 4096 and (
                    sizes[key] < 0 or len(outputs[key]) < sizes[key]
                ):
                    req: dict[str, Any] = {"op": "output", "run_id": r.run_id}
                    req.update(stream=stream, offset=len(outputs[key]))
                    try:
                        [got] = self.sessions.exchange(
                            host, self.control(), core.lhost, core.journal.epoch or 0, [req]
                        )
                    except AjsError as exc:
                        core.log.warning("output not fetched", run_id=r.run_id, error=exc.message)
                        break
                    chunk = base64.b64decode(got.get("data") or "")
                    outputs[key] += chunk
                    sizes[key] = int(got.get("size") or 0)
                    if not chunk:
                        break
        for r, answer in ended:
            jobdir = core.runner.jobdir(r.run_id)
            try:
                rn.private_dir(jobdir, reclaim=True)
                for stream in (dd.STDOUT, dd.STDERR):
                    _write(jobdir / stream, bytes(outputs[r.run_id, stream]))
                _write(jobdir / dd.STATUS, json.dumps(answer["status"]).encode())
            except (OSError, AjsError) as exc:  # a full disk here: the next poll tries again
                core.log.error("end not brought home", run_id=r.run_id, error=str(exc))
                continue
            t = core.tracked.get(r.unit_run)
            self.remote.pop(r.unit_run, None)
            if t is not None:
                core.exited.append(t.pidfd)
        if ended:
            core.dirty.update(core.runs)  # a job waiting for room on its host may start

    def _limit(self, r: Remote) -> int:
        found = self.core.index.get(r.unit_run)
        limit = self.core.settings.output_limit
        if found is not None:
            limit = found[0].units[found[1].path].output_limit or limit
        return limit

    def _forget(self, r: Remote) -> None:
        core = self.core
        self.remote.pop(r.unit_run, None)
        t = core.tracked.pop(r.unit_run, None)
        if t is not None:
            core.by_fd.pop(t.pidfd, None)
        core.kill_codes.pop(r.unit_run, None)

    def _lost(self, remotes: list[Remote], why: str) -> None:
        for r in remotes:
            self._doubt(r, ReasonCode.EXEC_HOST_LOST, why)

    def _doubt(self, r: Remote, code: ReasonCode, why: str) -> None:
        self._forget(r)
        found = self.core.index.get(r.unit_run)
        if found is not None and found[1].status is Status.RUNNING:
            self.core.log.warning("job on execution host in doubt", run_id=r.run_id, why=why)
            self.doubt.apply(found[0], found[1], code, why)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
