"""`ajs3 web` started by the daemon when the logical host's settings say ``web: serve:
true``: a child process of its own, started again when it dies, stopped with the daemon.

The child talks to the daemon through the control socket like any other client, so
nothing it does or suffers reaches the scheduler; the daemon only polls whether it is
still there once per turn of its loop (a ``waitpid`` with WNOHANG) and starts it again
after a pause that doubles up to :data:`MAX_PAUSE` while it keeps dying. Its output
goes to ``<datadir>/log/web.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from ajs3.service.paths import Paths

#: The longest pause before starting a console that keeps dying again.
MAX_PAUSE = 60.0
#: A console that ran this long is healthy: its next death pauses 1 s again.
HEALTHY = 60.0
#: Seconds the console has to stop after SIGTERM before it is killed.
STOP_GRACE = 5.0
#: The daemon's pid, given to its console: the console stops when its parent is no
#: longer that daemon (a daemon killed with SIGKILL leaves no console behind).
PARENT_ENV = "AJS3_WEB_PARENT"


class WebChild:
    def __init__(self, paths: Paths, log: Any) -> None:
        self.paths = paths
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.pause = 1.0
        self.next_start = 0.0
        self.starts = 0

    def start(self) -> None:
        datadir = self.paths.need_datadir()
        argv = [
            sys.executable, "-m", "ajs3.cli.main", "web",
            "-h", self.paths.lhost, "--datadir", str(datadir), "--rundir", str(self.paths.rundir),
        ]  # fmt: skip
        logfile = datadir / "log" / "web.log"
        fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                env={**os.environ, PARENT_ENV: str(os.getpid())},
            )
        except OSError as exc:
            self.log.warning("cannot start the web console", error=str(exc))
            self.proc = None
            self._later(time.monotonic())
            return
        finally:
            os.close(fd)
        self.starts += 1
        self.started_at = time.monotonic()
        self.log.info("web console started", pid=self.proc.pid, log=str(logfile))

    def tick(self) -> None:
        """Called once per turn of the daemon's loop: start it again if it died."""
        now = time.monotonic()
        if self.proc is None:
            if now >= self.next_start:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            return
        self.log.warning("the web console ended; it is started again", exit=code)
        self.proc = None
        if now - self.started_at >= HEALTHY:
            self.pause = 1.0
        self._later(now)

    def _later(self, now: float) -> None:
        self.next_start = now + self.pause
        self.pause = min(MAX_PAUSE, self.pause * 2)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
