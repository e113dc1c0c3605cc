"""The exchanges with one execution host, on a thread of its own (ADR 0027).

An exchange over ssh takes milliseconds when the execution host is well, seconds when
it is slow, and up to the exchange timeout when it does not answer at all; the
daemon's loop must never wait on it, or local jobs and the control socket would stall
meanwhile. So each execution host the logical host speaks to has a :class:`Link`: a
thread that owns that host's protocol session (:mod:`ajs3.exechost.session`), takes
one :class:`Exchange` at a time from its queue, does it, and hands an
:class:`Outcome` back (``done``, which queues it and wakes the loop).

An end that an exchange finds is brought home here too, off the loop: the ``output``
requests for what the answer did not carry, then ``status.json`` and the output
written into the run's local job directory, and its AJS3_VARS_OUT file into the
data directory's ``vars/`` (:func:`ajs3.engine.runvars.put_out`), where the collector
checks and journals it exactly as a local job's. The thread never touches the journal:
the loop applies the outcome, and every status change stays with its one writer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3 import datadir as dd
from ajs3.engine import runner as rn
from ajs3.engine import runvars
from ajs3.errors import AjsError, Code
from ajs3.exechost import mirror
from ajs3.exechost import protocol as pr
from ajs3.exechost.session import Sessions
from ajs3.exechost_config import ExecHost

#: The streams of a run brought home into its job directory with its end.
STREAMS = (dd.STDOUT, dd.STDERR)
#: The most bytes of a run's AJS3_VARS_OUT file brought home: one more than the most
#: that is taken, so that the collector refuses a larger one as it does locally.
VARS_CAP = runvars.MAX_OUT_FILE + 1


@dataclass(frozen=True)
class Home:
    """Where a run's end is brought home, should the exchange find it ended."""

    jobdir: Path
    #: bytes kept of each of stdout and stderr (its output_limit)
    limit: int


@dataclass
class Exchange:
    """One exchange with one execution host: requests, answered in order."""

    host: ExecHost
    control: Path
    lhost: str
    epoch: int
    requests: list[dict[str, Any]]
    #: the runs of this exchange, by run id
    homes: dict[str, Home] = field(default_factory=dict)
    #: the logical host's data directory: the runs' AJS3_VARS_OUT files go there
    datadir: Path | None = None


@dataclass
class Outcome:
    """What an exchange came to: its answers, or the error that cut it short."""

    exchange: Exchange
    answers: list[dict[str, Any]] = field(default_factory=list)
    error: AjsError | None = None
    #: run ids whose end (status.json, output) is now in their local job directory
    home: set[str] = field(default_factory=set)
    #: what went wrong on the way (run id, message), for the loop to log
    problems: list[tuple[str, str]] = field(default_factory=list)


