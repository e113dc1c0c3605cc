"""The jobs of a logical host that run on execution hosts (docs/exechosts.md).

A job with ``host:`` is recorded as started like any other (its intent, with the
execution host chosen, in the step's commit: ``unit_runs.exec_host``), then its start
request goes over ssh (:mod:`ajs3.exechost.transport`). It is watched as a
:class:`~ajs3.engine.runner.Tracked` whose key is no descriptor; the execution host
is polled while it has jobs. An end that comes back is written into the job's local
directory (``status.json``, its output), and the key is queued, so the collector
records it exactly as a local end.

The loop never waits on ssh (ADR 0027): each exchange is handed to the execution
host's :class:`~ajs3.exechost.link.Link`, a thread that does it (and brings the ends
it finds home) while the loop goes on; its outcome is applied here, in the loop, when
the link wakes it. One exchange per execution host is under way at a time; what the
loop asks meanwhile (a start, a kill) goes with the next one.

A start is idempotent on the execution host (the supervisor's O_EXCL claim), so a
start without an answer is simply sent again. At a hot start every job the journal
says runs on an execution host is asked for: ended ones are collected, running ones
re-adopted, never-started ones claimed there (void) and started again, and a lost
one (its supervisor died without an end) gets its ``on_failover`` policy. While an
execution host cannot be reached its jobs wait; after ``exechost_timeout`` their
policy decides.
"""

from __future__ import annotations

import queue
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ajs3.engine import runner as rn
from ajs3.engine import runvars
from ajs3.engine.core import Core
from ajs3.engine.runstate import RunState
from ajs3.errors import AjsError
from ajs3.exechost import placement, transport
from ajs3.exechost import protocol as pr
from ajs3.exechost.link import Exchange, Home, Link, Outcome, states_of
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, StartMode, Status

if TYPE_CHECKING:
    from ajs3.engine.dispatch import Dispatcher
    from ajs3.engine.indoubt import InDoubt

#: Seconds between two polls of an execution host that runs jobs of ours.
POLL_INTERVAL = 0.25
#: Seconds between two attempts to reach an execution host that is out of reach.
RETRY_INTERVAL = 5.0
#: Seconds an exchange may be under way before ``show --why`` says the host is slow.
SLOW = 1.0


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
    #: signals not sent yet (its host out of reach, or an exchange under way)
    signals: list[int] = field(default_factory=list)


