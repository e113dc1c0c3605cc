"""Where a logical host keeps its files: data directory (shared) and run directory (local)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ajs3.errors import AjsError, Code

_LHOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_lhost(lhost: str) -> str:
    if not _LHOST.match(lhost):
        raise AjsError(
            f"logical host name {lhost!r} is not valid",
            code=Code.BAD_ARGUMENT,
            hint="use letters, digits, '_', '.', '-' (at most 64), starting with a letter or digit",
        )
    return lhost


def default_rundir(lhost: str) -> Path:
    env = os.environ.get("AJS3_RUNDIR")
    if env:
        return Path(env) / lhost
    if os.geteuid() == 0:
        return Path("/run/ajs3") / lhost
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/ajs3-{os.geteuid()}"
    return Path(base) / "ajs3" / lhost


@dataclass(frozen=True)
class Paths:
    lhost: str
    rundir: Path
    datadir: Path | None

    @property
    def socket(self) -> Path:
        return self.rundir / "control.sock"

    @property
    def pidfile(self) -> Path:
        return self.rundir / "daemon.json"

    def need_datadir(self) -> Path:
        if self.datadir is None:
            raise AjsError(
                f"no data directory known for logical host {self.lhost}",
                code=Code.BAD_ARGUMENT,
                hint="give --datadir DIR (or set AJS3_DATADIR), or start the logical host",
            )
        return self.datadir

    @property
    def lockfile(self) -> Path:
        return self.need_datadir() / "ajs3.lock"

    @property
    def definitions_dir(self) -> Path:
        return self.need_datadir() / "definitions"

    @property
    def logdir(self) -> Path:
        return self.need_datadir() / "log"
