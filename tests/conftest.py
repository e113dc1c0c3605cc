"""Shared fixtures: a real logical host (real daemon, real SQLite, real processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost

from ajs3.engine import native


def pytest_sessionstart(session: pytest.Session) -> None:
    """The tests run the working tree's engine: build its C supervisor in place."""
    native.ensure_built()


@pytest.fixture
def make_lhost(tmp_path: Path) -> Iterator[Any]:
    made: list[LogicalHost] = []

    def make(lhost: str = "lh1") -> LogicalHost:
        host = LogicalHost(tmp_path, lhost)
        made.append(host)
        return host

    yield make
    for host in made:
        host.cleanup()


@pytest.fixture
def lhost(make_lhost: Any) -> LogicalHost:
    host: LogicalHost = make_lhost("lh1")
    host.start()
    return host


#: Figures a test measured for the record (not asserted: a busy machine is slower),
#: printed at the end of the session so that CI's output carries them.
FIGURES: list[str] = []


@pytest.fixture
def figure() -> Any:
    def note(text: str) -> None:
        FIGURES.append(text)

    return note


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("measured figures")
        for text in FIGURES:
            terminalreporter.write_line(text)