@dataclass
class Sent:
    """An exchange under way, as the loop knows it."""

    since: float
    remotes: list[Remote]
    #: the signals it carries, by unit run (given back if it fails)
    signals: dict[int, list[int]]
    #: the requests it carries for runs no longer watched (given back if it fails)
    extra: list[dict[str, Any]]


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
        #: the thread of each execution host spoken to (ajs3.exechost.link)
        self.links: dict[str, Link] = {}
        #: the exchange under way with each execution host
        self.inflight: dict[str, Sent] = {}
        #: outcomes the links handed back, applied by :meth:`poll`
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        #: called on a link's thread when an outcome is queued (the daemon: its signal
        #: socket); None: the loop looks every 50 ms while an exchange is under way
        self.wake: Callable[[], None] | None = None
        #: requests for runs no longer watched (a warm start's kill), by execution host
        self.extra: dict[str, list[dict[str, Any]]] = {}
        #: execution hosts asked for something while an exchange was under way
        self.kicked: set[str] = set()
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
        hosts: set[str] = set()
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
            hosts.add(r.host)
            core.log.info("job sent to execution host", run_id=ur.run_id, host=r.host)
        for host in sorted(hosts):
            self._kick(host, now)

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
        self._kick(r.host, self.core.clock())

    # -- the loop ------------------------------------------------------------------------

    def poll(self) -> None:
        """Apply the outcomes the links handed back, then send each execution host
        that is due and has no exchange under way its next one."""
        while True:
            try:
                outcome = self.outcomes.get_nowait()
            except queue.Empty:
                break
            self._settle(outcome)
        now = self.core.clock()
        for host in sorted(self._hosts()):
            due = host in self.kicked or now >= self.next_poll.get(host, 0.0)
            if due and host not in self.inflight:
                self._send(host, now, poll=True)
        for host in list(self.down):
            self._expire(host, now)

    def next_wake(self) -> float | None:
        idle = self._hosts() - set(self.inflight)
        times = [0.0 if h in self.kicked else self.next_poll.get(h, 0.0) for h in idle]
        times += [since + self.core.settings.exechosts.timeout for since in self.down.values()]
        if self.inflight and self.wake is None:
            times.append(self.core.clock() + 0.05)
        return min(times) if times else None

    def _hosts(self) -> set[str]:
        hosts = {r.host for r in self.remote.values()} | set(self.down)
        return hosts | {h for h, extra in self.extra.items() if extra}

    def explain(self, state: RunState, ur: UnitRun) -> list[dict[str, Any]]:
        """The execution host check of ``show --why``: a running job whose host is out
        of reach or slow to answer, or a waiting job that no execution host can take now."""
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
        now = self.core.clock()
        if host is None:
            return None
        if host in self.down:
            left = self.core.settings.exechosts.timeout - (now - self.down[host])
            return (
                f"execution host {host} cannot be reached since "
                f"{now - self.down[host]:.0f} s ({self.errors.get(host, '')}); "
                f"the job waits for it, its on_failover policy decides in {max(0.0, left):.0f} s"
            )
        sent = self.inflight.get(host)
        if sent is not None and now - sent.since >= SLOW:
            return (
                f"execution host {host} has not answered for {now - sent.since:.0f} s "
                f"(an exchange is under way; out of reach after "
                f"{transport.EXCHANGE_TIMEOUT:g} s); the job waits for it"
            )
        return None

    def close(self) -> None:
        """At a clean stop: the links end (an exchange under way is cut short), then the
        shared ssh connections (jobs there run on)."""
        for link in self.links.values():
            link.stop()
        for link in self.links.values():
            link.join()
        self.links.clear()
        if self._control is None:
            return
        for host in self.core.settings.exechosts.hosts:
            transport.close_master(host, self._control)
        transport.remove_control_dir(self._control)
        self._control = None

    # -- one exchange with one execution host ------------------------------------------------

    def control(self) -> Path:
        if self._control is None:
            self._control = transport.control_dir(self.rundir)
        return self._control

    def _kick(self, name: str, now: float) -> None:
        """Send what its jobs ask for (a start, a kill) now, or after the exchange under
        way; an execution host out of reach gets it when it is back."""
        if name in self.down:
            return
        if name in self.inflight:
            self.kicked.add(name)
        else:
            self._send(name, now, poll=False)

    def _send(self, name: str, now: float, *, poll: bool) -> None:
        """Hand the next exchange with ``name`` to its link."""
        core = self.core
        remotes = [r for r in self.remote.values() if r.host == name]
        host = core.settings.exechosts.host(name)
        if host is None:
            self.extra.pop(name, None)
            self._lost(remotes, f"execution host {name} is no longer in the settings")
            return
        requests: list[dict[str, Any]] = []
        starts = [r.request for r in remotes if r.request and r.request["op"] == "start"]
        if len(starts) > 1:  # forked at once there
            requests.append({"op": "start_many", "runs": starts})
        sent = Sent(now, remotes, {}, self.extra.pop(name, []))
        for r in remotes:
            if r.request is not None and (len(starts) <= 1 or r.request["op"] != "start"):
                requests.append(r.request)
            for sig in r.signals:
                requests.append({"op": "kill", "run_id": r.run_id, "signal": sig})
            if r.signals:
                sent.signals[r.unit_run], r.signals = r.signals, []
        requests += sent.extra
        if poll or not requests:
            requests.append({"op": "poll", "run_ids": [r.run_id for r in remotes]})
        homes = {r.run_id: Home(core.runner.jobdir(r.run_id), self._limit(r)) for r in remotes}
        epoch = core.journal.epoch or 0
        exchange = Exchange(
            host, self.control(), core.lhost, epoch, requests, homes, core.settings.datadir
        )
        self.inflight[name] = sent
        self.kicked.discard(name)
        link = self.links.get(name)
        if link is None:
            link = self.links[name] = Link(name, self._done)
        link.submit(exchange)

    def _done(self, outcome: Outcome) -> None:
        """On a link's thread: queue the outcome and wake the loop."""
        self.outcomes.put(outcome)
        wake = self.wake
        if wake is not None:
            wake()

    def _settle(self, outcome: Outcome) -> None:
        """Apply an exchange's outcome (in the loop)."""
        core = self.core
        name = outcome.exchange.host.name
        sent = self.inflight.pop(name, None)
        if sent is None:
            return
        now = core.clock()
        for run_id, problem in outcome.problems:
            core.log.error("execution host end", run_id=run_id, host=name, error=problem)
        error = outcome.error
        refused = next((a for a in outcome.answers if a.get("ok") is not True), None)
        if error is None and refused is not None:  # a lower epoch now, or a bad request
            try:
                pr.raise_refusal(refused, name)
            except AjsError as exc:
                error = exc
        if error is not None:  # nothing of it counts: sent again once the host answers
            for r in sent.remotes:
                r.signals[:0] = sent.signals.get(r.unit_run, [])
            self.extra[name] = sent.extra + self.extra.get(name, [])
            self._unreachable(name, error, now)
            return
        if name in self.down:
            core.log.info("execution host reachable again", host=name)
            self.down.pop(name)
            self.errors.pop(name, None)
            core.dirty.update(core.runs)  # jobs waiting for it may start
        self.next_poll[name] = now + POLL_INTERVAL
        states = states_of(outcome.exchange.requests, outcome.answers)
        for r in sent.remotes:
            if self.remote.get(r.unit_run) is r and r.run_id in states:
                self._apply(r, states[r.run_id], r.run_id in outcome.home)

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

    def _apply(self, r: Remote, answer: dict[str, Any], home: bool) -> None:
        """What an answer about one run means; ``home``: its end is brought home."""
        core = self.core
        state = answer.get("state")
        log = core.log.bind(run_id=r.run_id, host=r.host)
        if state in ("running", "starting"):
            r.request = None
            if r.kill_on_contact:
                r.kill_on_contact = False
                kill = {"op": "kill", "run_id": r.run_id, "signal": int(signal.SIGKILL)}
                self.extra.setdefault(r.host, []).append(kill)
                self.kicked.add(r.host)
                self._doubt(r, ReasonCode.KILLED_BY_WARM_START, "killed by a warm start")
            elif r.adopted:
                r.adopted = False
                log.info("re-adopted a job running on an execution host")
        elif state == "ended":
            if home:  # else the next poll tries again
                t = core.tracked.get(r.unit_run)
                self.remote.pop(r.unit_run, None)
                if t is not None:
                    core.exited.append(t.pidfd)
                core.dirty.update(core.runs)  # a job waiting for room on its host may start
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
            self.kicked.add(r.host)
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
