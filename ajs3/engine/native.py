"""Where the C job supervisor (``ajs3-supervise``) lives and how it is built.

The supervisor and its fork server are one small C program (``supervise.c``, ADR
0012). ``pip install`` compiles it into the package (setup.py calls :func:`build`); a
working tree used in place (the tests, ``bench/run``) builds it with
:func:`ensure_built`. The daemon never compiles anything: without the binary it
refuses to start and says how to build it. Standard library only: setup.py imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "supervise.c"
BINARY = "ajs3-supervise"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-pthread"]


class BuildError(Exception):
    """The C compiler is missing or failed; the message says what to do."""


def path() -> Path:
    """The supervisor binary next to this module (it may not be built)."""
    return HERE / BINARY


def build(out: Path, extra_flags: list[str] | None = None) -> Path:
    """Compile ``supervise.c`` into ``out`` (written atomically)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError(
            f"no C compiler to build {BINARY}: install one (Debian: apt-get install gcc "
            "libc6-dev), then install ajs3 again"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{BINARY}.", dir=out.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *CFLAGS, *(extra_flags or []), "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildError(f"{cc} could not build {BINARY}:\n{done.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def ensure_built() -> Path:
    """Build the binary next to this module if it is missing or older than its source
    (for a working tree used in place)."""
    binary = path()
    if not binary.exists() or binary.stat().st_mtime < SOURCE.stat().st_mtime:
        build(binary)
    return binary


if __name__ == "__main__":  # python -m ajs3.engine.native: build in place
    print(ensure_built())
