"""Execution hosts (docs/exechosts.md), checked from outside over SSH (pytest-testinfra).

An execution host is a machine with sshd and ajs3 and nothing of the cluster: the
logical hosts reach it over OpenSSH with keys that can do nothing there but speak
the execution-host protocol. The checks run once per host named ``xh*`` in the
ssh_config (see conftest.py); the last one logs in as each logical host does, from
the node that holds it, with the key and known_hosts of its own settings.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml
from clusterinfo import Cluster

#: where `ajs3 exechost serve` keeps the runs it holds (install.sh --exechost makes it)
STATE_DIR = "/var/lib/ajs3-exec"
CLUSTER_PROCESSES = ("pacemakerd", "corosync", "pacemaker-based", "pacemaker-execd", "sbd")


def test_ajs3_is_installed_for_serving(exechost: Any) -> None:
    version = exechost.run("ajs3 --version")
    assert version.rc == 0, f"`ajs3 --version` failed: {version.stderr}"
    serve = exechost.run("ajs3 exechost serve --help")
    assert serve.rc == 0 and "--lhost-key" in serve.stdout, serve.stdout + serve.stderr


def test_no_cluster_software_runs(exechost: Any) -> None:
    for name in CLUSTER_PROCESSES:
        found = exechost.process.filter(comm=name)
        assert not found, f"{name} runs on an execution host: {[p.pid for p in found]}"


def _listeners(host: Any) -> list[tuple[str, list[str]]]:
    """Each listening TCP/UDP socket: its local address and the programs holding it."""
    out = host.check_output("ss -H -l -t -u -n -p")
    found = []
    for line in out.splitlines():
        words = line.split()
        if len(words) < 5:
            continue
        found.append((words[4], re.findall(r'\("([^"]+)",pid=', line)))
    return found


def test_only_sshd_listens_for_ajs3(exechost: Any) -> None:
    """The transport is OpenSSH: no port of ajs3's own, sshd listening."""
    listeners = _listeners(exechost)
    assert any("sshd" in programs for _, programs in listeners), listeners
    ours = [
        (addr, programs)
        for addr, programs in listeners
        if any(p.startswith(("python", "ajs3")) for p in programs)
    ]
    assert not ours, f"ajs3 listens on an execution host: {ours}"


def test_state_directory_is_roots_alone(exechost: Any) -> None:
    d = exechost.file(STATE_DIR)
    assert d.is_directory, f"{STATE_DIR} is missing (install.sh --exechost makes it)"
    assert d.user == "root", f"{STATE_DIR} belongs to {d.user}"
    assert d.mode & 0o022 == 0, f"{STATE_DIR} is writable by others: {oct(d.mode)}"


def _lhost_settings(node: Any, datadir: str) -> dict[str, Any]:
    """The logical host's ajs3.yaml ({} without one: every setting at its default)."""
    path = node.file(f"{datadir}/ajs3.yaml")
    if not path.exists:
        return {}
    loaded = yaml.safe_load(path.content_string or "")
    return loaded if isinstance(loaded, dict) else {}


def test_logical_host_keys_only_speak_the_protocol(all_nodes: list[Any], cluster: Cluster) -> None:
    """From the node that holds each logical host, with the key and known_hosts of its
    settings: the login works (host key known, key accepted), and the forced command
    answers instead of the shell. The remote command asked for never runs."""
    by_name = {n.check_output("crm_node -n").strip(): n for n in all_nodes}
    tried = []
    for group, members in cluster.groups.items():
        where = cluster.group_node(group)
        app = members[-1]
        if where is None or "datadir" not in app.params or where not in by_name:
            continue
        node = by_name[where]
        settings = _lhost_settings(node, app.params["datadir"])
        for name, xh in (settings.get("execution_hosts") or {}).items():
            ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            ssh += ["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20"]
            ssh += ["-p", str(xh.get("port", 22))]
            if xh.get("identity_file"):
                ssh += ["-i", xh["identity_file"]]
            if xh.get("known_hosts"):
                ssh += ["-o", f"UserKnownHostsFile={xh['known_hosts']}"]
            ssh += [f"{xh.get('user', 'ajs3')}@{xh['destination']}", "echo NOT-FORCED; id"]
            # ssh's own exit status is printed, not returned: testinfra takes a 255
            # for a failure of its own connection to the node
            cmd = node.run(
                f'printf \'%s\\n\' \'{{"op": "status"}}\' | {shlex.join(ssh)}; echo "ssh-rc=$?"'
            )
            what = f"{group} on {where} -> {name} ({xh['destination']})"
            assert "ssh-rc=255" not in cmd.stdout, f"{what}: ssh failed: {cmd.stderr}"
            assert "NOT-FORCED" not in cmd.stdout, f"{what}: the key runs any command"
            # the forced command answered: the first request must be hello
            assert "AJS3-E334" in cmd.stdout, f"{what}: {cmd.stdout!r} {cmd.stderr!r}"
            tried.append(what)
    if not tried:
        pytest.skip("no running logical host names an execution host in its settings")
