"""How the `ajs3` command prints: a result as text or as JSON, and remarks on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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
