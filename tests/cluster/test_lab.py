"""The namespace lab itself: a 3-node Pacemaker cluster with real fencing.

One lab serves the whole module (see conftest.py); the tests run in file order and
each starts from a settled cluster (all nodes on, both logical hosts running). The
last test tears the lab down and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lab import (
    FENCE_AGENT,
    LEDGER_DIR,
    MOUNT_ROOT,
    PYTHON,
    TIMINGS,
    Lab,
    alive,
    infra_suite,
    wait_until,
)

pytestmark = pytest.mark.cluster


def timing(name: str, seconds: float) -> None:
    """A figure for the end-of-run summary (conftest.py prints them)."""
    TIMINGS.append((name, seconds))
    print(f"TIMING {name}: {seconds:.2f} s")


def mounted_on(lab: Lab, node: str, lh: str) -> str | None:
    """The device mounted on the logical host's directory on node, or None."""
    out = lab.exec(node, ["findmnt", "-n", "-o", "SOURCE", f"{MOUNT_ROOT}/{lh}"]).stdout
    return out.strip() or None


def has_ip(lab: Lab, node: str, ip: str) -> bool:
    out = lab.exec(node, ["ip", "-o", "-4", "addr", "show"], check=True).stdout
    return f" {ip}/" in out


def assert_only_on(lab: Lab, lh_name: str, active: str) -> None:
    lh = next(x for x in lab.logical_hosts() if x.name == lh_name)
    for n in lab.running_nodes():
        if n == active:
            assert mounted_on(lab, n, lh.name) == lh.device, f"{lh.name} not mounted on {n}"
            assert has_ip(lab, n, lh.ip), f"{lh.ip} not on {n}"
        else:
            assert mounted_on(lab, n, lh.name) is None, f"{lh.name} also mounted on {n}"
            assert not has_ip(lab, n, lh.ip), f"{lh.ip} also on {n}"


def successful_fencings(lab: Lab, target: str, since: float) -> list[dict[str, str]]:
    def when(ev: dict[str, str]) -> float:
        # "2026-11-28 04:11:07Z": whole seconds only.
        return datetime.strptime(
            ev["completed"].replace("Z", "+0000"), "%Y-%m-%d %H:%M:%S%z"
        ).timestamp()

    return [
        ev
        for ev in lab.stonith_history(target)
        if ev.get("status") == "success" and "completed" in ev and when(ev) >= since - 1
    ]


# --------------------------------------------------------------------------- tests


def test_up_starts_groups_on_their_preferred_nodes(lab: Lab) -> None:
    assert lab.wait_groups(timeout=60) == {"lh1": "node1", "lh2": "node2"}
    assert sorted(lab.online_nodes()) == ["node1", "node2", "node3"]
    prop = lab.exec(
        "node1",
        ["crm_attribute", "-t", "crm_config", "-n", "stonith-enabled", "-G", "-q"],
        check=True,
    ).stdout.strip()
    assert prop == "true"
    assert_only_on(lab, "lh1", "node1")
    assert_only_on(lab, "lh2", "node2")
    print(f"lab up in {lab.load()['up_seconds']} s")


def test_nodes_are_separate_machines(lab: Lab) -> None:
    names = {n: lab.exec(n, ["hostname"], check=True).stdout.strip() for n in lab.node_names()}
    assert names == {n: n for n in lab.node_names()}
    # PID 1 of each node is its own init; pacemakerd runs in every node.
    for n in lab.node_names():
        out = lab.exec(n, ["ps", "-eo", "pid=,comm="], check=True).stdout
        procs = [(int(line.split()[0]), line.split()[1]) for line in out.splitlines()]
        assert {"pacemakerd", "corosync", "sshd"} <= {comm for _, comm in procs}
        assert 1 in {pid for pid, _ in procs}
    # The ledger is one directory for everybody.
    lab.exec("node1", ["sh", "-c", f"echo hello > {LEDGER_DIR}/probe"], check=True)
    assert lab.exec("node3", ["cat", f"{LEDGER_DIR}/probe"], check=True).stdout == "hello\n"
    assert (lab.state_dir / "ledger" / "probe").read_text() == "hello\n"


