"""A long-lived protocol session with one execution host.

Starting ``ajs3 exechost serve`` costs the far side a Python start (hundreds of
milliseconds on a busy host), so the logical host keeps one session per execution
host open: one ``ssh`` (through the shared master connection) whose stdin and stdout
carry request and answer lines for as long as they work. ``hello`` is said once, when
it opens; the epoch fence is checked again by every start, kill and void there. A
session that fails in any way (ssh gone, an answer late or malformed) is closed, the
exchange raises :class:`~ajs3.exechost.transport.Unreachable` with the answers that
came, and the next exchange opens a new one. A session belongs to one thread (the
execution host's link, :mod:`ajs3.exechost.link`); ``abort``, a descriptor that
becomes readable when that link stops, cuts an exchange under way short.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.exechost import protocol as pr
from ajs3.exechost import transport
from ajs3.exechost_config import ExecHost


class Session:
    """One open ``ssh ... ajs3 exechost serve`` and its pipes."""

    def __init__(
        self, host: ExecHost, control: Path, lhost: str, epoch: int, abort: int | None = None
    ) -> None:
        self.host = host
        self.abort = abort
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
        try:
            self.proc = subprocess.Popen(
                transport.ssh_argv(host, control),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise transport.Unreachable(
                f"cannot run ssh: {exc}", Code.EXEC_HOST_UNREACHABLE, []
            ) from exc
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self.buf = b""
        self.err = b""
        hello = {"op": "hello", "version": pr.VERSION, "lhost": lhost, "epoch": epoch}
        [answer] = self.call([hello], transport.EXCHANGE_TIMEOUT, hello=True)
        try:
            pr.raise_refusal(answer, host.name)
        except AjsError:
            self.close()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(
        self, requests: list[dict[str, Any]], timeout: float, *, hello: bool = False
    ) -> list[dict[str, Any]]:
        """Send the requests, read one answer each (in order) within ``timeout``."""
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        out = b"".join(pr.encode(r) for r in requests)
        answers: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        try:
            sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
            sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
            if out:
                sel.register(self.proc.stdin, selectors.EVENT_WRITE, "in")
            if self.abort is not None:
                sel.register(self.abort, selectors.EVENT_READ, "abort")
            while len(answers) < len(requests):
                left = end - time.monotonic()
                if left <= 0:
                    self._fail(answers, "no answer in time", hello)
                events = sel.select(left)
                for key, _ in events:
                    if key.data == "abort":
                        self._fail(answers, "the daemon is stopping", hello)
                    if key.data == "in":
                        try:
                            sent = os.write(key.fd, out[:65536])
                        except BlockingIOError:
                            continue
                        except OSError:
                            self._fail(answers, "ssh went away", hello)
                        out = out[sent:]
                        if not out:
                            sel.unregister(self.proc.stdin)
                    else:
                        try:
                            chunk = os.read(key.fd, 1 << 20)
                        except BlockingIOError:
                            continue
                        if key.data == "err":
                            self.err = (self.err + chunk)[-8192:]
                            if not chunk:
                                sel.unregister(self.proc.stderr)
                            continue
                        if not chunk:
                            self._fail(answers, "ssh ended", hello)
                        self.buf += chunk
                        while b"\n" in self.buf and len(answers) < len(requests):
                            line, self.buf = self.buf.split(b"\n", 1)
                            answers.append(pr.decode(line))
                        if len(self.buf) > pr.MAX_LINE:
                            self._fail(answers, "an answer too long", hello)
        except AjsError as exc:
            if not isinstance(exc, transport.Unreachable):
                self.close()
            raise
        finally:
            sel.close()
        return answers

    def _fail(self, answers: list[dict[str, Any]], what: str, hello: bool) -> None:
        self.close()
        said = self.err.decode(errors="replace").strip().splitlines()
        last = said[-1] if said else what
        if hello and answers == [] and not said:
            last = what
        code = (
            Code.EXEC_HOST_AUTH
            if any(m in line for line in said for m in transport.AUTH_MARKS)
            else Code.EXEC_HOST_UNREACHABLE
        )
        why = (
            "refused the key or its host key is not known"
            if code is Code.EXEC_HOST_AUTH
            else "cannot be reached"
        )
        host = self.host
        raise transport.Unreachable(
            f"execution host {host.name} ({host.user}@{host.destination}:{host.port}) "
            f"{why}: {last}",
            code,
            answers,
        )

    def close(self) -> None:
        proc = self.proc
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                self.err = (self.err + (proc.stderr.read() or b""))[-8192:]
                proc.stderr.close()


class Sessions:
    """The open session of each execution host of one logical host."""

    def __init__(self, abort: int | None = None) -> None:
        self.open: dict[str, Session] = {}
        self.abort = abort

    def exchange(
        self,
        host: ExecHost,
        control: Path,
        lhost: str,
        epoch: int,
        requests: list[dict[str, Any]],
        timeout: float = transport.EXCHANGE_TIMEOUT,
    ) -> list[dict[str, Any]]:
        session = self.open.get(host.name)
        if session is not None and (session.host != host or not session.alive()):
            session.close()
            session = None
        if session is None:
            self.open.pop(host.name, None)
            session = Session(host, control, lhost, epoch, self.abort)
            self.open[host.name] = session
        try:
            return session.call(requests, timeout)
        except AjsError:
            self.open.pop(host.name, None)
            raise

    def close(self) -> None:
        for session in self.open.values():
            session.close()
        self.open.clear()
