"""The daemon's side of the control socket: connections read and answered without ever
blocking the scheduler loop.

Every connection is non-blocking and lives in the daemon's selector beside the jobs'
pipes. A request must arrive in full within :data:`~ajs3.service.protocol.REQUEST_DEADLINE`
of the connection being accepted (a deadline per request, not per read: a client that
sends a byte every few seconds is answered AJS3-E311 and dropped), and may not exceed
:data:`~ajs3.service.protocol.MAX_REQUEST` bytes. At most :data:`MAX_CONNECTIONS` are
open at once, :data:`PER_USER` of them for one user; beyond that a client is answered
AJS3-E312 at once. Root and the daemon's own user have :data:`ADMIN_RESERVE` more, so
that a flood from local users never makes the cluster's health check fail.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.service.access import Peer, peer_of
from ajs3.service.protocol import (
    MAX_REQUEST,
    REQUEST_DEADLINE,
    BadRequest,
    answer_error,
    encode_answer,
)

#: Connections open at once (requests being read or answers being written).
MAX_CONNECTIONS = 128
#: Connections one user other than root may hold at once.
PER_USER = 32
#: Extra connections kept for root and the daemon's user (health checks, stop).
ADMIN_RESERVE = 16
#: Bytes of unfinished requests all connections of one user other than root may hold
#: together, and all such connections together: memory stays bounded however many
#: connections send large requests slowly.
USER_BUFFER = MAX_REQUEST
ALL_BUFFER = 4 * MAX_REQUEST
#: Bytes read from one connection per wake-up, so one fast client cannot hog the loop.
READ_SLICE = 1024 * 1024
#: At most this many lines a second about refused connections and bad requests.
NOTES_PER_SECOND = 5

#: Given the peer and the request line, the answer (an ``{"ok": ...}`` mapping).
Handler = Callable[[Peer, bytes], dict[str, Any]]


class Connection:
    """One client: the request being read, then the answer being written."""

    def __init__(self, sock: socket.socket, peer: Peer, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.admin = peer.uid in (0, os.geteuid())
        #: bytes of this connection counted in ControlServer.buffered
        self.counted = 0
        self.deadline = deadline
        self.inbuf = bytearray()
        self.out = b""
        self.answering = False


class ControlServer:
    """Accepts, reads, answers and times out control connections (one selector)."""

    def __init__(
        self, listener: socket.socket, sel: selectors.BaseSelector, handle: Handler, log: Any
    ) -> None:
        self.listener = listener
        self.sel = sel
        self.handle = handle
        self.log = log
        self.conns: dict[int, Connection] = {}
        self.per_uid: Counter[int] = Counter()
        #: bytes of unfinished requests held, by uid (root and the daemon's user: not kept)
        self.buffered: Counter[int] = Counter()
        self._note_second = 0
        self._notes = 0
        self._suppressed = 0
        sel.register(listener, selectors.EVENT_READ, self)

    # -- the loop calls these -----------------------------------------------------------

    def ready(self, key: selectors.SelectorKey, mask: int) -> None:
        """Called by the loop for any selector key whose data is this server."""
        if key.fileobj is self.listener:
            self._accept()
            return
        conn = self.conns.get(key.fd)
        if conn is None:
            return
        if conn.answering:
            if mask & selectors.EVENT_WRITE:
                self._send(conn)
        else:
            self._read(conn)

    def next_deadline(self) -> float | None:
        return min((c.deadline for c in self.conns.values()), default=None)

    def expire(self, now: float) -> None:
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            if conn.answering:
                self._close(conn)  # the client does not read its answer
                continue
            self._note(
                "request not complete within its deadline", conn.peer, received=len(conn.inbuf)
            )
            err = AjsError(
                f"the request was not received in full within "
                f"{REQUEST_DEADLINE:g} s; nothing was done",
                code=Code.REQUEST_TIMEOUT,
                hint="send the whole request line at once",
            )
            self._close(conn, answer_error(err))

    def close(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.listener)
        self.listener.close()

    # -- inside -------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # a burst is taken in slices, so the loop keeps turning
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: try again at the next wake-up
                self._note("cannot accept a control connection", None, error=str(exc))
                return
            sock.setblocking(False)
            try:
                peer = peer_of(sock)
            except OSError:
                sock.close()
                continue
            refusal = self._over_limit(peer)
            if refusal is not None:
                self._note("control connection refused: too many", peer)
                _say_and_close(sock, answer_error(refusal))
                continue
            conn = Connection(sock, peer, time.monotonic() + REQUEST_DEADLINE)
            self.conns[sock.fileno()] = conn
            self.per_uid[peer.uid] += 1
            self.sel.register(sock, selectors.EVENT_READ, self)
            self._read(conn)  # most clients have sent their line already

    def _over_limit(self, peer: Peer) -> AjsError | None:
        total = len(self.conns)
        if peer.uid in (0, os.geteuid()) and total < MAX_CONNECTIONS + ADMIN_RESERVE:
            return None
        if total < MAX_CONNECTIONS and self.per_uid[peer.uid] < PER_USER:
            return None
        limit = PER_USER if total < MAX_CONNECTIONS else MAX_CONNECTIONS
        whose = f"user {peer.user}" if total < MAX_CONNECTIONS else "all users"
        return AjsError(
            f"the daemon serves {limit} connections of {whose} already; nothing was done",
            code=Code.TOO_MANY_CLIENTS,
            hint="try again in a moment; if it lasts, look for a client that "
            "opens connections without finishing its requests",
        )

    def _read(self, conn: Connection) -> None:
        got = 0
        while got < READ_SLICE:
            try:
                chunk = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(conn)
                return
            if not chunk:  # the client finished writing without a newline
                if conn.inbuf:
                    self._answer(conn, bytes(conn.inbuf))
                else:
                    self._close(conn)
                return
            got += len(chunk)
            end = chunk.find(b"\n")
            if end >= 0:
                conn.inbuf += chunk[:end]
                self._answer(conn, bytes(conn.inbuf))
                return
            conn.inbuf += chunk
            if len(conn.inbuf) > MAX_REQUEST:
                self._note("request too large", conn.peer, received=len(conn.inbuf))
                too_big = BadRequest(f"larger than {MAX_REQUEST} bytes; nothing was done")
                self._reply(conn, answer_error(too_big))
                return
            if not conn.admin:
                self.buffered[conn.peer.uid] += len(chunk)
                conn.counted += len(chunk)
                if self.buffered[conn.peer.uid] > USER_BUFFER or self.buffered.total() > ALL_BUFFER:
                    self._note("unfinished requests too large", conn.peer, received=len(conn.inbuf))
                    busy = AjsError(
                        "the daemon holds too many bytes of unfinished requests "
                        "already; nothing was done",
                        code=Code.TOO_MANY_CLIENTS,
                        hint="try again in a moment",
                    )
                    self._reply(conn, answer_error(busy))
                    return

    def _answer(self, conn: Connection, line: bytes) -> None:
        self._reply(conn, self.handle(conn.peer, line))

    def _reply(self, conn: Connection, answer: dict[str, Any]) -> None:
        self._unbuffer(conn)
        conn.answering = True
        conn.out = encode_answer(answer)
        conn.deadline = time.monotonic() + REQUEST_DEADLINE
        self._send(conn)
        if conn.sock.fileno() in self.conns:
            self.sel.modify(conn.sock, selectors.EVENT_WRITE, self)

    def _send(self, conn: Connection) -> None:
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break  # the client left; nothing to tell it
            conn.out = conn.out[sent:]
        self._close(conn)

    def _unbuffer(self, conn: Connection) -> None:
        if conn.counted:
            self.buffered[conn.peer.uid] -= conn.counted
            conn.counted = 0
            if self.buffered[conn.peer.uid] <= 0:
                del self.buffered[conn.peer.uid]
        conn.inbuf = bytearray()

    def _close(self, conn: Connection, last_word: dict[str, Any] | None = None) -> None:
        fd = conn.sock.fileno()
        if self.conns.pop(fd, None) is None:
            return
        self._unbuffer(conn)
        self.per_uid[conn.peer.uid] -= 1
        if self.per_uid[conn.peer.uid] <= 0:
            del self.per_uid[conn.peer.uid]
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        if last_word is None:
            conn.sock.close()
        else:
            _say_and_close(conn.sock, last_word)

    def note_bad(self, message: str, peer: Peer, **values: Any) -> None:
        self._note(message, peer, **values)

    def _note(self, message: str, peer: Peer | None, **values: Any) -> None:
        """Log a refusal, at most NOTES_PER_SECOND a second (a flood must not fill
        the log's disk); the count of the ones left out is logged with the next."""
        second = int(time.monotonic())
        if second != self._note_second:
            self._note_second, self._notes = second, 0
        self._notes += 1
        if self._notes > NOTES_PER_SECOND:
            self._suppressed += 1
            return
        if peer is not None:
            values.update(uid=peer.uid, user=peer.user, pid=peer.pid)
        if self._suppressed:
            values["similar_not_logged"] = self._suppressed
            self._suppressed = 0
        self.log.warning(message, **values)


def _say_and_close(sock: socket.socket, answer: dict[str, Any]) -> None:
    """Send a refusal and close, without a reset: what the client sent so far is read
    first (a socket closed with unread data resets its peer, who may then never read
    the refusal)."""
    with contextlib.suppress(OSError):
        sock.send(encode_answer(answer))
        sock.shutdown(socket.SHUT_WR)
        for _ in range(16):
            if not sock.recv(65536):
                break
    sock.close()
