"""A small fork server that starts job supervisors for the daemon.

Forking the daemon itself costs milliseconds per job (its page tables grow with
what it holds), and a fresh interpreter per job costs more. This process is started
once per daemon as ``python3 -S -E forkserver.py``, with the standard library only,
so it stays small and a fork of it is cheap. It reads one JSON request per line on
stdin, forks, and answers with the supervisor's pid on stdout. It ends when the
daemon goes away (end of its stdin). The supervisors it forks start sessions of their
own, so they outlive both.
"""

import json
import os
import signal
import sys

try:  # as a script (python3 -S forkserver.py) the package is not importable
    from ajs3.engine import supervisor
except ImportError:  # pragma: no cover
    import supervisor  # type: ignore[no-redef,import-not-found]


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(inp: int, out: int) -> None:
    signal.signal(signal.SIGCHLD, _reap)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    reader = os.fdopen(inp, "rb", buffering=0)
    buf = b""
    while True:
        chunk = reader.read(1 << 16)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            request = json.loads(line)
            try:
                pid = os.fork()
            except OSError:  # no process slot: say so, the daemon records it
                os.write(out, b"-1\n")
                continue
            if pid == 0:
                code = 0
                try:
                    os.setsid()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    null = os.open(os.devnull, os.O_RDWR)
                    os.dup2(null, 0)
                    os.dup2(null, 1)
                    os.closerange(3, 1 << 20)
                    supervisor.supervise(request["spec"], request["jobdir"])
                except BaseException:
                    code = 70
                finally:
                    os._exit(code)
            os.write(out, f"{pid}\n".encode())


if __name__ == "__main__":
    serve(sys.stdin.fileno(), sys.stdout.fileno())
