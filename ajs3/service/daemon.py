"""The daemon of one logical host: owns the lock, the journal and the scheduler loop."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import time
from typing import Any

import structlog

from ajs3 import logs
from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.engine.runner import proc_starttime
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import AjsError, Code, EpochSuperseded
from ajs3.journal.store import Journal
from ajs3.model import StartMode, StopJobs
from ajs3.service.control import read_line
from ajs3.service.lock import DataDirLock, describe
from ajs3.service.paths import Paths
from ajs3.settings import load_settings

#: The loop wakes at least this often, so depth-10 health checks see it alive.
HEARTBEAT = 5.0


class Daemon:
    def __init__(self, paths: Paths, mode: StartMode, log_level: str = "info",
                 console: bool = False) -> None:
        self.paths = paths
        self.datadir = paths.need_datadir()
        self.mode = mode
        self.log = logs.setup(paths.lhost, self.datadir / "log", level=log_level, console=console)
        self.lock = DataDirLock(paths.lockfile)
        self.sel = selectors.DefaultSelector()
        self.stop_jobs: StopJobs | None = None
        self.stop_deadline = 0.0
        self.escalated = False
        self.stop_timeout = 0.0
        self.last_loop = time.time()
        self.started_at = time.time()
        self.listener: socket.socket | None = None
        self.journal: Journal | None = None
        self.sched: Scheduler | None = None
        self.watched: set[int] = set()

    # -- start -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail for a reason a user must see, before serving."""
        settings = load_settings(self.datadir, self.paths.lhost)
        self.lock.acquire(self.paths.lhost)
        if self.lock.previous and self.lock.previous.get("pid"):
            self.log.warning("took over a stale lock", previous=describe(self.lock.previous))
        self.journal = Journal.open(self.datadir)
        epoch = self.journal.begin_epoch(socket.gethostname(), os.getpid(), self.mode.value)
        self.log = self.log.bind(epoch=epoch)
        self.sched = Scheduler(self.journal, settings)
        self.sched.log = self.log
        self.sched.recover(self.mode)
        self._listen()
        self._write_pidfile(epoch)
        self.log.info("logical host started", mode=self.mode.value, datadir=str(self.datadir))

    def _listen(self) -> None:
        rundir = self.paths.rundir
        rundir.mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chmod(rundir, 0o750)
        sock_path = self.paths.socket
        if sock_path.exists() or sock_path.is_symlink():
            sock_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            listener.bind(str(sock_path))
        finally:
            os.umask(old)
        os.chmod(sock_path, 0o660)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        self.sel.register(listener, selectors.EVENT_READ, "listen")

    def _write_pidfile(self, epoch: int) -> None:
        me = os.getpid()
        info = {"pid": me, "start": proc_starttime(me), "lhost": self.paths.lhost,
                "datadir": str(self.datadir), "epoch": epoch, "mode": self.mode.value}
        tmp = self.paths.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.chmod(tmp, 0o640)
        tmp.rename(self.paths.pidfile)

    # -- loop ----------------------------------------------------------------------------

    def run(self, ready_fd: int | None = None) -> int:
        rsig, wsig = socket.socketpair()
        rsig.setblocking(False)
        wsig.setblocking(False)
        signal.set_wakeup_fd(wsig.fileno())
        pending: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            pending.append(signum)

        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(rsig, selectors.EVENT_READ, "signal")
        if ready_fd is not None:
            os.write(ready_fd, b'{"ok": true}\n')
            os.close(ready_fd)
        assert self.sched is not None
        sched = self.sched
        try:
            while True:
                self.last_loop = time.time()
                sched.check_timers()
                sched.step()
                self._watch_new()
                if self._stop_done():
                    break
                timeout = HEARTBEAT
                wake = sched.next_wake()
                if wake is not None:
                    timeout = min(timeout, max(0.0, wake - time.time()))
                if self.stop_jobs is not None:
                    timeout = min(timeout, 0.2)
                for key, _ in self.sel.select(timeout):
                    tag = key.data
                    if tag == "listen":
                        self._accept()
                    elif tag == "signal":
                        with contextlib.suppress(BlockingIOError):
                            rsig.recv(4096)
                        for signum in pending:
                            self._on_signal(signum)
                        pending.clear()
                    else:
                        fd = int(tag)
                        self.sel.unregister(fd)
                        self.watched.discard(fd)
                        sched.on_exit(fd)
        except EpochSuperseded as exc:
            self.log.error("stopping: epoch superseded", error=str(exc))
            return 3
        finally:
            self._shutdown()
        return 0

    def _watch_new(self) -> None:
        assert self.sched is not None
        for fd in self.sched.by_fd:
            if fd >= 0 and fd not in self.watched:
                self.sel.register(fd, selectors.EVENT_READ, str(fd))
                self.watched.add(fd)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.log.info("SIGHUP: nothing to reload; use `ajs3 service reload`")
            return
        self.log.info("signal received, stopping and leaving jobs running",
                      signal=signal.Signals(signum).name)
        self.begin_stop(StopJobs.LEAVE, 30.0)

    def begin_stop(self, jobs: StopJobs, timeout: float) -> None:
        assert self.sched is not None
        if self.stop_jobs is not None:
            return
        self.stop_jobs = jobs
        self.stop_deadline = time.time() + timeout
        self.stop_timeout = timeout
        self.sched.stopping = True
        if jobs is StopJobs.KILL:
            self.sched.kill_all(self.sched.stop_reason, grace=min(10.0, max(0.5, timeout * 0.3)))
        self.log.info("stopping", jobs=jobs.value, timeout=timeout)

    def _stop_done(self) -> bool:
        if self.stop_jobs is None:
            return False
        assert self.sched is not None
        if self.stop_jobs is StopJobs.LEAVE or not self.sched.tracked:
            return True
        now = time.time()
        margin = max(2.0, 0.2 * self.stop_timeout)
        waiting = self.stop_jobs is StopJobs.WAIT and not self.escalated
        if waiting and now >= self.stop_deadline - margin:
            self.escalated = True
            self.log.warning("jobs still running near the stop timeout: killing them")
            self.sched.kill_all(self.sched.stop_reason, grace=1.0)
        if now >= self.stop_deadline:
            self.log.error("stop timeout: leaving the rest to the next start",
                           running=len(self.sched.tracked))
            return True
        return False

    def _shutdown(self) -> None:
        for path in (self.paths.socket, self.paths.pidfile):
            with contextlib.suppress(OSError):
                path.unlink()
        if self.listener is not None:
            self.listener.close()
        if self.sched is not None:
            self.sched.runner.close()
        if self.journal is not None:
            self.journal.close()
        self.lock.release()
        self.log.info("logical host stopped")

    # -- requests --------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(10.0)
            try:
                data = read_line(conn)
                answer = self._handle(json.loads(data))
            except (ValueError, OSError) as exc:
                answer = {"ok": False, "error": {"code": Code.CONTROL.value,
                                                 "message": f"bad request: {exc}"}}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def _handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return {"ok": False, "error": {"code": Code.CONTROL.value,
                                           "message": f"unknown operation {op!r}"}}
        try:
            return {"ok": True, "result": handler(msg)}
        except EpochSuperseded:
            raise
        except AjsError as exc:
            return {"ok": False, "error": exc.to_dict()}
        except Exception as exc:  # a bug must not take the logical host down
            self.log.exception("request failed", op=op)
            return {"ok": False, "error": {"code": Code.INTERNAL.value,
                                           "message": f"internal error in {op}: {exc}",
                                           "hint": "see the daemon log; please report it"}}

    def op_ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None and self.journal is not None
        return {"pid": os.getpid(), "lhost": self.paths.lhost, "datadir": str(self.datadir),
                "epoch": self.journal.epoch, "loop_age": time.time() - self.last_loop,
                "running_jobs": len(self.sched.tracked), "active_runs": len(self.sched.runs),
                "stopping": self.stop_jobs is not None, "uptime": time.time() - self.started_at}

    def op_define(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        content = msg["content"]
        defs = DefinitionSet(
            jobnets={p: Unit.from_dict(u) for p, u in content["jobnets"].items()},
            groups=tuple(content.get("groups", ())),
        )
        version = self.sched.apply_definitions(defs, list(msg.get("sources", [])))
        return {"version": version, "jobnets": sorted(defs.jobnets)}

    def op_entry(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        run = self.sched.register(msg["jobnet"], msg.get("at"), bool(msg.get("hold")))
        return {"run": run}

    def op_hold(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        ur = self.sched.hold(msg.get("run"), msg["unit"])
        return {"unit": ur.path, "status": ur.status.value}

    def op_release(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        ur = self.sched.release(msg.get("run"), msg["unit"], msg.get("as"))
        return {"unit": ur.path, "status": ur.status.value}

    def op_kill(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        state = self.sched.kill(msg.get("run"), msg.get("unit"), msg.get("jobnet"))
        return {"run": state.run.id}

    def op_rerun(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        state = self.sched.rerun(msg.get("run"), msg.get("jobnet"), msg["mode"], msg.get("unit"))
        return {"run": state.run.id}

    def op_why(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.sched is not None
        return self.sched.explain(msg.get("run"), msg["unit"])

    def op_stop(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.begin_stop(StopJobs(msg.get("jobs", "kill")), float(msg.get("timeout", 60)))
        return {"stopping": True}

    def op_reload(self, msg: dict[str, Any]) -> dict[str, Any]:
        level = msg.get("log_level")
        if level not in logs.LEVELS:
            raise AjsError(f"unknown log level {level!r}", code=Code.BAD_ARGUMENT,
                           hint="use debug, info, warning or error")
        logs.set_level(level)
        self.log.info("log level changed", level=level)
        return {"log_level": level}


def run_foreground(paths: Paths, mode: StartMode, log_level: str, console: bool,
                   ready_fd: int | None = None) -> int:
    daemon = Daemon(paths, mode, log_level, console)
    try:
        daemon.prepare()
    except AjsError as exc:
        daemon.lock.release()
        if ready_fd is not None:
            os.write(ready_fd, json.dumps({"ok": False, "error": exc.to_dict()}).encode() + b"\n")
            os.close(ready_fd)
        raise
    structlog.contextvars.clear_contextvars()
    return daemon.run(ready_fd)
