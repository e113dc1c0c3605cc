"""Small helpers for the journal's SQL text."""

from __future__ import annotations

from collections.abc import Sequence


def placeholders(values: Sequence[object]) -> str:
    """``?,?,?``: one SQL parameter per value, for ``IN (...)``."""
    return ",".join("?" * len(values))
