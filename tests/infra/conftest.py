"""pytest-testinfra checks of cluster nodes, over SSH.

The nodes are the Host entries of an ssh_config file, so the same suite runs
against the namespace lab and the Vagrant VMs:

    pytest tests/infra --ssh-config=/tmp/ajs3-lab/ssh/ssh_config      # namespace lab
    vagrant ssh-config > /tmp/vagrant.ssh && \\
        pytest tests/infra --ssh-config=/tmp/vagrant.ssh             # Vagrant lab

(--ssh-config is testinfra's own option; $AJS3_SSH_CONFIG works too.) Commands
run as root: with a non-root login (Vagrant), testinfra uses sudo.
Without a config every test is skipped with that reason.

A host's name says its role, in both labs: ``xh1``, ``xh2``, ... are execution hosts
(test_exechosts.py: sshd and ajs3, no cluster software), ``storage`` is the Vagrant
lab's iSCSI target (not checked here), every other host is a cluster node
(test_nodes.py).
"""

from __future__ import annotations

import fnmatch
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


#: the host names of execution hosts, and of hosts that are neither role
EXECHOST_PATTERN = "xh*"
NOT_CHECKED = {"storage"}


def is_exechost(name: str) -> bool:
    return fnmatch.fnmatch(name, EXECHOST_PATTERN)


def cluster_nodes(path: str) -> list[str]:
    return [h for h in hosts_in(path) if not is_exechost(h) and h not in NOT_CHECKED]


def exechosts(path: str) -> list[str]:
    return [h for h in hosts_in(path) if is_exechost(h)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    path = ssh_config_path(metafunc.config)
    for fixture, names_of in (("node", cluster_nodes), ("exechost", exechosts)):
        if fixture in metafunc.fixturenames:
            names = (names_of(path) if path else []) or ["(none)"]
            metafunc.parametrize(fixture, names, indirect=True, scope="session")


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
    """A testinfra Host for one cluster node (tests run once per node)."""
    path = ssh_config_path(request.config)
    if not path:
        pytest.skip(
            "no nodes: give --ssh-config=FILE (lab: `tests/cluster/lab.py "
            "ssh-config`; Vagrant: `vagrant ssh-config > FILE`)"
        )
    if request.param == "(none)":
        pytest.skip(f"no cluster node in {path}")
    return _connect(request.param, path)


@pytest.fixture(scope="session")
def exechost(request: pytest.FixtureRequest) -> Any:
    """A testinfra Host for one execution host (hosts named xh*)."""
    path = ssh_config_path(request.config)
    if not path or request.param == "(none)":
        pytest.skip(f"no execution host ({EXECHOST_PATTERN}) in the ssh_config")
    return _connect(request.param, path)


@pytest.fixture(scope="session")
def all_nodes(request: pytest.FixtureRequest) -> list[Any]:
    """Every cluster node, connected."""
    path = ssh_config_path(request.config)
    if not path or not cluster_nodes(path):
        pytest.skip("no cluster node in the ssh_config")
    return [_connect(name, path) for name in cluster_nodes(path)]


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The cluster as the first node sees it."""
    path = ssh_config_path(request.config)
    if not path:
        pytest.skip("no nodes: give --ssh-config=FILE")
    nodes = cluster_nodes(path)
    if not nodes:
        pytest.skip(f"no cluster node in {path}")
    return read_cluster(_connect(nodes[0], path))
