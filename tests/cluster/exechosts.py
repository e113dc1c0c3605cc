"""Execution hosts beside the namespace lab's nodes (issue 16; docs/exechosts.md).

An execution host here is what a database or batch server is in a real estate: a
machine with sshd and ajs3 (for `ajs3 exechost serve`) and no cluster software. Each is
a network namespace plugged into the lab's switch (``{subnet}.5N``) with PID, mount and
UTS namespaces of its own, whose PID 1 starts sshd and reaps orphans, like a node's.
Its state directory (the claims and ends of the runs it holds) is a directory of the
lab's on the host, bind-mounted at /var/lib/ajs3-exec: a disk that outlives a crash.
The ledger directory is mounted as on the nodes, so the workload's jobs write the same
lines wherever they run.

- ``crash(name)``: SIGKILL of its PID 1, which takes sshd, the supervisors and the jobs
  with it (the host loses power); ``boot(name)`` brings it back on the same disk.
- ``cut_link(name)`` / ``restore_link(name)``: its cable in the switch.

Each logical host has its own key pair, authorized on every execution host with the
forced command `ajs3 exechost serve --lhost-key LH`, and a known_hosts file with the
execution hosts' host keys; both live in the lab's state directory, which every node
sees at the same path (what docs/exechosts.md asks of a real estate: the same path on
every node). The lab's own admin key (the nodes' one) logs in as root with a shell, as
a site's administrators do: ``ssh_config`` is the nodes' ssh_config with the execution
hosts added, for tests/infra. Everything is recorded in the lab's state file, and
``Lab.down`` kills and removes it by pid and name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from lab import (
    CLEAN_ENV,
    LAB_PY,
    LEDGER_DIR,
    PYTHON,
    Lab,
    LabError,
    alive,
    children,
    run,
    start_time,
    wait_until,
)

AJS3 = "/opt/ajs3/venv/bin/ajs3"
#: where an execution host keeps its runs (ajs3 exechost serve's default)
STATE_MOUNT = "/var/lib/ajs3-exec"

# PID 1 of an execution host. $1 name, $2 its directory in the lab's state, $3 the
# ledger's mount point, $4 the ledger directory on the host.
XH_INIT = r"""#!/bin/bash
set -euo pipefail
name=$1 d=$2 ledger=$3 ledger_host=$4
echo "init: booting $name (pid $$)"
hostname "$name"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 xh-run /run
mkdir -p /run/lab/varlib-upper /run/lab/varlib-work /run/sshd
mount -t overlay xh-varlib \
      -o lowerdir=/var/lib,upperdir=/run/lab/varlib-upper,workdir=/run/lab/varlib-work /var/lib
