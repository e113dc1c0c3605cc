"""The house rules that a reader can check by eye, checked by a test: no module in ajs3/
over 600 lines (one idea per module), and the layering contracts (import-linter) hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 600


def test_no_module_over_600_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted((REPO / "ajs3").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by idea: {long}"


def test_layering_contracts_hold() -> None:
    tool = Path(sys.executable).with_name("lint-imports")
    if not tool.exists() and shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e .[dev])")
    done = subprocess.run(
        [str(tool) if tool.exists() else "lint-imports", "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_no_two_test_modules_share_a_name() -> None:
    """The tiers have no __init__.py, so pytest imports test modules by file name: two of
    one name (tests/unit/test_x.py and tests/integration/test_x.py) stop collection of
    the whole suite."""
    tests = Path(__file__).resolve().parents[1]
    by_name: dict[str, list[str]] = {}
    for path in tests.rglob("*.py"):
        if path.name != "conftest.py" and "__pycache__" not in path.parts:
            by_name.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {n: p for n, p in by_name.items() if len(p) > 1} == {}