def test_fence_agent_speaks_the_fence_agents_api(lab: Lab) -> None:
    agent = [PYTHON, str(FENCE_AGENT)]
    meta = subprocess.run(
        [*agent, "-o", "metadata"], capture_output=True, text=True, check=True
    ).stdout
    root = ET.fromstring(meta)
    assert root.get("name") == "fence_ajs3lab"
    assert {"on", "off", "reboot", "status", "list", "monitor", "metadata"} <= {
        a.get("name") for a in root.iter("action")
    }
    stdin = f"action=status\nport=node3\nstate_dir={lab.state_dir}\n"
    st = subprocess.run(agent, input=stdin, capture_output=True, text=True)
    assert st.returncode == 0, st.stderr
    listing = subprocess.run(
        [*agent, "-o", "list", f"--state-dir={lab.state_dir}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line.split(",")[0] for line in listing.split()] == lab.node_names()
    bad = subprocess.run(
        [*agent, "-o", "status", "-n", "node9", f"--state-dir={lab.state_dir}"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    # Pacemaker sees the device and knows it can fence every node.
    for n in lab.node_names():
        out = lab.exec("node2", ["stonith_admin", "--list", n], check=True).stdout
        assert "fence-ajs3lab" in out


def test_node_crash_is_fenced_and_lh1_fails_over(settled: Lab) -> None:
    lab = settled
    assert lab.group_location("lh1") == "node1"
    fo = lab.failover("lh1", "kill")
    t_kill = fo.started_at - fo.started_after
    history = wait_until(
        lambda: successful_fencings(lab, "node1", t_kill),
        30,
        0.5,
        "a successful fencing of node1 in the stonith history",
    )
    assert history[-1]["target"] == "node1"
    timing("node crash: kill -> fenced", fo.fenced_after)
    timing("node crash: kill -> lh1 started on survivor", fo.started_after)
    assert fo.fenced_at <= fo.started_at + 0.5, "lh1 started before node1 was fenced"
    assert_only_on(lab, "lh1", fo.survivor)
    assert lab.group_location("lh2", fo.survivor) == "node2", "lh2 must not move"
    # stonith-action=reboot: node1 comes back and rejoins; lh1 stays (stickiness).
    wait_until(lambda: "node1" in lab.online_nodes(fo.survivor), 90, 0.5, "node1 to rejoin")
    assert lab.group_location("lh1", fo.survivor) == fo.survivor


def test_pcs_resource_move_is_a_clean_switchover(settled: Lab) -> None:
    lab = settled
    src = lab.group_location("lh1")
    assert src is not None
    dst = "node1" if src != "node1" else "node3"
    fencings_before = len(lab.stonith_history("node1", "node2"))
    t0 = time.time()
    move = lab.exec(dst, ["pcs", "resource", "move", "lh1", dst], timeout=120)
    assert move.returncode == 0, move.stdout + move.stderr
    lab.wait_groups(timeout=60, where={"lh1": dst})
    timing(f"switchover: pcs resource move lh1 {src} -> {dst}", time.time() - t0)
    assert_only_on(lab, "lh1", dst)
    mon = lab.crm_mon(dst)
    assert [f.attrib for f in mon.iter("failure")] == []
    assert len(lab.stonith_history("node1", "node2")) == fencings_before, "nobody was fenced"
    # pcs 0.11 removes its temporary constraint once the move is done
    cons = lab.exec(
        dst, ["pcs", "constraint", "location", "config", "resources", "lh1"], check=True
    ).stdout
    assert "cli-" not in cons, cons


def test_cut_link_gets_the_node_fenced_and_lh2_moved(settled: Lab) -> None:
    lab = settled
    fo = lab.failover("lh2", "cut")
    timing("link cut: cut -> fenced", fo.fenced_after)
    timing("link cut: cut -> lh2 started on survivor", fo.started_after)
    assert fo.fenced_at <= fo.started_at + 0.5, "lh2 started before its old node was fenced"
    assert lab.node_pid(fo.victim) != fo.victim_pid_before, "cut-off node not power-cycled"
    assert_only_on(lab, "lh2", fo.survivor)


def test_repeated_crashes_median_and_worst(settled: Lab) -> None:
    """Crash whichever node runs lh1, again ($AJS3_LAB_CRASHES times, default 2; the
    soak of test_failover.py does many more, under load): every time the node is fenced
    first and lh1 comes up elsewhere."""
    lab = settled
    rounds = int(os.environ.get("AJS3_LAB_CRASHES", "2"))
    results = []
    for _ in range(rounds):
        lab.wait_cluster(timeout=120)
        lab.wait_groups(timeout=120)
        fo = lab.failover("lh1", "kill")
        assert fo.fenced_at <= fo.started_at + 0.5, fo
        results.append(fo)
        print(
            f"{fo.victim} -> {fo.survivor} (victim was DC: {fo.was_dc}): fenced "
            f"{fo.fenced_after:.2f} s, lh1 started {fo.started_after:.2f} s; "
            f"start exec ms {fo.start_ms}"
        )
    assert len({fo.victim for fo in results}) >= min(2, rounds), "failovers did not alternate"
    for name, values in (
        ("fenced", [fo.fenced_after for fo in results]),
        ("lh1 started", [fo.started_after for fo in results]),
    ):
        timing(f"{rounds} crashes: kill -> {name}, median", statistics.median(values))
        timing(f"{rounds} crashes: kill -> {name}, worst", max(values))


def test_infra_suite_passes_over_ssh(settled: Lab) -> None:
    """tests/infra, as it would run against Vagrant VMs, over the lab's ssh_config."""
    infra_suite(settled.ssh_config)


def small_lab(tmp_path: Path, prefix: str) -> Lab:
    """A second lab of two nodes beside the real one (its own prefix, no cluster), its
    configuration recorded so that down() can remove whatever its test made."""
    other = Lab(tmp_path / "state", nodes=2, prefix=prefix)
    with other._locked() as state:
        state["config"] = {
            "nodes": 2,
            "prefix": prefix,
            "subnet": other.subnet,
            "app": other.app,
            "lhosts": list(other.lhosts),
            "cluster_name": prefix,
        }
        state["netns"], state["created_paths"] = [], []
    return other


def test_a_held_plug_is_powered_on_only_at_its_release(lab: Lab, tmp_path: Path) -> None:
    """Lab.holding, which Lab.failover uses, on a small lab of its own (no cluster
    configured, so nobody fences): a reboot of a held plug (what the cluster's
    fencing asks for) answers as soon as the node is off, and the node stays off
    until the release powers it on; a hold without a reboot powers nothing; a hold
    never released ends by itself (the safety net). The PDU log tells it all, and
    fencing_done finds the power-off either way."""
    other = small_lab(tmp_path, "ajs3h")
    agent = [PYTHON, str(FENCE_AGENT), "-o", "reboot", "-n", "node1"]
    agent.append(f"--state-dir={other.state_dir}")
    try:
        other._make_files()
        other._make_volumes()
        other._make_network()
        other._start_pdu()
        other.power_on("node1")  # node2 stays off: one node is enough
        pid = other.node_pid("node1")
        assert pid
        t0 = time.time()
        with other.holding("node1"):
            subprocess.run(agent, check=True, capture_output=True, timeout=60)
            assert not other.is_on("node1")
            time.sleep(1)
            assert not other.is_on("node1"), "a held plug was powered on"
            fenced = other.fencing_done("node1", t0)
            assert fenced is not None
        after = other.node_pid("node1")
        assert after and after != pid, "the release did not power the node on"
        phases = [(e["action"], e["phase"]) for e in other.pdu_log() if e["time"] >= t0]
        assert phases == [
            ("hold", "hold"),
            ("reboot", "begin"),
            ("reboot", "off"),
            ("reboot", "held"),
            ("release", "release"),
            ("reboot", "on"),
        ], phases
        assert other.fencing_done("node1", t0) == fenced
        # nothing deferred: the release powers nothing
        with other.holding("node1"):
            pass
        assert other.node_pid("node1") == after
        # the safety net: a hold that nobody releases ends by itself
        t1 = time.time()
        other.pdu("hold", "node1", seconds=2)
        subprocess.run(agent, check=True, capture_output=True, timeout=60)
        assert not other.is_on("node1")
        wait_until(lambda: other.is_on("node1"), 30, 0.2, "the hold to expire")
        assert ("release", "expired") in [
            (e["action"], e["phase"]) for e in other.pdu_log() if e["time"] >= t1
        ]
    finally:
        other.down()
    assert lab.is_on("node1"), "the real lab noticed"


def test_down_cleans_up_after_an_interrupted_up(lab: Lab, tmp_path: Path) -> None:
    """A second, smaller lab whose up() is cut short after the nodes booted and whose
    PDU (the parent of the nodes) then crashed: down must still remove everything."""
    other = small_lab(tmp_path, "ajs3x")
    other._make_files()
    other._make_volumes()
    other._make_network()
    other._start_pdu()
    for n in other.node_names():
        other.power_on(n)
    st = other.load()
    pids = [(i[k], i[f"{k}_start"]) for i in st["nodes"].values() for k in ("init", "unshare")]
    pdu = (st["pdu"]["pid"], st["pdu"]["start"])
    assert all(alive(p, s) for p, s in [*pids, pdu])
    os.kill(pdu[0], signal.SIGKILL)
    wait_until(lambda: not alive(*pdu), 10)
    done = other.down()
    assert any("killed node1 init" in d for d in done), done
    assert not [p for p, s in pids if alive(p, s)]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "ajs3x-" not in netns
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in loops
    assert not (tmp_path / "state").exists()
    # The real lab did not notice.
    assert lab.is_on("node1") and lab.is_on("node2")


def test_down_leaves_nothing(lab: Lab) -> None:
    state: dict[str, Any] = json.loads(lab.state_file.read_text())
    images = [v["image"] for v in state["loops"].values()]
    pids = [
        (info[k], info[f"{k}_start"])
        for info in state["nodes"].values()
        for k in ("init", "unshare")
    ]
    pids.append((state["pdu"]["pid"], state["pdu"]["start"]))
    created = state.get("created_paths", [])
    t0 = time.time()
    lab.down()
    timing("down", time.time() - t0)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in state["netns"] if ns in netns.split()], netns
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not [img for img in images if img in loops], loops
    assert not [p for p, s in pids if alive(p, s)]
    assert not lab.state_dir.exists()
    for path in created:
        assert not Path(path).exists(), path
    leftovers = []
    for mi in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            text = mi.read_text()
        except OSError:
            continue
        if str(lab.state_dir) in text or " lab-run " in text or " lab-srv " in text:
            leftovers.append(str(mi))
    assert leftovers == []
