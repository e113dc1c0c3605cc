"""``ajs3 exechost serve``: the execution host's side of the protocol.

Run by sshd as the forced command of a logical host's key (docs/exechosts.md)::

    command="ajs3 exechost serve --lhost-key LHOST",no-port-forwarding,no-pty,... KEY

It answers the requests of :mod:`ajs3.exechost.protocol` on stdin/stdout. Jobs start
exactly as local jobs do, under ``ajs3-supervise`` (ADR 0012, 0030): the claim
(``started.json``) durable before exec, the end (``status.json``) written whole, each under
``<state>/<lhost>/jobs/<run-id>``; the session may end, the supervisors live on. A
job's AJS3_VARS_OUT file is ``<state>/<lhost>/vars/<run-id>.out``, made as a local
job's is (:mod:`ajs3.engine.runvars`), and read back with its output.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from pathlib import Path
from typing import Any, BinaryIO

from ajs3.engine import jobenv, jobgroups, runvars
from ajs3.engine import runner as rn
from ajs3.errors import AjsError, Code
from ajs3.exechost import mirror
from ajs3.exechost import protocol as pr
from ajs3.exechost.fence import Fence
from ajs3.settings import Settings

DEFAULT_STATE_DIR = Path("/var/lib/ajs3-exec")
#: How long a start waits for the supervisor's claim before it answers.
CLAIM_WAIT = 10.0
SIGNALS = {int(signal.SIGTERM), int(signal.SIGKILL), 0}


def run_state(runner: rn.Runner, run_id: str) -> dict[str, Any]:
    """What this host knows of one run, from the supervisor's records."""
    jobdir = runner.jobdir(run_id)
    started_path = jobdir / "started.json"
    if not os.path.lexists(started_path):
        return {"state": "absent"}
    started = runner.started(jobdir)
    if started is None:
        started = _settled(runner, jobdir)
    if started is None:
        return {"state": "starting"}  # being written under the supervisor's lock
    if started.get("void"):
        return {"state": "void", "started": started}
    status = runner.status(jobdir)
    if status is not None:
        return {"state": "ended", "started": started, "status": status}
    if jobgroups.is_same_process(
        int(started.get("supervisor_pid", 0)), started.get("supervisor_start")
    ):
        return {"state": "running", "started": started}
    status = runner.status(jobdir)  # it may have ended between the two looks
    if status is not None:
        return {"state": "ended", "started": started, "status": status}
    return {"state": "lost", "started": started}


def _settled(runner: rn.Runner, jobdir: Path) -> dict[str, Any] | None:
    """The start record of a claim whose job has not written its pids, once its
    supervisor is gone (ADR 0032): under its lock, either the job's pids are there, or
    the server died before it started the job, which then never ran and is voided in
    place. None while the supervisor lives or holds the lock (still starting), or when
    the record names no supervisor yet (being written)."""
    claim = rn.read_json(jobdir / "started.json")
    if claim is None or "supervisor_pid" not in claim:
        return None
    pid, start = claim.get("supervisor_pid"), claim.get("supervisor_start")
    if not isinstance(pid, int) or jobgroups.is_same_process(pid, start):
        return None
    try:
        whole = runner.settle(jobdir, "its supervisor died before it started the job", 1.0)
    except TimeoutError:
        return None
    return whole if whole is not None else runner.started(jobdir)


