"""How long library work tells its progress: a callback ``progress(phase, done, total)``
that the caller passes in (the CLI draws it as a bar on a terminal, ajs3/cli/bars.py;
everyone else passes nothing). The library never draws anything itself.

A phase is a short word (``parse``, ``map``, ...); ``done`` only grows within a phase
and a phase that ends reports ``done == total``; ``total`` is None while it is not
known. Phases come one after the other, each reported at least once.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]


def silent(phase: str, done: int, total: int | None) -> None:
    """The progress of a caller that does not want it."""
