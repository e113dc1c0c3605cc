"""`ajs3 web`: serve the console, the REST API and the metrics of one logical host
(docs/web.md). A process of its own that talks to the daemon through its control
socket: stopping it, or its failing, never touches scheduling."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from ajs3.cli.arguments import paths_of
from ajs3.errors import AjsError, Code
from ajs3.service.webchild import PARENT_ENV
from ajs3.settings import SETTINGS_FILE, Settings, load_settings


def cmd_web(args: argparse.Namespace) -> int:
    from ajs3.web.auth import TOKEN_ENV, Gate
    from ajs3.web.server import for_host, serve

    paths = paths_of(args)
    settings = _settings(paths.datadir, paths.lhost)
    gate = Gate(settings.web)
    if not gate.configured:
        raise AjsError(
            f"no token for the web console of logical host {paths.lhost}: nobody could get in",
            code=Code.WEB_START,
            hint=f"set {TOKEN_ENV}, or tokens: under web: in the logical host's "
            "ajs3.yaml (docs/web.md)",
        )
    listen = args.listen or settings.web.listen
    server = for_host(paths, listen, gate, settings.web)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit():  # started by the daemon: ends with it
        threading.Thread(target=_follow, args=(int(parent), server), daemon=True).start()
    serve(server)
    return 0


def _follow(parent: int, server: Any) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    server.shutdown()


def _settings(datadir: Path | None, lhost: str) -> Settings:
    """The logical host's settings when its data directory is known and readable
    (the web server runs as the daemon's user, normally); else the defaults, with
    tokens from the environment only."""
    if datadir is None:
        return Settings(lhost=lhost, datadir=Path("."))
    if not os.access(datadir / SETTINGS_FILE, os.R_OK) and (datadir / SETTINGS_FILE).exists():
        return Settings(lhost=lhost, datadir=datadir)
    return load_settings(datadir, lhost)
