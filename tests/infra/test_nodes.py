"""The state of every cluster node, checked from outside over SSH (pytest-testinfra).

Runs once per node of the ssh_config (see conftest.py). Nothing here knows the
namespace lab: the logical hosts, their directories and IPs are read from the
cluster's own configuration, so the suite applies to the Vagrant VMs unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from clusterinfo import Cluster, read_cluster

PACKAGES = [
    "pacemaker",
    "pacemaker-cli-utils",
    "corosync",
    "pcs",
    "resource-agents",
    "openssh-server",
    "e2fsprogs",
    "kmod",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_installed(node: Any, package: str) -> None:
    assert node.package(package).is_installed


def test_ajs3_installed(node: Any) -> None:
    cmd = node.run("ajs3 --version")
    assert cmd.rc == 0, f"`ajs3 --version` failed on {node.backend.hostname}: {cmd.stderr}"


def test_ajs3_agent_installed(node: Any) -> None:
    cmd = node.run("crm_resource --show-metadata ocf:ajs3:ajs3")
    assert cmd.rc == 0, f"ocf:ajs3:ajs3 missing on {node.backend.hostname}: {cmd.stderr}"
    assert "<resource-agent" in cmd.stdout


def test_every_configured_agent_is_installed(node: Any, cluster: Cluster) -> None:
    for group, members in cluster.groups.items():
        for p in members:
            cmd = node.run("crm_resource --show-metadata %s", p.agent)
            assert cmd.rc == 0, f"{group}/{p.id}: agent {p.agent} missing: {cmd.stderr}"
    for p in cluster.stonith:
        fence_type = p.agent.split(":")[-1]
        cmd = node.run("stonith_admin --metadata --agent %s", fence_type)
        assert cmd.rc == 0, f"fence agent {fence_type} missing: {cmd.stderr}"


def test_corosync_ring_healthy(node: Any, cluster: Cluster) -> None:
    links = node.check_output("corosync-cfgtool -s")
    me = node.check_output("corosync-cmapctl -g runtime.votequorum.this_node_id")
    my_id = me.split("=")[-1].strip()
    peers = re.findall(r"nodeid:\s+(\d+):\s+(\S+)", links)
    assert len(peers) == len(cluster.nodes), links
    for nodeid, status in peers:
        assert status == ("localhost" if nodeid == my_id else "connected"), links
    quorum = node.check_output("corosync-quorumtool -s")
    assert re.search(r"Quorate:\s+Yes", quorum), quorum


def test_pacemaker_sees_every_node_online(node: Any) -> None:
    view = read_cluster(node)
    assert view.dc is not None, "no DC"
    assert sorted(view.online) == sorted(view.nodes)


def test_stonith_enabled(node: Any, cluster: Cluster) -> None:
    out = node.check_output("crm_attribute -t crm_config -n stonith-enabled -G -q")
    assert out.strip() == "true"
    assert cluster.stonith, "no fence device configured"


def test_resources_are_where_pcs_status_says(node: Any, cluster: Cluster) -> None:
    """pcs status (what an operator reads) and the node's actual state agree."""
    status = node.check_output("pcs status resources")
    me = node.check_output("crm_node -n").strip()
    for group, members in cluster.groups.items():
        where = cluster.group_node(group)
        assert where is not None, f"group {group} is not running on one node"
        for p in members:
            assert re.search(rf"\b{re.escape(p.id)}\b.*Started {where}\b", status), status
        fs = cluster.first(group, ":Filesystem")
        ip = cluster.first(group, ":IPaddr2")
        app = members[-1]
        active = where == me
        if fs:
            mount = node.mount_point(fs.params["directory"])
            if active:
                assert mount.exists, f"{group}: {fs.params['directory']} not mounted on {me}"
                assert (
                    mount.device == node.check_output("readlink -f %s", fs.params["device"]).strip()
                )
            else:
                assert not mount.exists, f"{group}: {fs.params['directory']} mounted on {me}"
        if ip:
            addrs = node.check_output("ip -o addr show")
            assert (f" {ip.params['ip']}/" in addrs) == active, (
                f"{group}: {ip.params['ip']} {'missing' if active else 'present'} on {me}"
            )
        # The logical host's daemon: its agent's monitor, run right here.
        check = node.run("crm_resource --force-check --resource %s", app.id)
        assert (check.rc == 0) == active, (
            f"{group}: {app.id} monitor rc {check.rc} on {me} (active node {where})"
        )
