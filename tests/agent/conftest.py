"""Fixtures of the agent tier: the engine program, logical hosts on temporary data
directories, and a real single-node Pacemaker.

Set AJS3_AGENT_TEST_PROGRAM to drive another `ajs3` program than this source
tree's engine (for instance the installed /opt/ajs3/venv/bin/ajs3).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ocf_harness import (
    PACEMAKER_ENV,
    PACEMAKER_TOOLS,
    PacemakerNode,
    engine_problem,
    missing_tools,
    pacemaker_node,
    short_tempdir,
    write_engine_wrapper,
)


@pytest.fixture(scope="session")
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the agent tier needs root (Pacemaker, namespaces, /run)")


@pytest.fixture(scope="session")
def ajs3_program(tmp_path_factory: pytest.TempPathFactory, root: None) -> Path:
    override = os.environ.get("AJS3_AGENT_TEST_PROGRAM")
    program = (
        Path(override) if override else write_engine_wrapper(tmp_path_factory.mktemp("engine"))
    )
    problem = engine_problem(program)
    if problem:
        pytest.skip(problem)
    return program


@dataclass
class LogicalHost:
    """A logical host on a temporary data directory (never under /run or /srv)."""

    program: Path
    lhost: str
    base: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def rundir(self) -> Path:
        return self.base / "run"

    @property
    def params(self) -> dict[str, str]:
        return {
            "lhost": self.lhost,
            "datadir": str(self.datadir),
            "rundir": str(self.rundir),
            "binary": str(self.program),
            **self.extra,
        }

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.program), *args],
            capture_output=True, text=True, timeout=timeout, env=PACEMAKER_ENV,
        )  # fmt: skip

    def service(self, action: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli("service", action, "-h", self.lhost, "--rundir", str(self.rundir), *args)

    def start(self) -> None:
        proc = self.service("start", "--datadir", str(self.datadir), "--timeout", "30")
        assert proc.returncode == 0, proc.stderr

    def status(self, depth: int = 0) -> int:
        return self.service("status", "--depth", str(depth)).returncode

    def daemon_pid(self) -> int:
        info = json.loads((self.rundir / "daemon.json").read_text())
        return int(info["pid"])

    def crash(self) -> int:
        """kill -9 the daemon, as a bug or the OOM killer would, and wait until it is gone."""
        pid = self.daemon_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.status() != 3:
            assert time.monotonic() < deadline, f"daemon {pid} still alive after SIGKILL"
            time.sleep(0.05)
        return pid


@pytest.fixture
def logical_hosts(ajs3_program: Path) -> Iterator[list[LogicalHost]]:
    """A list to append logical hosts to (see make_lhost); all are stopped and removed after."""
    made: list[LogicalHost] = []
    yield made
    leftovers = []
    for lh in made:
        if lh.rundir.exists():
            lh.service("stop", "--jobs", "kill", "--timeout", "15")
            if lh.status() != 3:
                leftovers.append(lh.lhost)
        shutil.rmtree(lh.base, ignore_errors=True)
    assert not leftovers, f"logical hosts still running after the test: {leftovers}"


@pytest.fixture
def make_lhost(logical_hosts: list[LogicalHost], ajs3_program: Path):  # type: ignore[no-untyped-def]
    def make(lhost: str = "lh1", **extra: str) -> LogicalHost:
        lh = LogicalHost(ajs3_program, lhost, short_tempdir(), dict(extra))
        lh.datadir.mkdir()
        logical_hosts.append(lh)
        return lh

    return make


@pytest.fixture(scope="module")
def pcmk(request: pytest.FixtureRequest) -> Iterator[PacemakerNode]:
    """One real single-node Pacemaker per test module, torn down by pid."""
    if os.geteuid() != 0:
        pytest.skip("a Pacemaker node needs root")
    missing = missing_tools((*PACEMAKER_TOOLS, "crm_attribute", "unshare", "nsenter"))
    if missing:
        pytest.skip(f"tools missing: {', '.join(missing)} (run install.sh)")
    with pacemaker_node() as node:
        yield node
