"""A real execution host for tests and the benchmark: /usr/sbin/sshd in a network
namespace of its own.

Per session: a namespace ``ajs3xh<pid><i>``, a veth pair to the root namespace on a
/30 of 10.232.0.0/24 (lab 0: the host is 10.232.0.2), an sshd with a host key and config generated
in a temporary directory, and ``authorized_keys`` lines whose forced command is
``ajs3 exechost serve``. Everything is removed at the end, also on failure: sshd and
the processes it started (by pid), the namespace and the veth pair. Never the
Pacemaker lab's names (``ajs3lab*``) or subnet (10.231.x).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.lhost import REPO

#: The /24 the labs' veth pairs take (AJS3_EXECHOST_LAB_SUBNET, e.g. "10.232.1", for a
#: second test session beside a first on one machine: two labs of one subnet would give
#: the root namespace one address on two links).
SUBNET = os.environ.get("AJS3_EXECHOST_LAB_SUBNET", "10.232.0")
#: the address of lab 0's execution host (lab i: 10.232.0.(4i + 2))
HOST_ADDR = f"{SUBNET}.2"


def available() -> str | None:
    """Why the lab cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not os.access("/usr/sbin/sshd", os.X_OK):
        return "needs /usr/sbin/sshd (apt-get install openssh-server)"
    return None


def _left_by_the_dead(name: str) -> bool:
    """Whether ``name`` is a lab namespace (``ajs3xh<pid>x<i>``) whose session has ended.
    The pid is kept modulo 100000: a live process of that number, ours or not, keeps
    the name (a leftover waits for the next session rather than one in use going)."""
    if not name.startswith("ajs3xh") or "x" not in name[6:]:
        return False
    pid = name[6:].split("x")[0]
    if not pid.isdigit():
        return False
    live = {p % 100000 for p in psutil.pids()}
    return int(pid) not in live


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@dataclass
class ExecHostLab:
    """One sshd on 10.232.0.2 in its own namespace."""

    base: Path
    index: int = 0
    sshd: subprocess.Popen[bytes] | None = None
    state_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        assert 0 <= self.index < 10
        self.ns = f"ajs3xh{os.getpid() % 100000}x{self.index}"
        self.addr = f"{SUBNET}.{4 * self.index + 2}"
        self.root_addr = f"{SUBNET}.{4 * self.index + 1}"
        self.state_dir = self.base / "state"
        self.authorized = self.base / "authorized_keys"
        self.known_hosts = self.base / "known_hosts"

    # -- set up and tear down ---------------------------------------------------------

    def up(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o700)
        self._stale()
        veth = self.ns + "a"
        _run("ip", "netns", "add", self.ns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", self.ns + "b")
        _run("ip", "link", "set", self.ns + "b", "netns", self.ns)
        _run("ip", "addr", "add", f"{self.root_addr}/30", "dev", veth)
        _run("ip", "link", "set", veth, "up")
        inside = ("ip", "netns", "exec", self.ns)
        _run(*inside, "ip", "addr", "add", f"{self.addr}/30", "dev", self.ns + "b")
        _run(*inside, "ip", "link", "set", self.ns + "b", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        key = self.base / "host_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        pub = (self.base / "host_ed25519.pub").read_text().split()
        self.known_hosts.write_text(f"{self.addr} {pub[0]} {pub[1]}\n")
        self.authorized.write_text("")
        self.authorized.chmod(0o600)
        config = self.base / "sshd_config"
        config.write_text(
            f"ListenAddress {self.addr}\nPort 22\nHostKey {key}\n"
            f"PidFile {self.base / 'sshd.pid'}\nAuthorizedKeysFile {self.authorized}\n"
            "PermitRootLogin forced-commands-only\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PubkeyAuthentication yes\nLogLevel VERBOSE\nMaxSessions 200\n"
            "MaxStartups 200:30:400\nAllowTcpForwarding no\nX11Forwarding no\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        self.sshd = subprocess.Popen(
            [*inside, "/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(self.base / "sshd.log")],
            stdin=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            probe = _run(*inside, "ss", "-ltn", check=False)
            if f"{self.addr}:22" in probe.stdout:
                return
            if self.sshd.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"sshd did not start: {(self.base / 'sshd.log').read_text()}")

    def _stale(self) -> None:
        """Namespaces and veths that a crashed session of ours left: their names carry
        the pid of the session that made them (``ajs3xh<pid>x<i>``), and that pid no
        longer runs. Another session that is still running keeps its labs."""
        listing = _run("ip", "netns", "list", check=False).stdout.split()
        for name in listing:
            if (
                _left_by_the_dead(name)
                and not _run("ip", "netns", "pids", name, check=False).stdout.strip()
            ):
                _run("ip", "netns", "del", name, check=False)
        for line in _run("ip", "-o", "link", "show", check=False).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.endswith("a") and _left_by_the_dead(name[:-1]):
                _run("ip", "link", "del", name, check=False)

    def down(self) -> None:
        if self.sshd is not None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.sshd.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
            with contextlib.suppress(OSError):
                self.sshd.kill()
            self.sshd.wait(timeout=10)
            self.sshd = None
        # jobs and sessions still in the namespace (their supervisors left sshd's tree)
        for pid in _run("ip", "netns", "pids", self.ns, check=False).stdout.split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "link", "del", self.ns + "a", check=False)
        _run("ip", "netns", "del", self.ns, check=False)

    # -- keys -----------------------------------------------------------------------------

    def key(self, name: str) -> Path:
        """A new client key pair (``name``, ``name.pub``) in the lab's directory."""
        path = self.base / name
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path))
        return path

    def authorize(self, key: Path, lhost: str, extra: str = "") -> None:
        """Let ``key`` speak for ``lhost``, and do nothing else (the forced command)."""
        command = (
            f"env PYTHONPATH={REPO} {sys.executable} -m ajs3.cli.main exechost serve "
            f"--lhost-key {lhost} --state-dir {self.state_dir} --allow-root-jobs {extra}"
        ).strip()
        pub = Path(f"{key}.pub").read_text().strip()
        with self.authorized.open("a") as f:
            f.write(
                f'command="{command}",no-port-forwarding,no-pty,no-agent-forwarding,'
                f"no-X11-forwarding {pub}\n"
            )

    def settings(self, key: Path, name: str = "xh1", extra: str = "") -> str:
        """The ``execution_hosts`` entry of ajs3.yaml for this host."""
        return (
            f"execution_hosts:\n  {name}:\n    destination: {self.addr}\n    user: root\n"
            f"    identity_file: {key}\n    known_hosts: {self.known_hosts}\n{extra}"
        )

    def jobdir(self, lhost: str, run_id: str) -> Path:
        return self.state_dir / lhost / "jobs" / run_id


@contextlib.contextmanager
def lab(base: Path, index: int = 0) -> Iterator[ExecHostLab]:
    the_lab = ExecHostLab(base, index)
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()
