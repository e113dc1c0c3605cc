#!/usr/bin/python3
"""A real Pacemaker/Corosync cluster of N nodes in Linux namespaces on this machine.

    python3 tests/cluster/lab.py [--state DIR] up [--nodes 3] [--app AGENT...]
    python3 tests/cluster/lab.py [--state DIR] status
    python3 tests/cluster/lab.py [--state DIR] exec NODE CMD...
    python3 tests/cluster/lab.py [--state DIR] kill|cut|restore|power-on NODE
    python3 tests/cluster/lab.py [--state DIR] hold|release NODE
    python3 tests/cluster/lab.py [--state DIR] down

Every node is a network namespace with a veth into a bridge that lives in a
"switch" namespace, plus (per boot) a mount, PID and UTS namespace whose init is a
small shell script (see NODE_INIT) that mounts the node's own /etc/corosync,
/var/lib/pacemaker, /var/lib/corosync, /var/log, /run, /dev/shm and /srv, then
starts sshd, corosync and pacemakerd.

Power is controlled by a "PDU": a small daemon (`lab.py pdu`, host namespaces)
listening on <state>/pdu.sock. The lab fence agent (fence_ajs3lab) talks to it, the
way a real fence agent talks to a power switch: a fence agent runs inside a node's
PID namespace, where the other nodes' processes are invisible and unkillable, so the
power-off has to happen outside. The PDU is also the parent of every node, so node
processes are always reaped. A plug can be held (Lab.holding): a reboot of it then
powers the node off and answers at once, but the power-on waits for the release.

All that `down` needs is recorded in <state>/state.json *before* it is created, so
`down` cleans up after a crash or an interrupted run too. Only Python's standard
library is used (the script runs under /usr/bin/python3 and inside the nodes).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import select
import shlex
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAB_PY = Path(__file__).resolve()
FENCE_AGENT = HERE / "fence_ajs3lab"
CLUSTER_SH = REPO / "vagrant" / "provision" / "cluster.sh"
NODE_SH = REPO / "vagrant" / "provision" / "node.sh"
PYTHON = "/usr/bin/python3"

DEFAULT_STATE = Path(os.environ.get("AJS3_LAB_STATE", "/tmp/ajs3-lab"))
# Third resource of each logical host's group; {lh} and {dir} are filled in.
# AJS3_LAB_APP or Lab(app=...) chooses another one (e.g. DUMMY_APP).
DUMMY_APP = "ocf:heartbeat:Dummy"
AJS3_APP = "ocf:ajs3:ajs3 lhost={lh} datadir={dir}"
# The default is the real agent; stop_jobs=wait makes a planned switchover graceful
# (running jobs end before the logical host moves; a crash is unaffected).
AJS3_WAIT_APP = AJS3_APP + " stop_jobs=wait"
DEFAULT_APP = os.environ.get("AJS3_LAB_APP", AJS3_WAIT_APP)
OCF_AJS3 = "/usr/lib/ocf/resource.d/ajs3/ajs3"
LEDGER_DIR = "/var/lib/ajs3-ledger"
MOUNT_ROOT = "/srv/ajs3"
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_ENV = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
# What an operator's shell on a node has: the `ajs3` link lives in /usr/local/bin.
OPERATOR_ENV = {**CLEAN_ENV, "PATH": "/usr/local/sbin:/usr/local/bin:" + CLEAN_PATH}

# Corosync timings for the lab (docs/lab.md explains the choice). Corosync's own
# defaults are token 3000 ms + 650 ms per node beyond two.
TOKEN_MS = 1000
TOKEN_COEFFICIENT_MS = 0

# The longest a plug stays held at the PDU (Lab.holding): Lab.failover releases it
# after at most 90 + 60 s of waiting; this is the safety net for a test that died in
# between, so that no node is left powered off for good.
HOLD_SECONDS = 180.0

T = TypeVar("T")

# Figures measured against a lab (name, seconds), for the test run's summary
# (tests/cluster/conftest.py prints them; $AJS3_LAB_TIMINGS gets them as JSON).
TIMINGS: list[tuple[str, float]] = []


class LabError(RuntimeError):
    """Something about the lab is wrong; the message says what to do."""


class ClusterNotFormed(LabError):
    """The nodes did not all come online with a DC in time (Corosync and Pacemaker's
    own start, before any resource of ours is configured)."""


# --------------------------------------------------------------------------- helpers


#: what every namespace lab needs on the machine
LAB_TOOLS = ("corosync", "pacemakerd", "pcs", "sshd", "losetup", "unshare", "nsenter", "ip")


def unavailable(who: str, tools: Sequence[str] = (), needs_agent: bool = True) -> str | None:
    """Why a namespace lab (``who``, for the message) cannot run here, or None: root,
    LAB_TOOLS and ``tools`` on CLEAN_PATH, and ocf:ajs3:ajs3 if ``needs_agent``."""
    if os.geteuid() != 0:
        return f"{who} needs root (network namespaces, loop devices, mounts)"
    missing = [t for t in (*LAB_TOOLS, *tools) if not shutil.which(t, path=CLEAN_PATH)]
    if missing:
        return f"missing {', '.join(missing)}: run vagrant/provision/install.sh"
    if needs_agent and not Path(OCF_AJS3).exists():
        return f"{OCF_AJS3} is missing: run vagrant/provision/install.sh"
    return None


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=env if env is not None else CLEAN_ENV,
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"{shlex.join(argv)} failed ({proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: no such process).

    A pid plus its start time names a process safely; a bare pid may be reused."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(pid: int | None, started: int | None) -> bool:
    return bool(pid) and started is not None and start_time(pid) == started  # type: ignore[arg-type]


def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


# --------------------------------------------------------------------------- node init

# PID 1 of a node. $1 node name, $2 state dir, $3 repo. Runs inside the node's fresh
# mount/PID/UTS namespaces (and its network namespace). Mounts made here are private to
# the node and vanish with it.
NODE_INIT = r"""#!/bin/bash
set -euo pipefail
node=$1 state=$2 repo=$3
d=$state/nodes/$node
echo "init: booting $node (pid $$)"
hostname "$node"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 lab-run /run
mount -t tmpfs -o mode=1777 lab-shm /dev/shm
mount -t tmpfs -o mode=0755 lab-srv /srv
mount --bind "$d/etc-corosync" /etc/corosync
# /var/lib is the node's own (an overlay on the host's, upper layer in the node's /run):
# the ledger's mount point lives there, so nothing on the host's tree is needed for
# it (a host directory could be removed under a running lab, e.g. by another lab's
# down, which silently detaches the node's mount).
mkdir -p /run/lab/varlib-upper /run/lab/varlib-work
mount -t overlay lab-varlib \
      -o lowerdir=/var/lib,upperdir=/run/lab/varlib-upper,workdir=/run/lab/varlib-work /var/lib
