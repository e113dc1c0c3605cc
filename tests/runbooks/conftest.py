"""The runbook tier: docs/runbooks' command blocks run against one namespace lab.

The lab (real agent ocf:ajs3:ajs3) lives in AJS3_RUNBOOK_LAB_STATE (default
/tmp/ajs3-runbook-lab), namespace prefix ajs3rb, so it never collides with the
cluster tier's lab or one made by hand. It is torn down before (what an
interrupted run left) and after the session. Needs root; skips with the reason
otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cluster"))
sys.path.insert(0, str(HERE))

from lab import AJS3_APP, Lab, unavailable  # noqa: E402

STATE = Path(os.environ.get("AJS3_RUNBOOK_LAB_STATE", "/tmp/ajs3-runbook-lab"))
PREFIX = "ajs3rb"


def lab_unavailable() -> str | None:
    """Why the lab can not run here, or None."""
    return unavailable("the runbook lab", tools=("sqlite3", "mkfs.ext4"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "runbook: runs docs/runbooks' command blocks against the namespace lab"
    )


@pytest.fixture(scope="session")
def rb_lab() -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    Lab(STATE, prefix=PREFIX).down()
    the_lab = Lab(STATE, prefix=PREFIX, app=AJS3_APP)
    try:
        the_lab.up()
        yield the_lab
    finally:
        keep = os.environ.get("AJS3_LAB_KEEP_LOGS")
        the_lab.down(keep_logs=Path(keep) if keep else None)
