"""The daemon of one logical host: owns the lock, the journal and the scheduler loop."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import selectors
import signal
import socket
import time
from typing import Any

import structlog

from ajs3 import logs
from ajs3.definitions.hosts import check_hosts
from ajs3.definitions.loader import load_texts
from ajs3.engine import runvars
from ajs3.engine.jobenv import check_job_users
from ajs3.engine.jobgroups import proc_starttime
from ajs3.engine.reaper import waker
from ajs3.engine.retention import Purger
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import AjsError, Code, DefinitionError, EpochSuperseded
from ajs3.exechost.manager import ExecHostJobs
from ajs3.journal import audit
from ajs3.journal.files import DiskFull
from ajs3.journal.store import Journal
from ajs3.model import StartMode, StopJobs
from ajs3.notify.hub import Notifications
from ajs3.service import access, joboutput, protocol, views
from ajs3.service.access import Peer
from ajs3.service.control import ControlServer
from ajs3.service.diskfull import DiskFullHandling
from ajs3.service.gauges import LiveFigures
from ajs3.service.lock import DataDirLock, describe
from ajs3.service.operator import OperatorRequests
from ajs3.service.paths import DataDirMark, Paths, prepare_rundir, write_private
from ajs3.service.protocol import BadRequest
from ajs3.service.upkeep import UpkeepRequests
from ajs3.service.webviews import WebRequests
from ajs3.settings import SETTINGS_FILE, Settings, load_settings

#: The loop wakes at least this often, so depth-10 health checks see it alive.
HEARTBEAT = 5.0


class Daemon(OperatorRequests, UpkeepRequests, WebRequests, DiskFullHandling):
    def __init__(
        self, paths: Paths, mode: StartMode, log_level: str = "info", console: bool = False
    ) -> None:
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
        self.server: ControlServer | None = None
        self.settings: Settings | None = None
        self.journal: Journal | None = None
        self.sched: Scheduler | None = None
        self.notify: Notifications | None = None
        self.purger: Purger | None = None
        self.watched: set[int] = set()
        #: the supervisor server whose notices are watched, and their descriptor
        self.notices_of: object | None = None
        self.notices: int | None = None
        #: the data directory and journal this daemon started with (AJS3-E209)
        self.mark: DataDirMark | None = None
        self.lost: AjsError | None = None
        self.superseded = False
        #: the journal could not be written for want of space (AJS3-E208): since when
        self.disk_full: DiskFull | None = None
        self.disk_full_since = 0.0
        self._disk_logged = 0.0
        self._disk_probed = 0.0

    # -- start -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail for a reason a user must see, before serving."""
        settings = self.settings = load_settings(self.datadir, self.paths.lhost)
        self.lock.acquire(self.paths.lhost)
        if self.lock.previous and self.lock.previous.get("pid"):
            self.log.warning("took over a stale lock", previous=describe(self.lock.previous))
        self.journal = Journal.open(self.datadir)
        self.journal.presize_wal()
        self.mark = DataDirMark.of(self.datadir)
        epoch = self.journal.begin_epoch(socket.gethostname(), os.getpid(), self.mode.value)
        self.log = self.log.bind(epoch=epoch)
        self.notify = Notifications(self.journal, settings, self.log)
        self.sched = Scheduler(self.journal, settings)
        self.live = LiveFigures.attach(self.journal)  # /metrics (ajs3.service.webviews)
        self.sched.log = self.log
        remote = ExecHostJobs(self.sched.core, self.sched.dispatch, self.sched.doubt)
        remote.rundir = self.paths.rundir  # ssh control sockets (docs/exechosts.md)
        self.sched.core.exechosts = remote
        self.sched.recover(self.mode)
        self.notify.start(self.mode.value)
        self.start_purger(self.sched, settings)
        self._listen()
        self.start_web(settings)
        self._write_pidfile(epoch)
        self.log.info("logical host started", mode=self.mode.value, datadir=str(self.datadir))

    def _listen(self) -> None:
        """The control socket: reachable by every local user (0666 in a 0755 run
        directory); who may do what is decided per request from the peer's
        credentials (ajs3.service.access, docs/control.md)."""
        rundir = self.paths.rundir
        prepare_rundir(rundir)  # ours, no link, closed to writers (AJS3-E210)
        os.chmod(rundir, 0o755)  # ... and open to reach the socket (docs/control.md)
        sock_path = self.paths.socket
        if sock_path.exists() or sock_path.is_symlink():
            sock_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # never reachable before the mode below is set on purpose
        try:
            listener.bind(str(sock_path))
        finally:
            os.umask(old)
        os.chmod(sock_path, 0o666)
        listener.listen(512)  # a burst waits here, not refused
        listener.setblocking(False)
        self.server = ControlServer(listener, self.sel, self._handle, self.log)

    def _write_pidfile(self, epoch: int) -> None:
        me = os.getpid()
        info = {
            "pid": me,
            "start": proc_starttime(me),
            "lhost": self.paths.lhost,
            "datadir": str(self.datadir),
            "epoch": epoch,
            "mode": self.mode.value,
        }
        # managing the service is root's; requests need only the socket
        write_private(self.paths.pidfile, json.dumps(info).encode(), 0o640)

    # -- loop ----------------------------------------------------------------------------

    def run(self, ready_fd: int | None = None) -> int:
        rsig, wsig = socket.socketpair()
        rsig.setblocking(False)
        wsig.setblocking(False)
        signal.set_wakeup_fd(wsig.fileno())
        if self.purger is not None and self.purger.reaper is not None:
            self.purger.reaper.wake_by(wsig)  # a batch done: the loop goes on
        if self.sched is not None and isinstance(self.sched.core.exechosts, ExecHostJobs):
            self.sched.core.exechosts.wake = waker(wsig)  # an exchange done (ADR 0027)
        pending: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            pending.append(signum)

        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(rsig, selectors.EVENT_READ, "signal")
        inotify_fd = self.sched.watches.fileno() if self.sched is not None else None
        if inotify_fd is not None:  # file watches (ajs3.engine.watches)
            self.sel.register(inotify_fd, selectors.EVENT_READ, "watches")
        if ready_fd is not None:
            os.write(ready_fd, b'{"ok": true}\n')
            os.close(ready_fd)
        assert self.sched is not None
        sched = self.sched
        try:
            while True:
                self.last_loop = time.time()
                if self._datadir_lost() is not None:
                    break
                sched.check_timers()
                self._unwatch_exited()
                if self.disk_full is None or self._space_back():
                    try:
                        sched.step()
                    except DiskFull as exc:
                        self._note_disk_full(exc)
                assert self.notify is not None
                self.notify.committed()
                self.tick_web()
                self._watch_new()
                if self._stop_done():
                    break
                timeout = HEARTBEAT
                if self.purger is not None and self.disk_full is None and not sched.stopping:
                    try:  # retention: a few milliseconds at most, between steps
                        self.purger.tick()
                    except DiskFull as exc:
                        self._note_disk_full(exc)
                    timeout = min(timeout, max(0.0, self.purger.next_wake() - time.time()))
                wake = sched.next_wake()
                if self.disk_full is not None:
                    wake = None  # what fell due waits for room: the next probe, in 1 s
                    timeout = 1.0
                if wake is not None:
                    timeout = min(timeout, max(0.0, wake - time.time()))
                if self.stop_jobs is not None:
                    timeout = min(timeout, 0.2)
                assert self.server is not None
                due = self.server.next_deadline()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - time.monotonic()))
                for key, mask in self.sel.select(timeout):
                    tag = key.data
                    if isinstance(tag, ControlServer):
                        tag.ready(key, mask)
                    elif tag == "watches":
                        sched.watches.readable()
                    elif tag == "supervisor":
                        sched.core.runner.read_notices()
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
                self.server.expire(time.monotonic())
        except EpochSuperseded as exc:
            self.log.error("stopping: epoch superseded", error=str(exc))
            self.superseded = True
            return 3
        finally:
            self._shutdown()
        if self.lost is not None:
            raise self.lost  # a coded error and a non-zero exit: the monitor fails
        return 0

    def _datadir_lost(self) -> AjsError | None:
        """AJS3-E209 if the data directory or its journal is no longer the one this
        daemon started with (deleted, renamed, unmounted): checked at every turn of
        the loop and before every request, two stat calls. The daemon then stops and
        leaves its jobs running: their supervisors record their ends on their own."""
        if self.lost is None and self.mark is not None:
            why = self.mark.gone()
            if why is not None:
                self.lost = AjsError(
                    why,
                    code=Code.DATADIR_GONE,
                    hint="the daemon stopped and left its jobs running: restore or mount "
                    "the data directory, then start the logical host again",
                )
                self.log.error(
                    "data directory lost: stopping, jobs left running",
                    code=Code.DATADIR_GONE.value,
                    error=why,
                )
        return self.lost

    def _watch_new(self) -> None:
        assert self.sched is not None
        # First the supervisor server's notices (the ends of jobs), on a new server
        # after one ended: its old descriptor may be closed and its number taken again.
        runner = self.sched.core.runner
        if runner.server is not self.notices_of:
            if self.notices is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(self.notices)
            self.notices, self.notices_of = runner.notices(), runner.server
            if self.notices is not None:
                self.sel.register(self.notices, selectors.EVENT_READ, "supervisor")
        for fd in itertools.chain(self.sched.by_fd, self.sched.core.server_jobs):
            if fd >= 0 and fd not in self.watched:
                self.sel.register(fd, selectors.EVENT_READ, str(fd))
                self.watched.add(fd)

    def _unwatch_exited(self) -> None:
        """Pidfds of jobs whose end is known (told by the server, or found on disk) are
        closed by the next step: out of the selector first."""
        assert self.sched is not None
        for fd in self.sched.core.exited:
            if fd in self.watched:
                self.sel.unregister(fd)
                self.watched.discard(fd)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.log.info("SIGHUP: nothing to reload; use `ajs3 service reload`")
            return
        self.log.info(
            "signal received, stopping and leaving jobs running", signal=signal.Signals(signum).name
        )
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
            self.log.error(
                "stop timeout: leaving the rest to the next start", running=len(self.sched.tracked)
            )
            return True
        return False

    def _shutdown(self) -> None:
        self.stop_web()
        for path in (self.paths.socket, self.paths.pidfile):
            with contextlib.suppress(OSError):
                path.unlink()
        if self.server is not None:
            self.server.close()
        if self.sched is not None:
            self.sched.runner.close()
            if isinstance(self.sched.core.exechosts, ExecHostJobs):
                self.sched.core.exechosts.close()
        if self.purger is not None:  # the batch under way ends; its rows at the next start
            self.purger.close()
        if self.notify is not None:  # a clean stop says so; a lost host writes nothing
            self.notify.stop(clean=self.lost is None and not self.superseded)
        if self.journal is not None and self.lost is None:
            # A lost data directory is not touched again: closing would checkpoint
            # and remove the WAL by name, maybe in a directory now in its place.
            self.journal.close()
        self.lock.release()
        self.log.info("logical host stopped")

    # -- requests --------------------------------------------------------------------

    def _handle(self, peer: Peer, line: bytes) -> dict[str, Any]:
        """The answer to one request line: checked against the protocol, then against
        the peer's role, then done (and audited if it changes state)."""
        assert self.server is not None and self.settings is not None
        lost = self._datadir_lost()
        if lost is not None:  # nothing is done, nothing could be recorded
            return protocol.answer_error(lost)
        try:
            req = protocol.check(protocol.decode(line))
        except BadRequest as exc:
            self.server.note_bad("bad control request", peer, error=exc.message[:300])
            return protocol.answer_error(exc)
        try:
            access.check(req.op, access.role_of(peer, self.settings), peer, self.settings)
        except AjsError as exc:
            self.server.note_bad(
                "control request refused", peer, op=req.op.name, code=exc.code.value
            )
            return protocol.answer_error(exc)
        handler = getattr(self, f"op_{req.op.name}")
        kwargs = {protocol.handler_arg(k): v for k, v in req.fields.items()}
        try:
            if req.op.access.changes_state:
                return protocol.answer_ok(self._change(peer, req, handler, kwargs))
            return protocol.answer_ok(handler(peer, **kwargs))
        except EpochSuperseded:
            raise
        except DiskFull as exc:  # rolled back whole; the memory is read back
            self._note_disk_full(exc)
            assert self.sched is not None
            self.sched.resync()
            self._audit(peer, req, exc.code.value, {"message": exc.message}, log_only=True)
            return protocol.answer_error(exc)
        except AjsError as exc:
            error = exc
        except Exception as exc:  # a bug must not take the logical host down
            self.log.exception("request failed", op=req.op.name)
            error = AjsError(
                f"internal error in {req.op.name}: {exc}",
                code=Code.INTERNAL,
                hint="see the daemon log; please report it",
            )
        if req.op.access.changes_state:
            self._audit(peer, req, error.code.value, {"message": error.message})
        return protocol.answer_error(error)

    def _change(
        self, peer: Peer, req: protocol.Request, handler: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Do a state change and write its audit row in one transaction: the row (and
        an entry's idempotency key) exists if and only if the change does."""
        assert self.journal is not None
        with self.journal.transaction():
            result: dict[str, Any] = handler(peer, **kwargs)
            self._audit_row(peer, req, audit.OK, result, key=req.fields.get("key"))
        self._audit(peer, req, audit.OK, result, log_only=True)
        return result

    def _audit_row(
        self,
        peer: Peer,
        req: protocol.Request,
        code: str,
        result: dict[str, Any],
        key: str | None = None,
    ) -> None:
        assert self.journal is not None
        audit.record(
            self.journal,
            uid=peer.uid,
            user=peer.user,
            op=req.op.name,
            args=protocol.audit_args(req),
            code=code,
            result=result,
            key=key,
        )

    def _audit(
        self,
        peer: Peer,
        req: protocol.Request,
        code: str,
        result: dict[str, Any],
        log_only: bool = False,
    ) -> None:
        self.log.info(
            "audit",
            uid=peer.uid,
            user=peer.user,
            pid=peer.pid,
            op=req.op.name,
            args=protocol.audit_args(req),
            result=code,
        )
        if log_only:
            return
        assert self.journal is not None
        try:
            self._audit_row(peer, req, code, result)
        except EpochSuperseded:
            raise
        except Exception:  # the answer still tells the truth; the log has the line above
            self.log.exception("cannot write the audit row of a failed request")

    def op_ping(self, peer: Peer) -> dict[str, Any]:
        assert self.sched is not None and self.journal is not None
        return {
            "pid": os.getpid(),
            "lhost": self.paths.lhost,
            "datadir": str(self.datadir),
            "epoch": self.journal.epoch,
            "loop_age": time.time() - self.last_loop,
            "running_jobs": len(self.sched.tracked),
            "active_runs": len(self.sched.runs),
            "stopping": self.stop_jobs is not None,
            "uptime": time.time() - self.started_at,
            "disk_full": None
            if self.disk_full is None
            else {
                "code": Code.DISK_FULL.value,
                "since": self.disk_full_since,
                "message": self.disk_full.message,
            },
        }

    def op_define(
        self, peer: Peer, *, files: list[dict[str, str]], sources: list[str] | None
    ) -> dict[str, Any]:
        assert self.sched is not None
        defs = load_texts([(f["name"], f["text"]) for f in files])
        # ajs3.yaml is read again with the definitions, as `define` without a daemon
        # reads it: the definitions are checked against, and run under, the settings of
        # the data directory now (docs/engine.md, "Settings")
        settings = load_settings(self.datadir, self.paths.lhost)
        problems = check_job_users(defs, settings, os.geteuid())
        problems += check_hosts(defs, settings.exechosts)
        if problems:  # AJS3-E313, AJS3-E150, before anything is applied
            raise DefinitionError(problems)
        version = self.sched.apply_definitions(defs, sources or [f["name"] for f in files])
        if settings != self.settings:
            self.log.info("settings read again", file=str(self.datadir / SETTINGS_FILE))
        self.settings = settings
        self.sched.use_settings(settings)
        if self.purger is not None:  # keep, purge_interval
            self.purger.settings = settings
        return {"version": version, "jobnets": sorted(defs.jobnets)}

    def op_entry(
        self,
        peer: Peer,
        *,
        jobnet: str,
        at: float | None,
        hold: bool | None,
        key: str,
        vars: list[str] | None,
    ) -> dict[str, Any]:
        assert self.sched is not None and self.journal is not None
        values = runvars.parse_assignments(vars or [], "for the entry")  # E407, nothing done
        first = audit.find_done(self.journal, uid=peer.uid, op="entry", key=key)
        if first is not None:
            asked = {"jobnet": jobnet, "at": at, "hold": hold, "vars": vars}
            if {k: first.args.get(k) for k in asked} != asked:
                raise BadRequest(
                    f"entry: key {key} was used for another request "
                    f"({first.args}); use a new key for a new request"
                )
            return {**first.result, "repeated": True}
        return {"run": self.sched.register(jobnet, at, bool(hold), values)}

    def op_hold(self, peer: Peer, *, run: int | None, unit: str) -> dict[str, Any]:
        assert self.sched is not None
        ur = self.sched.hold(run, unit)
        return {"unit": ur.path, "status": ur.status.value}

    def op_release(
        self, peer: Peer, *, run: int | None, unit: str, as_: str | None
    ) -> dict[str, Any]:
        assert self.sched is not None
        ur = self.sched.release(run, unit, as_)
        return {"unit": ur.path, "status": ur.status.value}

    def op_kill(
        self, peer: Peer, *, run: int | None, unit: str | None, jobnet: str | None
    ) -> dict[str, Any]:
        assert self.sched is not None
        state = self.sched.kill(run, unit, jobnet)
        return {"run": state.run.id}

    def op_rerun(
        self, peer: Peer, *, run: int | None, jobnet: str | None, mode: str, unit: str | None
    ) -> dict[str, Any]:
        assert self.sched is not None
        state = self.sched.rerun(run, jobnet, mode, unit)
        return {"run": state.run.id}

    def op_why(self, peer: Peer, *, run: int | None, unit: str) -> dict[str, Any]:
        assert self.sched is not None
        return self.sched.explain(run, unit)

    def op_show(
        self, peer: Peer, *, target: str | None, run: int | None, all: bool | None
    ) -> dict[str, Any]:
        assert self.journal is not None and self.sched is not None
        current = (self.sched.core.def_version, self.sched.definitions)
        return views.show_in(self.journal, target, run, bool(all), current)

    def op_log(
        self, peer: Peer, *, target: str, run: int | None, stderr: bool | None, from_: int | None
    ) -> dict[str, Any]:
        assert self.journal is not None
        return joboutput.log_in(self.journal, self.datadir, target, run, bool(stderr), from_)

    def op_stop(self, peer: Peer, *, jobs: str | None, timeout: float | None) -> dict[str, Any]:
        self.begin_stop(StopJobs(jobs or "kill"), 60.0 if timeout is None else timeout)
        return {"stopping": True}

    def op_reload(self, peer: Peer, *, log_level: str) -> dict[str, Any]:
        logs.set_level(log_level)
        self.log.info("log level changed", level=log_level)
        return {"log_level": log_level}


def run_foreground(
    paths: Paths, mode: StartMode, log_level: str, console: bool, ready_fd: int | None = None
) -> int:
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
