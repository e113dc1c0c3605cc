"""The daemon's side of the supervisor server, ``ajs3-supervise --serve`` (supervise.c).

One server per daemon is the supervisor of every job the daemon starts (ADR 0030): it
numbers the requests (a length, a newline, NUL-ended fields: :func:`encode_request`)
from 0 and says ``e NUMBER`` on its stdout when that job's end is recorded, followed by
the size of the job's AJS3_VARS_OUT file and the end record, status.json's text, when
it wrote one (ADR 0037: the daemon needs not read the file back). The
daemon does not wait for it (ADR 0031): a request is the server's once written, and
one the server never took up (it died first) leaves no start record, which the daemon
looks for when the server has ended (:meth:`ajs3.engine.collect.Collector.handle_exit`).
It leads a session of its own and outlives the daemon until its last job has ended;
letting go of it (:meth:`SupervisorServer.close`) never stops it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from ajs3.engine import native
from ajs3.errors import Code, ServiceError


class Told(NamedTuple):
    """A job's end as the server told it: status.json's text, and the size of the job's
    AJS3_VARS_OUT file as its end was recorded (-1: it is gone; None: not known, the
    request named no such file for the server to make)."""

    record: bytes
    vars_out_size: int | None


def parse_end(line: bytes) -> tuple[int, Told | None]:
    """``e SEQ`` or ``e SEQ VARS_SIZE RECORD``: the request's number and what was told."""
    parts = line.split(b" ", 3)
    seq = int(parts[1])
    if len(parts) < 4:
        return seq, None
    size = int(parts[2])
    return seq, Told(parts[3], None if size < -1 else size)


def supervisor_binary() -> Path:
    """The ``ajs3-supervise`` binary; a clear error if it was never built."""
    binary = native.path()
    if not os.access(binary, os.X_OK):
        raise ServiceError(
            f"the job supervisor {binary} is missing: jobs cannot start",
            code=Code.SUPERVISOR_MISSING,
            hint="install ajs3 with `pip install .` (it compiles the supervisor and needs "
            "a C compiler), or build it in a working tree with "
            "`python -m ajs3.engine.native`",
        )
    return binary


def encode_request(jobdir: Path, spec: dict[str, Any]) -> bytes:
    """One request for the supervisor server: a length, a newline, NUL-ended fields
    (see supervise.c). The spec comes from :meth:`Runner.make_spec`, which refused NUL
    bytes in every field that can hold one."""
    argv = [str(a) for a in spec["argv"]]
    env = [f"{k}={v}" for k, v in spec["env"].items()]
    uid, gid = spec.get("uid"), spec.get("gid")
    fields = [
        str(jobdir),
        spec.get("run_id") or "",
        spec.get("cwd") or "",
        "" if uid is None else str(uid),
        "" if gid is None else str(gid),
        (spec.get("user") or "") if uid is not None else "",
        str(spec.get("output_limit") or ""),
        str(len(argv)),
        *argv,
        str(len(env)),
        *env,
    ]
    if spec.get("vars_out") is not None:  # the job's AJS3_VARS_OUT file, made by the server
        path, owner_uid, owner_gid = spec["vars_out"]
        fields += [str(path), str(owner_uid), str(owner_gid)]
    # os.fsencode of each field, at once (utf-8, undecodable bytes kept as they came)
    body = "\0".join(fields).encode("utf-8", "surrogateescape") + b"\0"
    return b"%d\n" % len(body) + body