class Server:
    """One session of a logical host on this execution host."""

    def __init__(
        self,
        lhost: str,
        state_dir: Path,
        default_user: str = "nobody",
        allow_root_jobs: bool = False,
    ) -> None:
        self.lhost = lhost
        self.dir = state_dir / lhost
        state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        rn.private_dir(self.dir)
        settings = Settings(
            lhost=lhost,
            datadir=self.dir,
            default_user=default_user,
            allow_root_jobs=allow_root_jobs,
        )
        self.runner = rn.Runner(self.dir, settings)
        self.fence = Fence(self.dir, lhost)
        self.epoch: int | None = None

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            return self.hello(req)
        if self.epoch is None:
            raise AjsError("the first request must be hello", code=Code.EXEC_HOST_PROTOCOL)
        if op == "poll":
            ids = req.get("run_ids")
            if not isinstance(ids, list) or len(ids) > 100_000:
                raise AjsError("poll needs run_ids, a list", code=Code.EXEC_HOST_PROTOCOL)
            runs = {r: run_state(self.runner, pr.run_id(r)) for r in ids}
            offsets = mirror.parse_offsets(req.get("offsets"), runs)
            self.inline_output(runs, offsets)
            mirror.serve_live(runs, offsets, self.read)
            return {"ok": True, "runs": runs}
        if op == "output":
            return self.output(req)
        if op not in ("start", "start_many", "kill", "void"):
            raise AjsError(f"unknown request {op!r}", code=Code.EXEC_HOST_PROTOCOL)
        with self.fence.acting(self.epoch):
            if op == "start":
                return self.start(req)
            if op == "start_many":
                batch = req.get("runs")
                if not isinstance(batch, list) or len(batch) > 10_000:
                    raise AjsError("start_many needs runs, a list", code=Code.EXEC_HOST_PROTOCOL)
                return {"ok": True, "runs": self.start_many(batch)}
            if op == "kill":
                return self.kill(req)
            return self.void(req)

    def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        version = req.get("version")
        if version != pr.VERSION:
            older = (
                "this execution host's"
                if isinstance(version, int) and version > pr.VERSION
                else "the logical host's"
            )
            raise AjsError(
                f"protocol version {version!r} spoken to version {pr.VERSION}: "
                f"{older} ajs3 is older",
                code=Code.EXEC_HOST_VERSION,
                hint="install the same ajs3 release on the logical host and its execution hosts",
            )
        if req.get("lhost") != self.lhost:
            raise AjsError(
                f"this key speaks for logical host {self.lhost}, not {req.get('lhost')!r}",
                code=Code.EXEC_HOST_PROTOCOL,
                hint="give each logical host its own key and forced command",
            )
        epoch = req.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise AjsError("hello needs an epoch", code=Code.EXEC_HOST_PROTOCOL)
        self.epoch = self.fence.hello(epoch)
        return {"ok": True, "version": pr.VERSION, "host": self.runner.identity}

    def start(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id = pr.run_id(req.get("run_id"))
        return {"ok": True, **self.start_many([req])[run_id]}

    def start_many(self, reqs: list[Any]) -> dict[str, dict[str, Any]]:
        """Start each run not claimed yet, all at once; the state of each by run id."""
        states: dict[str, dict[str, Any]] = {}
        ready: list[tuple[str, Path, dict[str, Any]]] = []
        for req in reqs:
            if not isinstance(req, dict):
                raise AjsError("start_many needs a list of starts", code=Code.EXEC_HOST_PROTOCOL)
            run_id = pr.run_id(req.get("run_id"))
            jobdir = self.runner.jobdir(run_id)
            if run_id in states or any(r == run_id for r, _, _ in ready):
                continue
            if os.path.lexists(jobdir / "started.json"):  # claimed: never started twice
                states[run_id] = run_state(self.runner, run_id)
                continue
            try:
                spec = self._spec(run_id, req)
            except (KeyError, jobenv.JobUserError, ValueError) as exc:
                user = req.get("user")
                error = f"no such user {user!r}" if isinstance(exc, KeyError) else str(exc)
                states[run_id] = {"state": "failed", "error": error}
                continue
            ready.append((run_id, jobdir, spec))
        pids = self.runner.spawn_many([(jobdir, spec) for _, jobdir, spec in ready])
        self.runner.take_ended()  # here ends are read from the records, when asked for
        # A supervisor claims its run within milliseconds: answer once they have, so
        # that the logical host rarely reads "absent" for a run it was told started.
        end = time.monotonic() + CLAIM_WAIT
        waiting = [jobdir for _, jobdir, _ in ready]
        while waiting and time.monotonic() < end:
            waiting = [j for j in waiting if not os.path.lexists(j / "started.json")]
            if waiting:
                time.sleep(0.01)
        for (run_id, _, _), pid in zip(ready, pids, strict=True):
            if pid is None or pid < 0:  # unanswered or fork failed: the records decide
                states[run_id] = run_state(self.runner, run_id)
            else:
                states[run_id] = {"state": "running", "supervisor_pid": pid}
        return states

    def _spec(self, run_id: str, req: dict[str, Any]) -> dict[str, Any]:
        """The supervisor's spec of a start request (ValueError if malformed)."""
        argv, env = req.get("argv"), req.get("env")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) for a in argv)
            or not isinstance(env, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise ValueError("a start needs argv (a list of text) and env (text: text)")
        cwd, user, limit = req.get("cwd"), req.get("user"), req.get("output_limit")
        user = user if isinstance(user, str) else None
        who = self.runner.job_user(user, "the job")
        try:  # the job's AJS3_VARS_OUT, fetched with its end (docs/exechosts.md)
            out = runvars.prepare_out(self.dir, run_id, who.uid, who.gid, keep=True)
        except (OSError, AjsError) as exc:
            raise ValueError(f"cannot make its AJS3_VARS_OUT file: {exc}") from exc
        env = {**env, "AJS3_VARS_OUT": str(out)}
        _, spec = self.runner.make_spec(
            run_id, argv, env, cwd if isinstance(cwd, str) else None, user
        )
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            spec["output_limit"] = limit
        return spec

    def kill(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id = pr.run_id(req.get("run_id"))
        sig = req.get("signal")
        if sig not in SIGNALS:
            raise AjsError(f"kill with signal {sig!r}", code=Code.EXEC_HOST_PROTOCOL)
        started = self.runner.started(self.runner.jobdir(run_id))
        if not started or started.get("void"):
            return {"ok": True, "signalled": False}
        return {
            "ok": True,
            "signalled": jobgroups.kill_group(started.get("pgid"), int(sig), started),
        }

    def void(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id = pr.run_id(req.get("run_id"))
        why = str(req.get("why") or "claimed by the logical host: never started")
        voided = self.runner.void(self.runner.jobdir(run_id), why[:200])
        return {"ok": True, "voided": voided, **run_state(self.runner, run_id)}

    def inline_output(self, runs: dict[str, dict[str, Any]], offsets: mirror.Offsets) -> None:
        """The output of ended runs, within a budget per answer, so that most ends
        come home in the poll that finds them (the rest with ``output``); each stream
        from the poll's offset of it on (the logical host holds what is before)."""
        budget = pr.INLINE_BUDGET
        for run_id, state in runs.items():
            if state.get("state") != "ended":
                continue
            streams = {}
            for stream in pr.STREAMS:
                cap = runvars.MAX_OUT_FILE + 1 if stream == pr.VARS else budget
                offset = offsets.get(run_id, {}).get(stream, 0)
                data, size = self.read(run_id, stream, offset, max(cap, 1))
                encoded = base64.b64encode(data).decode()
                budget -= len(encoded)
                streams[stream] = {"data": encoded, "size": size, "offset": offset}
            state["output"] = streams
            if budget <= 0:
                return

    def output(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id = pr.run_id(req.get("run_id"))
        stream, offset, limit = req.get("stream"), req.get("offset", 0), req.get("limit")
        if stream not in pr.STREAMS or not isinstance(offset, int) or offset < 0:
            raise AjsError("output needs stream and offset", code=Code.EXEC_HOST_PROTOCOL)
        size = (
            min(limit, pr.OUTPUT_CHUNK) if isinstance(limit, int) and limit > 0 else pr.OUTPUT_CHUNK
        )
        data, total = self.read(run_id, stream, offset, size)
        return {"ok": True, "data": base64.b64encode(data).decode(), "size": total}

    def read(self, run_id: str, stream: str, offset: int, limit: int) -> tuple[bytes, int]:
        """At most ``limit`` bytes of a run's stream from ``offset``, and its size."""
        if stream == pr.VARS:  # the job's AJS3_VARS_OUT file
            path = runvars.out_path(self.dir, run_id)
        else:
            path = self.runner.jobdir(run_id) / stream
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return b"", 0
        try:
            total = os.fstat(fd).st_size
            data = os.pread(fd, limit, offset) if limit > 0 else b""
        finally:
            os.close(fd)
        return data, total


def answer_line(server: Server, line: bytes) -> dict[str, Any]:
    """The one answer to one request line: ok, or a coded refusal."""
    try:
        return server.handle(pr.decode(line))
    except AjsError as exc:
        return pr.refusal(exc)
    except (OSError, ValueError, TypeError) as exc:
        return pr.refusal(AjsError(f"{type(exc).__name__}: {exc}", code=Code.EXEC_HOST_PROTOCOL))


def serve(server_args: dict[str, Any], stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer requests until stdin ends. A failure to set up is answered to the first
    request (so the logical host sees its code), then the session ends."""
    try:
        server: Server | None = Server(**server_args)
        setup_error: AjsError | None = None
    except AjsError as exc:
        server, setup_error = None, exc
    while True:
        line = stdin.readline(pr.MAX_LINE + 1)
        if not line:
            return 0
        if setup_error is not None:
            answer = pr.refusal(setup_error)
        else:
            assert server is not None
            answer = answer_line(server, line)
        stdout.write(pr.encode(answer))
        stdout.flush()
        if setup_error is not None:
            return 1