mkdir -p {ledger}
mount --bind "$d/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$d/var-lib-corosync" /var/lib/corosync
mount --bind "$d/var-log" /var/log
mount --bind "$d/hosts" /etc/hosts
mount --bind "$state/ledger" {ledger}
# The fence agent must be in /usr/sbin for Pacemaker; an overlay keeps the host's
# /usr/sbin untouched.
mkdir -p /run/lab/sbin-upper /run/lab/sbin-work
mount -t overlay lab-sbin \
      -o lowerdir=/usr/sbin,upperdir=/run/lab/sbin-upper,workdir=/run/lab/sbin-work /usr/sbin
bash "$repo/vagrant/provision/node.sh" --hosts-file "$state/hosts" \
     --fence-agent "$repo/tests/cluster/fence_ajs3lab"
ip link set lo up
/usr/sbin/sshd -f "$state/ssh/sshd_config" -h "$state/ssh/host_$node" -E /var/log/sshd.log
corosync
for _ in $(seq 100); do
    corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1 && break
    sleep 0.1
done
echo "init: corosync up"
setsid pacemakerd </dev/null >>/var/log/pacemakerd.out 2>&1 &
echo "init: pacemakerd started"
# Stay PID 1 and reap orphans, as an init must.
exec /usr/bin/python3 -S -c '
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
'
"""


# --------------------------------------------------------------------------- the lab


@dataclass
class Node:
    name: str
    index: int
    addr: str
    ns: str
    port: str  # the bridge-side end of the node's veth, in the switch namespace


@dataclass
class LogicalHost:
    name: str
    node: str  # preferred node
    ip: str
    image: str
    device: str = ""


@dataclass
class Failover:
    """One failover and its figures (seconds after the kill or cut)."""

    how: str
    lhost: str
    victim: str
    survivor: str
    was_dc: bool
    victim_pid_before: int | None
    fenced_after: float
    started_after: float
    started_at: float
    fenced_at: float
    start_ms: dict[str, int] = field(default_factory=dict)


@dataclass
class Lab:
    """The namespace cluster. All state is in state_dir/state.json; any number of Lab
    objects (CLI, pytest, the PDU) may work on one lab at the same time."""

    state_dir: Path = DEFAULT_STATE
    nodes: int = 3
    prefix: str = "ajs3lab"
    subnet: str = "10.231.0"
    app: str = DEFAULT_APP
    lhosts: Sequence[str] = ("lh1", "lh2")
    cluster_name: str = "ajs3lab"
    volume_mb: int = 64
    _popens: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        if self.state_file.exists():
            # An existing lab decides its own shape.
            cfg = self.load()["config"]
            self.nodes = cfg["nodes"]
            self.prefix = cfg["prefix"]
            self.subnet = cfg["subnet"]
            self.app = cfg["app"]
            self.lhosts = tuple(cfg["lhosts"])
            self.cluster_name = cfg["cluster_name"]

    # ---- names and places

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def pdu_socket(self) -> Path:
        return self.state_dir / "pdu.sock"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh" / "ssh_config"

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}-sw"

    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    def node(self, name: str) -> Node:
        if name not in self.node_names():
            raise LabError(f"no node {name!r} in this lab (nodes: {', '.join(self.node_names())})")
        i = int(name.removeprefix("node"))
        return Node(name, i, f"{self.subnet}.{10 + i}", f"{self.prefix}-{name}", f"v{name}")

    def logical_hosts(self) -> list[LogicalHost]:
        state = self.load() if self.state_file.exists() else {}
        out = []
        for i, lh in enumerate(self.lhosts, start=1):
            node = self.node_names()[(i - 1) % self.nodes]
            dev = state.get("loops", {}).get(lh, {}).get("device", "")
            out.append(
                LogicalHost(
                    lh,
                    node,
                    f"{self.subnet}.{100 + i}",
                    str(self.state_dir / "volumes" / f"{lh}.img"),
                    dev,
                )
            )
        return out

    # ---- state (json, guarded by flock so the PDU, the CLI and pytest can share it)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "state.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.load() if self.state_file.exists() else {}
            yield state
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
            os.replace(tmp, self.state_file)

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise LabError(f"no lab in {self.state_dir} (lab.py up, or --state DIR)") from None

    def _record(self, key: str, value: Any, *path: str) -> None:
        with self._locked() as state:
            target = state
            for p in path:
                target = target.setdefault(p, {})
            target[key] = value

    # ---- up

    def up(self, timeout: float = 180) -> None:
        """Build the lab and wait until both logical hosts run on their preferred nodes."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, loop devices, mounts)")
        if self.state_file.exists():
            raise LabError(
                f"{self.state_dir} already holds a lab: run `lab.py --state "
                f"{self.state_dir} down` first"
            )
        for tool in ("corosync", "pacemakerd", "pcs", "sshd", "losetup", "unshare", "nsenter"):
            if not shutil.which(tool, path=CLEAN_PATH):
                raise LabError(f"{tool} is missing: run vagrant/provision/install.sh")
        taken = set(run(["ip", "netns", "list"]).stdout.split())
        mine = {self.switch_ns} | {self.node(n).ns for n in self.node_names()}
        if taken & mine:
            raise LabError(
                f"network namespaces {sorted(taken & mine)} exist already but are "
                f"not in {self.state_file}; another lab with prefix {self.prefix!r}? "
                "use another --prefix"
            )
        t0 = time.monotonic()
        with self._locked() as state:
            state["config"] = {
                "nodes": self.nodes,
                "prefix": self.prefix,
                "subnet": self.subnet,
                "app": self.app,
                "lhosts": list(self.lhosts),
                "cluster_name": self.cluster_name,
            }
            state.setdefault("netns", [])
            state.setdefault("created_paths", [])
            state["started"] = time.time()
        self._make_files()
        self._make_volumes()
        self._make_network()
        self._start_pdu()
        for n in self.node_names():
            self.power_on(n)
        self.wait_cluster(timeout=timeout)
        self.configure()
        self.wait_groups(timeout=timeout)
        self._record("up_seconds", round(time.monotonic() - t0, 1))

    def _make_files(self) -> None:
        s = self.state_dir
        (s / "ledger").mkdir(parents=True, exist_ok=True)
        (s / "ledger").chmod(0o1777)
        (s / "node-init.sh").write_text(NODE_INIT.replace("{ledger}", LEDGER_DIR))
        hosts = "".join(f"{self.node(n).addr} {n}\n" for n in self.node_names())
        hosts += "".join(f"{lh.ip} {lh.name}\n" for lh in self.logical_hosts())
        (s / "hosts").write_text(hosts)
        # corosync.conf via the runbook script (pcs local mode), and one authkey.
        conf = s / "corosync.conf"
        run(
            [
                "bash",
                str(CLUSTER_SH),
                "corosync-conf",
                "--name",
                self.cluster_name,
                "--out",
                str(conf),
                "--token",
                str(TOKEN_MS),
                "--token-coefficient",
                str(TOKEN_COEFFICIENT_MS),
                *[f"{n}={self.node(n).addr}" for n in self.node_names()],
            ]
        )
        authkey = os.urandom(256)
        host_hosts = Path("/etc/hosts").read_text()
        for n in self.node_names():
            d = s / "nodes" / n
            for sub in ("etc-corosync", "var-lib-pacemaker", "var-lib-corosync", "var-log"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(conf, d / "etc-corosync" / "corosync.conf")
            key = d / "etc-corosync" / "authkey"
            key.write_bytes(authkey)
            key.chmod(0o400)
            (d / "hosts").write_text(host_hosts)
        self._make_ssh()

    def _make_ssh(self) -> None:
        d = self.state_dir / "ssh"
        d.mkdir(mode=0o700, exist_ok=True)
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ajs3-lab",
                "-f",
                str(d / "id_ed25519"),
            ]
        )
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        known = []
        for n in self.node_names():
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n, "-f", str(d / f"host_{n}")]
            )
            pub = (d / f"host_{n}.pub").read_text().split()
            known.append(f"{n} {pub[0]} {pub[1]}\n")
        (d / "known_hosts").write_text("".join(known))
        (d / "sshd_config").write_text(
            "Port 22\nListenAddress 0.0.0.0\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nAuthorizedKeysFile {d}/authorized_keys\n"
            "PidFile /run/sshd.pid\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
            "PrintMotd no\nAcceptEnv LANG LC_*\n"
        )
        cfg = []
        for n in self.node_names():
            node = self.node(n)
            cfg.append(
                f"Host {n}\n  HostName {node.addr}\n  User root\n"
                f"  IdentityFile {d}/id_ed25519\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
                f"  HostKeyAlias {n}\n  LogLevel ERROR\n"
                # Through the node's own loopback, so a node whose link is cut can
                # still be inspected; no address outside the lab is ever used.
                f"  ProxyCommand /usr/sbin/ip netns exec {node.ns} {PYTHON} -S {LAB_PY} "
                "relay 127.0.0.1 22\n\n"
            )
        self.ssh_config.write_text("".join(cfg))

    def _make_volumes(self) -> None:
        vd = self.state_dir / "volumes"
        vd.mkdir(exist_ok=True)
        for lh in self.logical_hosts():
            img = Path(lh.image)
            with open(img, "wb") as f:
                f.truncate(self.volume_mb * 1024 * 1024)
            run(["mkfs.ext4", "-q", "-F", "-L", lh.name, str(img)])
            self._record(lh.name, {"image": str(img), "device": ""}, "loops")
            dev = run(["losetup", "-f", "--show", str(img)]).stdout.strip()
            self._record(lh.name, {"image": str(img), "device": dev}, "loops")

    def _make_network(self) -> None:
        sw = self.switch_ns
        with self._locked() as state:
            state["netns"].append(sw)
        run(["ip", "netns", "add", sw])
        run(["ip", "-n", sw, "link", "set", "lo", "up"])
        run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", sw, "link", "set", "br0", "up"])

    def _make_node_net(self, name: str) -> None:
        """The node's "hardware": a fresh network namespace and a cable into the
        switch. Made at every power-on, so nothing (a service IP, say) survives a
        power cycle."""
        node = self.node(name)
        with self._locked() as state:
            if node.ns not in state["netns"]:
                state["netns"].append(node.ns)
        run(["ip", "netns", "add", node.ns])
        # The cable of the node's previous life can outlive its namespace for a while:
        # the kernel frees a deleted namespace asynchronously, later still while TCP
        # connections of the dead node are being closed (an ssh to an execution host,
        # say). Unplug it, so the new cable gets its name.
        if self._port_exists(node.port):
            run(["ip", "-n", self.switch_ns, "link", "del", node.port], check=False)
        # Created directly between the two namespaces: never in the host's.
        run(
            [
                "ip",
                "-n",
                self.switch_ns,
                "link",
                "add",
                node.port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.ns,
            ]
        )
        run(["ip", "-n", self.switch_ns, "link", "set", node.port, "master", "br0", "up"])
        run(["ip", "-n", node.ns, "addr", "add", f"{node.addr}/24", "dev", "eth0"])
        run(["ip", "-n", node.ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", node.ns, "link", "set", "lo", "up"])

    def _port_exists(self, port: str) -> bool:
        return run(["ip", "-n", self.switch_ns, "link", "show", port], check=False).returncode == 0

    # ---- the PDU

    def _start_pdu(self) -> None:
        with open(self.state_dir / "pdu.out", "ab") as log:
            p = subprocess.Popen(
                [PYTHON, str(LAB_PY), "--state", str(self.state_dir), "pdu"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
            )
        self._popens.append(p)
        self._record("pdu", {"pid": p.pid, "start": wait_until(lambda: start_time(p.pid), 5)})
        wait_until(self._pdu_answers, 10, 0.05, "the PDU to answer")

    def _pdu_answers(self) -> bool:
        try:
            return bool(self.pdu("ping", timeout=5) == "pong")
        except OSError:  # not there yet, or bound but not yet listening
            return False

    def pdu(self, action: str, plug: str = "", timeout: float = 60, **fields: Any) -> Any:
        """One request to the PDU (what fence_ajs3lab does); fields go with it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.pdu_socket))
            req = {"action": action, "plug": plug, **fields}
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        if not reply.get("ok"):
            raise LabError(f"PDU {action} {plug}: {reply.get('error')}")
        return reply.get("result")

    # ---- power (the PDU calls the _do_ variants; everyone else goes through the PDU)

    def power_on(self, node: str) -> None:
        self.pdu("on", node)

    def power_off(self, node: str) -> None:
        self.pdu("off", node)

    @contextlib.contextmanager
    def holding(self, node: str, seconds: float = HOLD_SECONDS) -> Iterator[None]:
        """Hold node's power-on at the PDU for the block: a reboot of node (the
        cluster's fencing, stonith-action=reboot) powers it off and answers the fence
        agent at once, as always, but the node is powered on again only when the block
        ends. A failover needs it: a node that reboots and rejoins within seconds can
        be given its group back (its location score is higher than the survivors')
        before the group has started anywhere else. The hold ends by itself after
        seconds if the release never comes."""
        self.node(node)
        self.pdu("hold", node, seconds=seconds)
        try:
            yield
        finally:
            self.pdu("release", node)

    def kill_node(self, node: str) -> float:
        """Crash a node the way fencing does: the fence agent's power-off path (fence
        agent -> PDU -> SIGKILL to the node's PID-namespace init, link down).
        Returns the wall-clock time just before the kill."""
        self.node(node)
        t = time.time()
        proc = run(
            [PYTHON, str(FENCE_AGENT), "-o", "off", "-n", node, f"--state-dir={self.state_dir}"],
            check=False,
            env=CLEAN_ENV,
        )
        if proc.returncode != 0:
            raise LabError(f"fence_ajs3lab -o off -n {node} failed: {proc.stderr.strip()}")
        return t

    def _do_power_on(self, node: str) -> bool:
        nd = self.node(node)
        info = self.load().get("nodes", {}).get(node, {})
        if alive(info.get("init"), info.get("init_start")):
            return False
        if not Path(f"/run/netns/{nd.ns}").exists():
            self._make_node_net(node)
        with open(self.state_dir / "nodes" / node / "console.log", "ab") as console:
            p = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    nd.ns,
                    "unshare",
                    "--mount",
                    "--pid",
                    "--uts",
                    "--fork",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "/bin/bash",
                    str(self.state_dir / "node-init.sh"),
                    node,
                    str(self.state_dir),
                    str(REPO),
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
            )
        init = wait_until(lambda: children(p.pid)[:1], 10, 0.02, f"{node}'s init")[0]
        with self._locked() as state:
            nodes = state.setdefault("nodes", {})
            boots = nodes.get(node, {}).get("boots", 0) + 1
            nodes[node] = {
                "unshare": p.pid,
                "unshare_start": start_time(p.pid),
                "init": init,
                "init_start": start_time(init),
                "boots": boots,
                "booted_at": time.time(),
            }
        return True

    def _do_power_off(self, node: str) -> bool:
        nd = self.node(node)
        # Link first: from here on the node can not send anything.
        run(["ip", "-n", self.switch_ns, "link", "set", nd.port, "down"], check=False)
        info = self.load().get("nodes", {}).get(node, {})
        pid, started = info.get("init"), info.get("init_start")
        was_on = alive(pid, started)
        if was_on:
            os.kill(pid, signal.SIGKILL)
            # init is gone only once every process of its PID namespace is gone.
            wait_until(lambda: not alive(pid, started), 30, 0.01, f"{node}'s processes to die")
        # Unplug the hardware too: the veth pair goes with the namespace.
        if Path(f"/run/netns/{nd.ns}").exists():
            run(["ip", "netns", "delete", nd.ns], check=False)
        return was_on

    def node_pid(self, node: str) -> int | None:
        """Host pid of the node's init (PID 1 inside the node); None if powered off."""
        self.node(node)
        info = self.load().get("nodes", {}).get(node, {})
        return info["init"] if alive(info.get("init"), info.get("init_start")) else None

    def is_on(self, node: str) -> bool:
        return self.node_pid(node) is not None

    # ---- links

    def cut_link(self, node: str) -> None:
        """Pull the node's cable: processes keep running, nothing gets in or out."""
        run(["ip", "-n", self.switch_ns, "link", "set", self.node(node).port, "down"])

    def restore_link(self, node: str) -> None:
        run(["ip", "-n", self.switch_ns, "link", "set", self.node(node).port, "up"])

    def link_up(self, node: str) -> bool:
        out = run(
            ["ip", "-n", self.switch_ns, "-o", "link", "show", self.node(node).port], check=False
        ).stdout
        return "<" in out and "UP" in out.split("<", 1)[1].split(">", 1)[0].split(",")

    # ---- running things on nodes

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the node (its network, mount, PID and UTS namespaces)."""
        pid = self.node_pid(node)
        if pid is None:
            raise LabError(f"{node} is powered off")
        return run(
            ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-p", "--", *argv],
            check=check,
            timeout=timeout,
            input=input,
            env=OPERATOR_ENV,
        )

    def sh(self, node: str, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.exec(node, ["/bin/bash", "-c", script], **kw)

    def running_nodes(self) -> list[str]:
        return [n for n in self.node_names() if self.is_on(n)]

    def crm_mon(self, node: str | None = None) -> ET.Element:
        """crm_mon's XML as seen from node (default: the first running node)."""
        node = node or self.running_nodes()[0]
        out = self.exec(node, ["crm_mon", "-1", "--output-as=xml"], check=True, timeout=30)
        return ET.fromstring(out.stdout)

    def online_nodes(self, node: str | None = None) -> list[str]:
        mon = self.crm_mon(node)
        return [
            n.get("name", "")
            for n in mon.findall("nodes/node")
            if n.get("online") == "true" and n.get("unclean") == "false" and n.get("name")
        ]

    def group_nodes(self, group: str, node: str | None = None) -> dict[str, list[str]]:
        """Where each resource of group runs: {resource: [nodes]} (started only)."""
        mon = self.crm_mon(node)
        out: dict[str, list[str]] = {}
        for g in mon.iter("group"):
            if g.get("id") != group:
                continue
            for r in g.iter("resource"):
                out[r.get("id", "")] = (
                    [n.get("name", "") for n in r.iter("node")]
                    if r.get("role") == "Started"
                    else []
                )
        return out

    def group_location(self, group: str, node: str | None = None) -> str | None:
        """The node where every resource of group is started, else None."""
        where = self.group_nodes(group, node)
        nodes = {tuple(v) for v in where.values()}
        if len(nodes) == 1:
            (only,) = nodes
            if len(only) == 1:
                return only[0]
        return None

    def wait_cluster(self, timeout: float = 120) -> None:
        want = set(self.running_nodes())

        def formed() -> bool:
            try:
                mon = self.crm_mon()
            except (LabError, ET.ParseError, subprocess.TimeoutExpired):
                return False
            dc = mon.find("summary/current_dc")
            online = {n.get("name") for n in mon.findall("nodes/node") if n.get("online") == "true"}
            return bool(dc is not None and dc.get("present") == "true" and online >= want)

        try:
            wait_until(formed, timeout, 0.5, f"nodes {sorted(want)} online with a DC")
        except LabError as exc:
            raise ClusterNotFormed(str(exc)) from exc

    def configure(self) -> None:
        """The cluster's resources, with the runbook's script, run on the first node."""
        args = [
            "bash",
            str(CLUSTER_SH),
            "configure",
            "--fence",
            f"fence_ajs3lab state_dir={self.state_dir} "
            f"pcmk_host_list={','.join(self.node_names())}",
            "--app",
            self.app,
            "--mount-root",
            MOUNT_ROOT,
        ]
        for lh in self.logical_hosts():
            args.append(f"{lh.name}={lh.node},{lh.device},{lh.ip}/24")
        proc = self.exec(self.running_nodes()[0], args, timeout=300)
        (self.state_dir / "configure.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise LabError(
                f"cluster.sh configure failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )

    def wait_groups(
        self, timeout: float = 120, where: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Wait until every logical host runs (on where[lh] if given)."""

        def placed() -> dict[str, str] | None:
            try:
                got = {lh.name: self.group_location(lh.name) for lh in self.logical_hosts()}
            except (LabError, ET.ParseError, subprocess.TimeoutExpired, IndexError):
                return None
            if any(v is None for v in got.values()):
                return None
            if where and any(got[k] != v for k, v in where.items()):
                return None
            return got  # type: ignore[return-value]

        return wait_until(placed, timeout, 0.25, f"logical hosts started ({where or 'anywhere'})")

    def stonith_history(self, target: str, node: str | None = None) -> list[dict[str, str]]:
        """Fencing actions against target, as the cluster records them."""
        node = node or next(n for n in self.running_nodes() if n != target)
        out = self.exec(
            node, ["stonith_admin", "--history", target, "--output-as=xml"], timeout=30
        ).stdout
        try:
            root = ET.fromstring(out)
        except ET.ParseError:
            return []
        return [dict(h.attrib) for h in root.iter("fence_event")]

    def pdu_log(self) -> list[dict[str, Any]]:
        path = self.state_dir / "pdu.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def dc(self, node: str | None = None) -> str | None:
        found = self.crm_mon(node).find("summary/current_dc")
        if found is None or found.get("present") != "true":
            return None
        return found.get("name")

    def fencing_done(self, target: str, since: float) -> float | None:
        """When the cluster's fencing of target (a reboot or off that fence_ajs3lab
        asked the PDU for) powered it off at the power switch, if it did after since.
        The power-off is what makes the node safe, and the PDU answers the agent right
        after it; a reboot's power-on follows at once, or, on a held plug
        (Lab.holding), only at the release, after the group has moved."""
        for ev in self.pdu_log():
            if ev["plug"] != target or ev["time"] < since:
                continue
            if ev["action"] == "reboot" and ev["phase"] == "off":
                return float(ev["time"])
            # An "off" right at `since` is our own kill_node, not the cluster's fencing.
            if ev["action"] == "off" and ev["phase"] == "off" and ev["time"] > since + 0.5:
                return float(ev["time"])
        return None

    def wait_moved(self, lh: str, away_from: str, timeout: float = 90) -> str:
        """Wait until lh runs on a node other than away_from (as that node's peers see
        it); returns the node."""
        others = [n for n in self.node_names() if n != away_from]

        def moved() -> str | None:
            for n in others:
                try:
                    where = self.group_location(lh, n)
                except (LabError, ET.ParseError, subprocess.TimeoutExpired):
                    continue
                if where in others:
                    return where
            return None

        try:
            return wait_until(moved, timeout, 0.2, f"{lh} to start on one of {others}")
        except LabError as e:
            raise LabError(f"{e}\n{self.diagnose(lh)}") from None

    def diagnose(self, lh: str) -> str:
        """What the cluster says about lh on every running node (fail counts, scores,
        its last log lines), with a copy of every node's /var/log kept for later: said
        when a wait for lh times out, so a failure in CI carries its own explanation."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        keep = Path(os.environ.get("AJS3_LAB_KEEP_LOGS") or "/tmp/ajs3-lab-diagnosis")
        where = keep / f"{lh}-{stamp}"
        lines = [f"diagnosis of {lh} (node logs copied to {where}):"]
        commands = {
            "crm_mon": ["crm_mon", "-1", "-r", "-f", "--show-detail"],
            "scores": ["sh", "-c", f"crm_simulate -Ls 2>&1 | grep -E '{lh}|^  \\*' | head -40"],
            "log": [
                "sh",
                "-c",
                f"grep -E '{lh}-|error|warning' /var/log/pacemaker/pacemaker.log "
                "| grep -vE 'cib_perform_op|cib_process_request' | tail -40",
            ],
        }
        for n in self.running_nodes():
            for what, argv in commands.items():
                try:
                    out = self.exec(n, argv, timeout=30)
                    text = (out.stdout + out.stderr).rstrip()
                except (LabError, subprocess.TimeoutExpired) as e:
                    text = f"({e})"
                lines.append(f"--- {n}: {what}\n{text}")
        for n in self.node_names():
            src = self.state_dir / "nodes" / n / "var-log"
            if src.exists():
                with contextlib.suppress(OSError):
                    shutil.copytree(src, where / n, dirs_exist_ok=True, symlinks=True)
        return "\n".join(lines)

    def failover(self, lh: str, how: str = "kill", timeout: float = 90) -> Failover:
        """Take down the node running lh (how: "kill" = crash, "cut" = pull its
        cable) and wait until lh runs elsewhere and the node has been fenced. The
        victim's power-on is held (Lab.holding) until then: the cluster's fencing is a
        reboot, and a victim back within seconds would get lh back (it prefers the
        node) before lh started elsewhere. After the release the victim boots and
        rejoins; lh stays where it is (stickiness above the location score)."""
        if how not in ("kill", "cut"):
            raise LabError(f"unknown failover {how!r} (kill or cut)")
        victim = self.group_location(lh)
        if victim is None:
            raise LabError(f"{lh} is not running on one node; settle the lab first")
        viewpoint = next(n for n in self.running_nodes() if n != victim)
        was_dc = self.dc(viewpoint) == victim
        old_pid = self.node_pid(victim)
        with self.holding(victim):
            if how == "kill":
                t0 = self.kill_node(victim)
            else:
                # The node runs on, cut off, until the cluster's fencing powers it off.
                t0 = time.time()
                self.cut_link(victim)
            survivor = self.wait_moved(lh, victim, timeout)
            t_started = time.time()
            fenced = wait_until(
                lambda: self.fencing_done(victim, t0), 60, 0.2, f"the fencing of {victim}"
            )
        return Failover(
            how=how,
            lhost=lh,
            victim=victim,
            survivor=survivor,
            was_dc=was_dc,
            victim_pid_before=old_pid,
            fenced_after=fenced - t0,
            started_after=t_started - t0,
            started_at=t_started,
            fenced_at=fenced,
            start_ms=self.start_times(lh, survivor),
        )

    def start_times(self, group: str, node: str) -> dict[str, int]:
        """How long the last start of each member of group took on node (ms, as the
        cluster recorded it): where a failover's time goes."""
        members = set(self.group_nodes(group, node))
        out: dict[str, int] = {}
        for n in self.crm_mon(node).iter("node"):
            if n.get("name") != node:
                continue
            for rh in n.iter("resource_history"):
                if rh.get("id") not in members:
                    continue
                starts = [op for op in rh.iter("operation_history") if op.get("task") == "start"]
                if starts:
                    last = max(starts, key=lambda op: int(op.get("call", "0")))
                    out[rh.get("id", "")] = int(last.get("exec-time", "0ms").rstrip("ms") or 0)
        return out

    # ---- status

    def status(self) -> str:
        if not self.state_file.exists():
            return f"no lab in {self.state_dir}\n"
        lines = [f"lab in {self.state_dir} (ssh: ssh -F {self.ssh_config} node1)"]
        state = self.load()
        pdu = state.get("pdu", {})
        lines.append(
            f"pdu: pid {pdu.get('pid')} "
            f"{'running' if alive(pdu.get('pid'), pdu.get('start')) else 'DEAD'}"
        )
        for n in self.node_names():
            nd = self.node(n)
            pid = self.node_pid(n)
            lines.append(
                f"{n}: {nd.addr} power {'on ' if pid else 'off'} "
                f"init-pid {pid or '-'} link {'up' if self.link_up(n) else 'down'}"
            )
        for lh in self.logical_hosts():
            lines.append(f"{lh.name}: {lh.device} {lh.ip} prefers {lh.node}")
        running = self.running_nodes()
        if running:
            lines.append(self.exec(running[0], ["crm_mon", "-1", "-r"]).stdout)
        return "\n".join(lines) + "\n"

    # ---- down

    def down(self, keep_logs: Path | None = None) -> list[str]:
        """Remove everything the lab made; safe to call after any crash. Returns what it
        did. keep_logs: copy the nodes' /var/log there first."""
        done: list[str] = []
        if not self.state_file.exists():
            if self.state_dir.exists():
                shutil.rmtree(self.state_dir)
                done.append(f"removed {self.state_dir}")
            return done
        state = self.load()
        pdu = state.get("pdu", {})
        if alive(pdu.get("pid"), pdu.get("start")):
            # The PDU is the parent (and subreaper) of every node: let it power them off
            # and reap them, so no zombie is left behind.
            with contextlib.suppress(Exception):
                self.pdu("shutdown", timeout=60)
                wait_until(lambda: not alive(pdu["pid"], pdu["start"]), 20, 0.05)
                done.append("PDU powered off all nodes and stopped")
        # Whatever is still alive (the PDU crashed or hung): kill it by pid. Nodes
        # first (each SIGKILL takes a whole PID namespace with it), then the PDU.
        victims = []
        # ... and the execution hosts beside them (tests/cluster/exechosts.py)
        hosts = {**state.get("nodes", {}), **state.get("exechosts", {})}
        for n, info in hosts.items():
            for key in ("init", "unshare"):
                if alive(info.get(key), info.get(f"{key}_start")):
                    victims.append((f"{n} {key}", info[key], info[f"{key}_start"]))
        if alive(pdu.get("pid"), pdu.get("start")):
            victims.append(("pdu", pdu["pid"], pdu["start"]))
        for what, pid, started in victims:
            if alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                done.append(f"killed {what} ({pid})")
        for _what, pid, started in victims:
            with contextlib.suppress(LabError):
                wait_until(lambda p=pid, s=started: not alive(p, s), 30, 0.05)
        for p in self._popens:
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self._popens.clear()
        if keep_logs is not None:
            for n in state.get("nodes", {}):
                src = self.state_dir / "nodes" / n / "var-log"
                if src.exists():
                    shutil.copytree(src, Path(keep_logs) / n, dirs_exist_ok=True, symlinks=True)
        for ns in reversed(state.get("netns", [])):
            if Path(f"/run/netns/{ns}").exists():
                run(["ip", "netns", "delete", ns], check=False)
                done.append(f"deleted netns {ns}")
        for info in state.get("loops", {}).values():
            img = info.get("image")
            if not img:
                continue
            # Every loop device backed by our image, also one attached just before a crash.
            out = run(["losetup", "-j", img, "-O", "NAME", "-n"], check=False).stdout.split()
            for dev in out:
                run(["losetup", "-d", dev], check=False)
                done.append(f"detached {dev}")
        for path in reversed(state.get("created_paths", [])):
            with contextlib.suppress(OSError):
                Path(path).rmdir()
                done.append(f"removed {path}")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        done.append(f"removed {self.state_dir}")
        return done


# --------------------------------------------------------------------------- PDU daemon


class _PduHandler(socketserver.StreamRequestHandler):
    server: _PduServer

    def handle(self) -> None:
        line = self.rfile.readline()
        try:
            req = json.loads(line)
            seconds = float(req.get("seconds", HOLD_SECONDS))
            result = self.server.act(req.get("action", ""), req.get("plug", ""), seconds)
            reply = {"ok": True, "result": result}
        except Exception as e:  # the fence agent needs an answer, whatever happened
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


@dataclass
class _Hold:
    """A held plug (see Lab.holding): until when (time.monotonic()), and the action
    ("reboot" or "on") whose power-on waits for the release, if one came."""

    until: float
    deferred: str | None = None


class _PduServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.power_lock = threading.Lock()
        self.holds: dict[str, _Hold] = {}  # plug -> its hold; under power_lock
        with contextlib.suppress(FileNotFoundError):
            lab.pdu_socket.unlink()
        super().__init__(str(lab.pdu_socket), _PduHandler)
        lab.pdu_socket.chmod(0o600)

    def log(self, **event: Any) -> None:
        event["time"] = time.time()
        with open(self.lab.state_dir / "pdu.log", "a") as f:
            f.write(json.dumps(event) + "\n")

    def act(self, action: str, plug: str, seconds: float = HOLD_SECONDS) -> Any:
        """Do a request; seconds: how long a hold lasts at most."""
        lab = self.lab
        if action == "list":
            return lab.node_names()
        if action == "ping":
            return "pong"
        if action == "shutdown":
            with self.power_lock:
                # No held power-on may come after the end.
                self.holds.clear()
                for n in lab.node_names():
                    self.log(action="off", plug=n, phase="shutdown", was_on=lab._do_power_off(n))
            threading.Thread(target=self.shutdown, daemon=True).start()
            return "bye"
        lab.node(plug)
        if action == "status":
            return "on" if lab.is_on(plug) else "off"
        if action == "hold":
            with self.power_lock:
                self.holds[plug] = _Hold(time.monotonic() + seconds)
                self.log(action=action, plug=plug, phase="hold", seconds=seconds)
            return "held"
        if action == "release":
            with self.power_lock:
                return self.release(plug, "release")
        if action not in ("on", "off", "reboot"):
            raise LabError(f"unknown action {action!r}")
        with self.power_lock:
            self.log(action=action, plug=plug, phase="begin")
            changed = {}
            hold = self.holds.get(plug)
            if action in ("off", "reboot"):
                changed["off"] = lab._do_power_off(plug)
                self.log(action=action, plug=plug, phase="off", was_on=changed["off"])
                if hold is not None and action == "off":
                    hold.deferred = None  # off is the last word: no power-on at the release
            if action in ("on", "reboot"):
                if hold is None:
                    changed["on"] = lab._do_power_on(plug)
                    self.log(action=action, plug=plug, phase="on", was_off=changed["on"])
                else:
                    # Answer now: the cluster's fencing is done once the node is off,
                    # and the group it guards can only move after that answer.
                    hold.deferred = action
                    changed["held"] = True
                    self.log(action=action, plug=plug, phase="held")
            return changed

    def release(self, plug: str, why: str) -> dict[str, bool]:
        """End plug's hold (why: "release", or "expired" for the safety net) and do
        the power-on it deferred, logged as the "on" phase of the deferred action.
        Called under power_lock."""
        hold = self.holds.pop(plug, None)
        self.log(action="release", plug=plug, phase=why, held=hold is not None)
        if hold is None or hold.deferred is None:
            return {}
        was_off = self.lab._do_power_on(plug)
        self.log(action=hold.deferred, plug=plug, phase="on", was_off=was_off, after=why)
        return {"on": was_off}

    def expire_holds(self) -> None:
        """Release every hold past its time. Called under power_lock."""
        now = time.monotonic()
        for plug in [p for p, h in self.holds.items() if h.until <= now]:
            self.release(plug, "expired")


def _reap_orphans(block_for: float = 0) -> None:
    """Reap every exited child (the nodes' unshare processes, and their inits if an
    unshare died first: the PDU is their subreaper)."""
    deadline = time.monotonic() + block_for
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)


def pdu_main(lab: Lab) -> None:
    # Orphans of the nodes come to us, not to PID 1 (which need not reap: on some
    # machines it doesn't).
    PR_SET_CHILD_SUBREAPER = 36
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    server = _PduServer(lab)

    def reaper() -> None:
        while True:
            time.sleep(0.5)
            # Under the power lock: every subprocess the PDU runs runs under it too,
            # so this never steals the exit status of one of them.
            with server.power_lock:
                _reap_orphans()
                server.expire_holds()  # the safety net of Lab.holding

    threading.Thread(target=reaper, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()
    server.server_close()
    with contextlib.suppress(FileNotFoundError):
        lab.pdu_socket.unlink()
    _reap_orphans(block_for=5)


def infra_suite(ssh_config: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    """tests/infra (or some of its files) over SSH to the hosts of ssh_config, as
    against the Vagrant VMs; verbose, so a caller can see which checks ran."""
    targets = [str(REPO / "tests" / "infra" / p) for p in paths] or [str(REPO / "tests" / "infra")]
    options = ["-v", "-p", "no:cacheprovider", f"--ssh-config={ssh_config}"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *targets, *options],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc


def relay_main(host: str, port: int) -> None:
    """stdin/stdout <-> TCP (an ssh ProxyCommand; run inside a node's netns)."""
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(None)
    fds = [0, s.fileno()]
    while fds:
        ready, _, _ = select.select(fds, [], [])
        for fd in ready:
            if fd == 0:
                data = os.read(0, 65536)
                if not data:
                    s.shutdown(socket.SHUT_WR)
                    fds.remove(0)
                else:
                    s.sendall(data)
            else:
                data = s.recv(65536)
                if not data:
                    return
                os.write(1, data)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE,
        help=f"state directory (default {DEFAULT_STATE}, or $AJS3_LAB_STATE)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="build the lab and start the cluster")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--prefix", default="ajs3lab", help="network namespace name prefix")
    p.add_argument(
        "--app",
        default=DEFAULT_APP,
        help="third resource of each group, {lh}/{dir} filled in "
        f"(default {DEFAULT_APP!r}; real one: {AJS3_APP!r})",
    )
    p = sub.add_parser("down", help="remove everything the lab made")
    p.add_argument("--keep-logs", type=Path, help="copy the nodes' /var/log here first")
    sub.add_parser("status", help="power, links and crm_mon")
    sub.add_parser("ssh-config", help="print the path of the ssh_config for the nodes")
    p = sub.add_parser("exec", help="run a command on a node")
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    for name, text in (
        ("kill", "power a node off (fence agent's off path)"),
        ("power-on", "power a node on"),
        ("cut", "pull a node's network cable"),
        ("restore", "plug a node's cable back in"),
        ("hold", f"hold a node's power-on at the PDU (at most {HOLD_SECONDS:.0f} s)"),
        ("release", "end a hold, powering the node on if a reboot waits"),
    ):
        sub.add_parser(name, help=text).add_argument("node")
    sub.add_parser("pdu", help=argparse.SUPPRESS)
    p = sub.add_parser("relay", help=argparse.SUPPRESS)
    p.add_argument("host")
    p.add_argument("port", type=int)
    for p in sub.choices.values():  # `lab.py up --state DIR` works as well
        p.add_argument("--state", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.cmd == "relay":
        relay_main(args.host, args.port)
        return 0
    try:
        if args.cmd == "up":
            lab = Lab(args.state, nodes=args.nodes, prefix=args.prefix, app=args.app)
            try:
                lab.up()
            except BaseException:
                print(
                    f"lab.py: up failed; logs in {args.state}; clean up with "
                    f"`lab.py --state {args.state} down`",
                    file=sys.stderr,
                )
                raise
            print(lab.status(), end="")
            return 0
        lab = Lab(args.state)
        if args.cmd == "down":
            for line in lab.down(keep_logs=args.keep_logs):
                print(line)
        elif args.cmd == "status":
            print(lab.status(), end="")
        elif args.cmd == "ssh-config":
            print(lab.ssh_config)
        elif args.cmd == "exec":
            if not args.argv:
                ap.error("exec needs a command")
            pid = lab.node_pid(args.node)
            if pid is None:
                raise LabError(f"{args.node} is powered off")
            return subprocess.call(
                ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-p", "--", *args.argv], env=CLEAN_ENV
            )
        elif args.cmd == "kill":
            lab.kill_node(args.node)
        elif args.cmd == "power-on":
            lab.power_on(args.node)
        elif args.cmd == "cut":
            lab.cut_link(args.node)
        elif args.cmd == "restore":
            lab.restore_link(args.node)
        elif args.cmd == "hold":
            lab.pdu("hold", args.node)
        elif args.cmd == "release":
            lab.pdu("release", args.node)
        elif args.cmd == "pdu":
            pdu_main(lab)
    except LabError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