class SupervisorServer:
    """The supervisor server of one daemon (started at the first request, and again
    after one ended), and what it told."""

    def __init__(self, binary: Path, claims: Path | None = None) -> None:
        self.binary = binary
        #: where the server logs its claims (ADR 0033); None: each claim is fsynced
        self.claims = claims
        #: the size of each claim log, when not the server's own (256 KiB)
        self.claims_size: int | None = None
        #: the server writes each run's start and end records into logs of its own in
        #: ``claims`` instead of files in the run's directory (``--records``, ADR 0039;
        #: not used by the daemon yet), each followed by the next past ``records_size``
        self.records = False
        self.records_size: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        #: a file the server fdatasyncs before the jobs of a batch start (the journal's
        #: write-ahead log, ADR 0034, 0035), as (descriptor, device, inode); None: none
        self.sync_file: tuple[int, int, int] | None = None
        #: the file the running server syncs, as (device, inode)
        self._server_syncs: tuple[int, int] | None = None
        #: what the server was asked to start, by request number, until it ended
        self._asked: dict[int, Path] = {}
        self._sent = 0
        self._lines = b""
        #: job directories whose end the server told and the daemon did not take yet,
        #: with what it told of it
        self._ended: list[tuple[Path, Told | None]] = []

    def spawn_many(self, items: list[tuple[Path, dict[str, Any]]]) -> list[int | None]:
        """Send each (jobdir, spec) to the supervisor server; the supervisor's pid (the
        server's) for each, without waiting for the server (ADR 0031).

        All requests go to the server in one write (the claims of a batch are made
        durable together). A job that cannot start has its end recorded like any other
        (``failed_to_start``). If the write fails (the server died), each is None:
        the server may have read some, so whether a job started is unknown, and it is
        never simply asked again (that could run it twice); the caller looks for the
        run's records instead.
        """
        if not items:
            return []
        payload = b"".join(encode_request(jobdir, spec) for jobdir, spec in items)
        server = self._start()
        first = self._sent
        for k, (jobdir, _) in enumerate(items):
            self._asked[first + k] = jobdir
        self._sent += len(items)
        try:
            assert server.stdin is not None
            server.stdin.write(payload)
            server.stdin.flush()
        except (OSError, ValueError):
            self.close()
            return [None] * len(items)
        return [server.pid] * len(items)

    def _read_lines(self) -> bool:
        """Read once from the server; the ends told are kept for :meth:`take_ended`.
        False at its end."""
        assert self.process is not None and self.process.stdout is not None
        data = os.read(self.process.stdout.fileno(), 65536)
        if not data:
            return False
        *lines, self._lines = (self._lines + data).split(b"\n")
        for line in lines:
            if line.startswith(b"e "):
                seq, told = parse_end(line)
                jobdir = self._asked.pop(seq, None)
                if jobdir is not None:
                    self._ended.append((jobdir, told))
        return True

    def notices(self) -> int | None:
        """The descriptor on which the server tells ends (select it for reading)."""
        if self.process is None or self.process.stdout is None:
            return None
        return self.process.stdout.fileno()

    def read_notices(self) -> None:
        """The server's stdout is readable: take what it told (at its end, it is gone)."""
        if self.process is None:
            return
        try:
            if not self._read_lines():
                self.close()
        except (OSError, ValueError):
            self.close()

    def take_ended(self) -> list[tuple[Path, Told | None]]:
        """The job directories whose end the server told since the last call, each with
        its end record when the server told it."""
        ended, self._ended = self._ended, []
        return ended

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def syncs(self, fd: int, dev: int, ino: int) -> bool:
        """Whether the server that takes the next requests fdatasyncs this file (an open
        descriptor of it, and its identity) before it starts them: the one running, or
        the one started next with it."""
        self.sync_file = (fd, dev, ino)
        if self.process is None or self.process.poll() is not None:
            return True
        return self._server_syncs == (dev, ino)

    def _start(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            self.close()
            sync = self.sync_file
            self._server_syncs = None if sync is None else (sync[1], sync[2])
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--serve",
                    "--ends-only",
                    "--tell-records",
                    *(["--claims", str(self.claims)] if self.claims is not None else []),
                    *(["--claims-size", str(self.claims_size)] if self.claims_size else []),
                    *(["--records"] if self.records else []),
                    *(["--records-size", str(self.records_size)] if self.records_size else []),
                    *(["--sync-fd", str(sync[0])] if sync is not None else []),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
                pass_fds=(sync[0],) if sync is not None else (),
                cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        return self.process

    def close(self) -> None:
        """Let go of the supervisor server: it reads no more requests, and goes on
        supervising the jobs it started until the last has ended (its end records are
        what the daemon reads from then on)."""
        server, self.process = self.process, None
        self._asked.clear()
        self._sent = 0
        self._lines = b""
        if server is None:
            return
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        server.poll()  # reaped if it has ended; else Popen reaps it later
