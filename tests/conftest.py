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