mkdir -p "$ledger" /var/lib/ajs3-exec
mount --bind "$ledger_host" "$ledger"
mount --bind "$d/state" /var/lib/ajs3-exec
ip link set lo up
/usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
echo "init: sshd up"
exec /usr/bin/python3 -S -c '
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
'
"""


class ExecHosts:
    """The execution hosts of one lab (``count`` of them: xh1, xh2, ...)."""

    def __init__(self, lab: Lab, count: int = 2) -> None:
        self.lab = lab
        self.count = count
        self.dir = lab.state_dir / "exechosts"
        self._popens: dict[str, subprocess.Popen[bytes]] = {}

    # ---- names and places

    def names(self) -> list[str]:
        return [f"xh{i}" for i in range(1, self.count + 1)]

    def addr(self, name: str) -> str:
        return f"{self.lab.subnet}.{50 + self._index(name)}"

    def ns(self, name: str) -> str:
        return f"{self.lab.prefix}-{name}"

    def port(self, name: str) -> str:
        return f"v{name}"

    def _index(self, name: str) -> int:
        if name not in self.names():
            raise LabError(f"no execution host {name!r} (there are {', '.join(self.names())})")
        return int(name.removeprefix("xh"))

    def key(self, lhost: str) -> Path:
        return self.dir / "keys" / lhost

    @property
    def known_hosts(self) -> Path:
        return self.dir / "keys" / "known_hosts"

    def jobdir(self, name: str, lhost: str, run_id: str) -> Path:
        """A run's directory on an execution host's disk, as the host sees it."""
        return self.dir / name / "state" / lhost / "jobs" / run_id

    # ---- set-up

    def up(self, lhosts: list[str]) -> None:
        """Make every execution host, a key per logical host, and boot them."""
        (self.dir / "keys").mkdir(parents=True, exist_ok=True)
        (self.dir / "keys").chmod(0o700)
        known = []
        for name in self.names():
            d = self.dir / name
            (d / "state").mkdir(parents=True, exist_ok=True)
            (d / "init.sh").write_text(XH_INIT)
            if not (d / "host_key").exists():
                run(
                    [
                        "ssh-keygen",
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "",
                        "-C",
                        name,
                        "-f",
                        str(d / "host_key"),
                    ]
                )
            pub = (d / "host_key.pub").read_text().split()
            known.append(f"{self.addr(name)} {pub[0]} {pub[1]}\n")
            (d / "sshd_config").write_text(
                f"Port 22\nListenAddress {self.addr(name)}\nHostKey {d}/host_key\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPidFile /run/sshd.pid\n"
                "MaxSessions 200\nMaxStartups 200:30:400\nAllowTcpForwarding no\n"
                "X11Forwarding no\nLogLevel VERBOSE\n"
            )
        self.known_hosts.write_text("".join(known))
        lines = []
        for lh in lhosts:
            key = self.key(lh)
            if not key.exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", lh, "-f", str(key)])
            command = (
                # root jobs, as the workload's on the nodes (they append to a root-owned
                # ledger directory's files)
                f"{AJS3} exechost serve --lhost-key {lh} --state-dir {STATE_MOUNT} "
                "--default-user root --allow-root-jobs"
            )
            pub = Path(f"{key}.pub").read_text().strip()
            lines.append(
                f'command="{command}",no-port-forwarding,no-pty,no-agent-forwarding,'
                f"no-X11-forwarding {pub}\n"
            )
        # the site's administrators: the lab's admin key, with a shell (tests/infra)
        admin = (self.lab.ssh_config.parent / "id_ed25519.pub").read_text().strip()
        lines.insert(0, f"{admin}\n")
        for name in self.names():
            (self.dir / name / "authorized_keys").write_text("".join(lines))
            self.boot(name)
        self._write_ssh_config()

    @property
    def ssh_config(self) -> Path:
        """The nodes' ssh_config and the execution hosts (xh1, ...): tests/infra's."""
        return self.dir / "ssh_config"

    def _write_ssh_config(self) -> None:
        ssh = self.lab.ssh_config.parent
        known, cfg = [], [self.lab.ssh_config.read_text()]
        for name in self.names():
            pub = (self.dir / name / "host_key.pub").read_text().split()
            known.append(f"{name} {pub[0]} {pub[1]}\n")
            cfg.append(
                f"Host {name}\n  HostName {self.addr(name)}\n  User root\n"
                f"  IdentityFile {ssh}/id_ed25519\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.dir}/admin_known_hosts\n"
                f"  StrictHostKeyChecking yes\n  HostKeyAlias {name}\n  LogLevel ERROR\n"
                # through the host's own namespace, as for the nodes
                f"  ProxyCommand /usr/sbin/ip netns exec {self.ns(name)} {PYTHON} -S {LAB_PY} "
                f"relay {self.addr(name)} 22\n\n"
            )
        (self.dir / "admin_known_hosts").write_text("".join(known))
        self.ssh_config.write_text("".join(cfg))

    def settings(self, lhost: str, group: str = "xhs") -> dict[str, Any]:
        """The part of ``lhost``'s ajs3.yaml that names the execution hosts and a group
        of all of them."""
        hosts = {
            name: {
                "destination": self.addr(name),
                "user": "root",
                "identity_file": str(self.key(lhost)),
                "known_hosts": str(self.known_hosts),
            }
            for name in self.names()
        }
        return {
            "execution_hosts": hosts,
            "host_groups": {group: {"members": self.names(), "distribution": "round_robin"}},
        }

    # ---- power

    def _net(self, name: str) -> None:
        ns = self.ns(name)
        with self.lab._locked() as state:
            if ns not in state["netns"]:
                state["netns"].append(ns)
        run(["ip", "netns", "add", ns])
        sw, port = self.lab.switch_ns, self.port(name)
        run(
            [
                "ip",
                "-n",
                sw,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ]
        )
        run(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{self.addr(name)}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def boot(self, name: str) -> None:
        """Power the execution host on (on its own disk) and wait for its sshd."""
        if self.is_on(name):
            return
        if not Path(f"/run/netns/{self.ns(name)}").exists():
            self._net(name)
        d = self.dir / name
        with open(d / "console.log", "ab") as console:
            p = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns(name),
                    "unshare",
                    "--mount",
                    "--pid",
                    "--uts",
                    "--fork",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "/bin/bash",
                    str(d / "init.sh"),
                    name,
                    str(d),
                    LEDGER_DIR,
                    str(self.lab.state_dir / "ledger"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
            )
        self._popens[name] = p
        init = wait_until(lambda: children(p.pid)[:1], 10, 0.02, f"{name}'s init")[0]
        with self.lab._locked() as state:
            state.setdefault("exechosts", {})[name] = {
                "unshare": p.pid,
                "unshare_start": start_time(p.pid),
                "init": init,
                "init_start": start_time(init),
            }
        wait_until(
            lambda: (
                f"{self.addr(name)}:22"
                in run(["ip", "netns", "exec", self.ns(name), "ss", "-ltn"], check=False).stdout
            ),
            20,
            0.1,
            f"sshd on {name}",
        )

    def _pid(self, name: str) -> tuple[int | None, int | None]:
        info = self.lab.load().get("exechosts", {}).get(name, {})
        return info.get("init"), info.get("init_start")

    def is_on(self, name: str) -> bool:
        return alive(*self._pid(name))

    def crash(self, name: str) -> None:
        """Power off: its PID 1 killed, and with it every process of the host."""
        pid, started = self._pid(name)
        if pid is not None and alive(pid, started):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not alive(pid, started), 30, 0.01, f"{name}'s processes to die")
        p = self._popens.pop(name, None)
        if p is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)

    # ---- the cable

    def cut_link(self, name: str) -> None:
        run(["ip", "-n", self.lab.switch_ns, "link", "set", self.port(name), "down"])

    def restore_link(self, name: str) -> None:
        run(["ip", "-n", self.lab.switch_ns, "link", "set", self.port(name), "up"])

    def down(self) -> None:
        for name in self.names():
            self.crash(name)
