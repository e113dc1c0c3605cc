"""How the `ajs3` command prints: a result as text or as JSON, remarks on stderr, and the
files it writes where the user said."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code


def wants_json(args: argparse.Namespace) -> bool:
    """True when the command was given --json (some commands have no such option)."""
    return bool(getattr(args, "json", False))


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print a command's result: ``data`` as JSON with --json, else ``text`` (if any)."""
    if wants_json(args):
        print_json(data)
    elif text:
        print(text)


def note(text: str) -> None:
    """A remark or an error line for people, on stderr, in the form ``ajs3: TEXT``."""
    print(f"ajs3: {text}", file=sys.stderr)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Writing files at ``path``, a place the user named: a failure is a coded error
    (AJS3-E309 without permission, else AJS3-E406), not a traceback."""
    try:
        yield
    except AjsError:
        raise
    except OSError as exc:
        code = Code.PERMISSION_DENIED if isinstance(exc, PermissionError) else Code.BAD_ARGUMENT
        raise AjsError(
            f"cannot write {exc.filename or path}: {exc.strerror or exc}",
            code=code,
            hint="give a path this user may write",
        ) from exc
