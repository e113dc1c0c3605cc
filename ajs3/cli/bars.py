"""Progress bars of the `ajs3` command (rich): the library's progress callbacks
(ajs3.progress) drawn on stderr, one bar per phase, while a long command works.

Only on a terminal: with --json, or when stderr is a pipe or a file, nothing is drawn
and the output is byte for byte what it was. The bars are removed when the work ends,
so what stays on the screen is the command's result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ajs3.cli.output import wants_json
from ajs3.progress import Progress, silent

#: What each phase is called on the screen (an unknown phase: its own name).
LABELS = {
    "parse": "reading the JP1 file",
    "map": "mapping units",
    "yaml": "making YAML",
    "validate": "validating",
    "write": "writing files",
    "purge": "purging jobnets",
}


def drawn(args: argparse.Namespace) -> bool:
    """Whether bars are drawn for this command: stderr a terminal, and no --json."""
    return not wants_json(args) and sys.stderr.isatty()


@contextmanager
def bars(args: argparse.Namespace) -> Iterator[Progress]:
    """A progress callback that draws bars while the block runs (see :func:`drawn`),
    or one that does nothing."""
    if not drawn(args):
        yield silent
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bars

    console = Console(stderr=True)
    with Bars(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as shown:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = shown.add_task(LABELS.get(phase, phase), total=total)
            shown.update(tasks[phase], completed=done, total=total)

        yield report
