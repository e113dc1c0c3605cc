"""The one client of the control protocol: what the `ajs3` command, the benchmark and
the tests use to talk to a daemon.

Each method builds its request from :data:`ajs3.service.protocol.OPS` (so nothing the
daemon does not handle can be sent) and says honestly what happened:

- the daemon could not be reached: AJS3-E302, nothing was done;
- the daemon answered AJS3-E311 or E312: nothing was done (retried a little);
- the request was sent and no answer came: a read is reported as AJS3-E304; a change
  as AJS3-E314 "outcome unknown", never as "not done". ``entry`` carries an
  idempotency key and is sent again with the same key first: the daemon remembers
  keys in its journal and answers a repeat with the first registration.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ajs3.errors import (
    AjsError,
    Code,
    DefinitionError,
    NotRunningError,
    Problem,
    ServiceError,
)
from ajs3.service import protocol

#: The largest answer read (a `why` of a big jobnet is the largest).
MAX_ANSWER = 64 * 1024 * 1024
#: Pauses before sending again a request the daemon did not take (E311, E312).
BUSY_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class _NoAnswer(Exception):
    """The request was sent and no whole answer came back: it may have been done."""


class _NotTaken(Exception):
    """The daemon closed the connection before the whole request was sent: not done."""


class Client:
    """Requests to the daemon listening on ``socket_path``.

    ``timeout`` bounds each exchange (connect, send, answer); ``retries`` is how many
    more times an idempotent request is sent, with the same key, after no answer.
    """

    def __init__(self, socket_path: Path | str, timeout: float = 30.0, retries: int = 2) -> None:
        self.path = Path(socket_path)
        self.timeout = timeout
        self.retries = retries

    # -- the requests (tests/unit/test_protocol.py checks them against protocol.OPS) ---

    def ping(self) -> dict[str, Any]:
        return self.call("ping")

    def why(self, unit: str, run: int | None = None) -> dict[str, Any]:
        return self.call("why", unit=unit, run=run)

    def show(
        self, target: str | None = None, run: int | None = None, all: bool | None = None
    ) -> dict[str, Any]:
        return self.call("show", target=target, run=run, all=all)

    def events(self, unit: str, run: int | None = None) -> dict[str, Any]:
        return self.call("events", unit=unit, run=run)

    def log(
        self,
        target: str,
        run: int | None = None,
        stderr: bool | None = None,
        from_: int | None = None,
    ) -> dict[str, Any]:
        """The last MiB of an output file (or, ``from_`` an offset, the bytes from there
        on): base64 ``data`` from ``offset``; ``truncated`` if cut; ``ended`` once its
        job no longer runs."""
        return self.call("log", target=target, run=run, stderr=stderr, **{"from": from_})

    def define(
        self, files: list[tuple[str, str]], sources: list[str] | None = None
    ) -> dict[str, Any]:
        """Apply definition files given as (name, text); the daemon validates them with
        the same loader as `ajs3 define --check`."""
        return self.call(
            "define", files=[{"name": n, "text": t} for n, t in files], sources=sources
        )

    def entry(
        self,
        jobnet: str,
        at: float | None = None,
        hold: bool | None = None,
        key: str | None = None,
        vars: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register a run; ``vars`` are its values, ``NAME=VALUE`` each."""
        return self.call("entry", jobnet=jobnet, at=at, hold=hold, key=key or new_key(), vars=vars)

    def hold(self, unit: str, run: int | None = None) -> dict[str, Any]:
        return self.call("hold", unit=unit, run=run)

    def release(self, unit: str, run: int | None = None, as_: str | None = None) -> dict[str, Any]:
        return self.call("release", unit=unit, run=run, **{"as": as_})

    def kill(
        self, run: int | None = None, unit: str | None = None, jobnet: str | None = None
    ) -> dict[str, Any]:
        return self.call("kill", run=run, unit=unit, jobnet=jobnet)

    def rerun(
        self, mode: str, run: int | None = None, jobnet: str | None = None, unit: str | None = None
    ) -> dict[str, Any]:
        return self.call("rerun", mode=mode, run=run, jobnet=jobnet, unit=unit)

    def suspend(self, jobnet: str, reason: str | None = None) -> dict[str, Any]:
        return self.call("suspend", jobnet=jobnet, reason=reason)

    def resume(self, jobnet: str, reason: str | None = None) -> dict[str, Any]:
        return self.call("resume", jobnet=jobnet, reason=reason)

    def plan_change(
        self,
        jobnet: str,
        action: str,
        when: str,
        to: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Skip, move (``to``) or add one run; times in ISO 8601."""
        return self.call(
            "plan_change", jobnet=jobnet, action=action, when=when, to=to, reason=reason
        )

    def chgstat(
        self, unit: str, status: str, reason: str, run: int | None = None
    ) -> dict[str, Any]:
        return self.call("chgstat", unit=unit, status=status, reason=reason, run=run)

    def purge(self) -> dict[str, Any]:
        return self.call("purge")

    def purge_status(self, plan: bool | None = None) -> dict[str, Any]:
        return self.call("purge_status", plan=plan)

    def reload(self, log_level: str) -> dict[str, Any]:
        return self.call("reload", log_level=log_level)

    def notify_test(self, route: str) -> dict[str, Any]:
        return self.call("notify_test", route=route)

    def notify_status(self) -> dict[str, Any]:
        return self.call("notify_status")

    def plan(self, from_: float, to: float, jobnet: str | None = None) -> dict[str, Any]:
        """The runs due from ``from_`` (inclusive) to ``to`` (exclusive), epoch seconds."""
        return self.call("plan", jobnet=jobnet, **{"from": from_, "to": to})

    def structure(self, jobnet: str) -> dict[str, Any]:
        return self.call("structure", jobnet=jobnet)

    def timeline(self, from_: float, to: float, jobnet: str | None = None) -> dict[str, Any]:
        return self.call("timeline", jobnet=jobnet, **{"from": from_, "to": to})

    def changes(self) -> dict[str, Any]:
        return self.call("changes")

    def metrics(self) -> dict[str, Any]:
        return self.call("metrics")

    def stop(self, jobs: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.call("stop", jobs=jobs, timeout=timeout)

    # -- the exchange ------------------------------------------------------------------

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send request ``op`` with ``fields`` and return its result, or raise its error.

        An idempotent request without a ``key`` gets a new one here.
        """
        definition = protocol.OPS.get(op)
        if definition is not None and definition.idempotent and not fields.get("key"):
            fields["key"] = new_key()
        request = protocol.build(op, **fields)
        line = request.to_line()
        tries = 1 + (self.retries if request.op.idempotent else 0)
        busy = list(BUSY_BACKOFF)
        no_answer: _NoAnswer | None = None
        while tries > 0:
            try:
                answer = self._exchange(line)
            except _NoAnswer as exc:
                no_answer = exc
                tries -= 1
                continue
            except _NotTaken as exc:
                if not busy:
                    raise ServiceError(
                        f"the daemon on {self.path} closed the connection before taking the "
                        f"request ({exc}); nothing was done",
                        code=Code.CONTROL,
                        hint="try again; see the daemon's log if it lasts",
                    ) from exc
                time.sleep(busy.pop(0))
                continue
            error = answer.get("error") if not answer.get("ok") else None
            code = error.get("code") if isinstance(error, dict) else None
            if code in (Code.REQUEST_TIMEOUT.value, Code.TOO_MANY_CLIENTS.value) and busy:
                time.sleep(busy.pop(0))  # not taken by the daemon: sending again is safe
                continue
            return _result(answer)
        assert no_answer is not None
        raise self._unanswered(request, no_answer)

    def _unanswered(self, request: protocol.Request, exc: _NoAnswer) -> AjsError:
        if not request.op.access.changes_state:
            return ServiceError(
                f"no answer from the daemon on {self.path} within {self.timeout:g} s ({exc})",
                code=Code.CONTROL,
                hint="see `ajs3 service status` and the daemon's log",
            )
        key = request.fields.get("key")
        again = (
            f"it was sent with key {key}: sending it again with the same key is safe "
            f"(`ajs3 {request.op.name} ... --key {key}`)"
            if key
            else "check with `ajs3 show` before doing it again"
        )
        return AjsError(
            f"{request.op.name} was sent to the daemon on {self.path} and no answer "
            f"came ({exc}); it may or may not have taken effect",
            code=Code.OUTCOME_UNKNOWN,
            hint=again,
        )

    def _exchange(self, line: bytes) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise NotRunningError(
                    f"logical host is not running (no daemon on {self.path})",
                    hint="start it with `ajs3 service start`",
                ) from exc
            except BlockingIOError as exc:  # the listen queue is full: not taken
                raise _NotTaken("the daemon's listen queue is full") from exc
            except PermissionError as exc:
                raise AjsError(
                    f"no access to the control socket {self.path}",
                    code=Code.PERMISSION_DENIED,
                    hint="the daemon may be an older ajs3 whose socket only its "
                    "group may open; ask an administrator",
                ) from exc
            except OSError as exc:
                raise ServiceError(f"control socket {self.path}: {exc}") from exc
            try:
                sock.sendall(line)
            except OSError as exc:
                # The daemon closed before taking the whole line, so it did nothing with
                # it; it may have said why (E311, E312, E310) before closing.
                try:
                    data = _read_answer(sock, deadline)
                except OSError:
                    raise _NotTaken(str(exc) or type(exc).__name__) from exc
            else:
                try:
                    data = _read_answer(sock, deadline)
                except OSError as exc:  # TimeoutError included
                    raise _NoAnswer(str(exc) or type(exc).__name__) from exc
        finally:
            sock.close()
        try:
            answer = json.loads(data)
        except ValueError as exc:
            raise _NoAnswer(f"an answer that is not JSON: {data[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise _NoAnswer(f"an answer that is not an object: {data[:200]!r}")
        return answer


def new_key() -> str:
    """A fresh idempotency key: one per invocation, reused for its retries."""
    return uuid.uuid4().hex


def _read_answer(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            if not chunks:
                raise ConnectionResetError("the daemon closed the connection")
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
        if size > MAX_ANSWER:
            raise ConnectionError(f"an answer larger than {MAX_ANSWER} bytes")


def _result(answer: dict[str, Any]) -> dict[str, Any]:
    if answer.get("ok") is True:
        result = answer.get("result", {})
        return result if isinstance(result, dict) else {"value": result}
    err = answer.get("error")
    if not isinstance(err, dict):
        err = {}
    try:
        code = Code(err.get("code", Code.INTERNAL.value))
    except ValueError:
        code = Code.INTERNAL
    problems = err.get("problems")
    if isinstance(problems, list) and problems:
        try:
            found = [
                Problem(Code(p["code"]), str(p["file"]), int(p["line"]), str(p["message"]))
                for p in problems
            ]
        except (KeyError, TypeError, ValueError):
            found = []  # not the shape the daemon writes: the plain error below
        if found:
            raise DefinitionError(found)
    raise AjsError(
        str(err.get("message", "unknown error")), code=code, hint=str(err.get("hint", ""))
    )