def states_of(requests: list[dict[str, Any]], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The state of each run the answers tell of, by run id (the last word wins)."""
    states: dict[str, dict[str, Any]] = {}
    for req, answer in zip(requests, answers, strict=False):
        if req["op"] in ("start", "void"):
            states[req["run_id"]] = answer
        elif req["op"] in ("poll", "start_many"):
            states.update(answer.get("runs") or {})
    return states


class Link:
    """The thread that speaks with one execution host."""

    def __init__(self, name: str, done: Callable[[Outcome], None]) -> None:
        self.name = name
        self._done = done
        self._queue: queue.SimpleQueue[Exchange | None] = queue.SimpleQueue()
        #: readable once the link is stopping: an exchange under way is cut short
        self._abort_r, self._abort_w = os.pipe()
        self._sessions = Sessions(abort=self._abort_r)
        #: the output of its running jobs, followed (ajs3.exechost.mirror)
        self._follower = mirror.Follower()
        self._thread = threading.Thread(target=self._run, name=f"ajs3-xh-{name}", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        self._queue.put(exchange)

    def stop(self) -> None:
        """Cut the exchange under way short (its outcome is an error) and end the
        thread once it has closed its session; :meth:`join` waits for that."""
        with contextlib.suppress(OSError):
            os.write(self._abort_w, b"x")
        self._queue.put(None)

    def join(self) -> None:
        self._thread.join()
        for fd in (self._abort_r, self._abort_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- on the thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                exchange = self._queue.get()
                if exchange is None:
                    return
                try:
                    outcome = self._do(exchange)
                except Exception as exc:  # a bug must not leave the loop waiting forever
                    error = AjsError(f"{type(exc).__name__}: {exc}", code=Code.EXEC_HOST_PROTOCOL)
                    outcome = Outcome(exchange, error=error)
                self._done(outcome)
        finally:
            self._sessions.close()

    def _call(self, exchange: Exchange, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        x = exchange
        return self._sessions.exchange(x.host, x.control, x.lhost, x.epoch, requests)

    def _do(self, exchange: Exchange) -> Outcome:
        follow = exchange.host.follow_output
        polls = [r for r in exchange.requests if r["op"] == "poll"] if follow else []
        for req in polls:  # the local sizes of the runs' output: the rest comes back
            req["offsets"] = self._follower.offsets(self._jobdirs(exchange, req))
        try:
            answers = self._call(exchange, exchange.requests)
        except AjsError as exc:
            return Outcome(exchange, error=exc)
        outcome = Outcome(exchange, answers)
        if all(a.get("ok") is True for a in answers):
            for req, answer in zip(exchange.requests, answers, strict=False):
                if follow and req["op"] == "poll":
                    jobdirs = self._jobdirs(exchange, req)
                    caps = {r: exchange.homes[r].limit + mirror.MARKER_ROOM for r in jobdirs}
                    self._follower.take(answer.get("runs") or {}, jobdirs, caps)
            states = states_of(exchange.requests, answers)
            ended = {
                run_id: answer
                for run_id, answer in states.items()
                if run_id in exchange.homes
                and answer.get("state") == "ended"
                and isinstance(answer.get("status"), dict)
            }
            if ended:
                self._bring_home(exchange, ended, outcome)
        return outcome

    @staticmethod
    def _jobdirs(exchange: Exchange, poll: dict[str, Any]) -> dict[str, Path]:
        homes = exchange.homes
        return {r: homes[r].jobdir for r in poll.get("run_ids") or [] if r in homes}

    def _bring_home(
        self, exchange: Exchange, ended: dict[str, dict[str, Any]], outcome: Outcome
    ) -> None:
        """Fetch what the answers did not carry of the ends' output (in ``output``
        requests), then write each end into its local job directory. A stream
        followed while the run ran is completed from the bytes held of it on."""
        for run_id, answer in ended.items():
            home = exchange.homes[run_id]
            outputs: dict[str, tuple[int, bytes]] = {}
            for stream in STREAMS:
                cap = home.limit + mirror.MARKER_ROOM
                base = self._follower.base(run_id, home.jobdir / stream)
                got = self._fetch(exchange, run_id, answer, stream, cap, outcome, base)
                outputs[stream] = (base, got)
            values = self._fetch(exchange, run_id, answer, pr.VARS, VARS_CAP, outcome)
            try:
                rn.private_dir(home.jobdir, reclaim=True)
                for stream in STREAMS:
                    base, got = outputs[stream]
                    _write(home.jobdir / stream, got, base)
                if exchange.datadir is not None:  # checked when the end is collected
                    runvars.put_out(exchange.datadir, run_id, values)
                _write(home.jobdir / dd.STATUS, json.dumps(answer["status"]).encode())
            except (OSError, AjsError) as exc:  # a full disk here: the next poll tries again
                outcome.problems.append((run_id, f"end not brought home: {exc}"))
                continue
            outcome.home.add(run_id)

    def _fetch(
        self,
        exchange: Exchange,
        run_id: str,
        answer: dict[str, Any],
        stream: str,
        cap: int,
        outcome: Outcome,
        base: int = 0,
    ) -> bytes:
        """One stream of an ended run from byte ``base`` on, up to its byte ``cap``:
        what the answer carried, then the rest in ``output`` requests."""
        got = (answer.get("output") or {}).get(stream)
        data, size = bytearray(), -1  # -1: its size is not known yet
        if isinstance(got, dict) and int(got.get("offset") or 0) <= base:
            skip = base - int(got.get("offset") or 0)  # an older host sends from byte 0
            data += base64.b64decode(got.get("data") or "")[skip:]
            size = int(got.get("size") or 0)
        while base + len(data) < cap and (size < 0 or base + len(data) < size):
            at = base + len(data)
            req = {"op": "output", "run_id": run_id, "stream": stream, "offset": at}
            req["limit"] = cap - at
            try:
                [more] = self._call(exchange, [req])
            except AjsError as exc:
                outcome.problems.append((run_id, f"output not fetched: {exc.message}"))
                break
            chunk = base64.b64decode(more.get("data") or "")
            data += chunk
            size = int(more.get("size") or 0)
            if not chunk:
                break
        return bytes(data[: max(0, cap - base)])


def _write(path: Path, data: bytes, base: int = 0) -> None:
    """``path`` made its first ``base`` bytes and then ``data``, synced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        if base == 0:
            os.ftruncate(fd, 0)
        os.pwrite(fd, data, base)
        os.ftruncate(fd, base + len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
