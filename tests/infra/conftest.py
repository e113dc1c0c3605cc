"""pytest-testinfra checks of cluster nodes, over SSH.

The nodes are the Host entries of an ssh_config file, so the same suite runs
against the namespace lab and the Vagrant VMs:

    pytest tests/infra --ssh-config=/tmp/ajs3-lab/ssh/ssh_config      # namespace lab
    vagrant ssh-config > /tmp/vagrant.ssh && \\
        pytest tests/infra --ssh-config=/tmp/vagrant.ssh             # Vagrant lab

(--ssh-config is testinfra's own option; $AJS3_SSH_CONFIG works too.) Commands
run as root: with a non-root login (Vagrant), testinfra uses sudo.
Without a config every test is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clusterinfo import Cluster, read_cluster


def ssh_config_path(config: pytest.Config) -> str | None:
    path = getattr(config.option, "ssh_config", None) or os.environ.get("AJS3_SSH_CONFIG")
    return str(path) if path else None


def hosts_in(path: str) -> list[str]:
    """The concrete host names of an ssh_config (patterns like * are not hosts)."""
    hosts: list[str] = []
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == "host":
            hosts += [w for w in words[1:] if not any(c in w for c in "*?!")]
    return hosts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node" in metafunc.fixturenames:
        path = ssh_config_path(metafunc.config)
        names = hosts_in(path) if path else ["(no nodes)"]
        metafunc.parametrize("node", names, indirect=True, scope="session")


def _control_dir() -> str:
    path = Path(tempfile.gettempdir()) / f"ajs3-infra-ssh-{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def _connect(name: str, path: str) -> Any:
    # One multiplexed connection per node (each command is then a few ms, not a
    # new SSH session); pytest_sessionfinish closes them, so nothing outlives the run.
    opts = {"ssh_config": path, "controlpersist": 600, "controlpath": f"{_control_dir()}/{name}"}
    host = testinfra.get_host(f"ssh://{name}", **opts)
    if host.user().name != "root":  # Vagrant logs in as "vagrant"
        host = testinfra.get_host(f"ssh://{name}", sudo=True, **opts)
    return host


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = ssh_config_path(session.config)
    control = Path(tempfile.gettempdir()) / f"ajs3-infra-ssh-{os.getpid()}"
    if path and control.exists():
        for name in hosts_in(path):
            subprocess.run(
                ["ssh", "-F", path, "-o", f"ControlPath={control}/{name}", "-O", "exit", name],
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(control, ignore_errors=True)


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest) -> Any:
    """A testinfra Host for one node (tests run once per node)."""
    path = ssh_config_path(request.config)
    if not path:
        pytest.skip(
            "no nodes: give --ssh-config=FILE (lab: `tests/cluster/lab.py "
            "ssh-config`; Vagrant: `vagrant ssh-config > FILE`)"
        )
    return _connect(request.param, path)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The cluster as the first node sees it."""
    path = ssh_config_path(request.config)
    if not path:
        pytest.skip("no nodes: give --ssh-config=FILE")
    return read_cluster(_connect(hosts_in(path)[0], path))
