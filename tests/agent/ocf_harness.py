"""Helpers for the agent tier: running the agent, an engine wrapper, and a real
single-node Pacemaker in private namespaces.

Nothing here touches the host's cluster state: the Pacemaker node runs in new
mount, pid, network and UTS namespaces, with per-test directories bind-mounted
over /etc/corosync, /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker
and /run, and the working tree's agent made visible at
/usr/lib/ocf/resource.d/ajs3/ajs3 inside the namespace only.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "resource-agents" / "ajs3"
OCF_ROOT = Path("/usr/lib/ocf")
RESOURCE_D = OCF_ROOT / "resource.d"
PACEMAKER_TOOLS = ("corosync", "pacemakerd", "pcs", "crm_resource", "crm_mon", "cibadmin")

# Pacemaker runs agents with this PATH and nothing from a profile.
PACEMAKER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": str(OCF_ROOT)}


def missing_tools(tools: tuple[str, ...] = PACEMAKER_TOOLS) -> list[str]:
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    return [t for t in tools if shutil.which(t, path=path) is None]


def short_tempdir(prefix: str = "ajs3a-") -> Path:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ---------------------------------------------------------------------------
# The engine, pinned to this source tree.


def write_engine_wrapper(directory: Path) -> Path:
    """An `ajs3` program that runs this working tree's engine.

    Pacemaker strips the environment, so the wrapper sets PYTHONPATH itself,
    and uses the interpreter running the tests (the project venv), which has
    the engine's dependencies.
    """
    wrapper = directory / "ajs3"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(REPO))}\n"
        "export PYTHONPATH\n"
        f"exec {shlex.quote(sys.executable)} -c "
        "'import sys; sys.argv[0] = \"ajs3\"; from ajs3.cli.main import main; sys.exit(main())'"
        ' "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def engine_problem(program: Path) -> str:
    """Why the engine's `ajs3 service` CLI can not be used yet, or ''."""
    try:
        proc = subprocess.run(
            [str(program), "service", "start", "--help"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run the engine: {exc}"
    if proc.returncode != 0 or "--datadir" not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"the engine has no 'ajs3 service start' yet ({last})"
    return ""


# ---------------------------------------------------------------------------
# Running the agent directly, the way pacemaker-execd does.


@dataclass
class AgentRun:
    action: str
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def exit_reasons(self) -> list[str]:
        prefix = "ocf-exit-reason:"
        return [ln[len(prefix) :] for ln in self.stderr.splitlines() if ln.startswith(prefix)]

    def __str__(self) -> str:
        return (
            f"{self.action} -> rc={self.rc} in {self.seconds:.2f}s\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def run_agent(
    action: str,
    params: Mapping[str, str],
    *,
    interval_ms: int | None = 10000,
    timeout_ms: int | None = 20000,
    check_level: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    agent: Path = AGENT,
    timeout: float = 120,
) -> AgentRun:
    env = dict(PACEMAKER_ENV)
    env["OCF_RESOURCE_INSTANCE"] = "test-" + params.get("lhost", "x")
    env["OCF_RESOURCE_TYPE"] = "ajs3"
    env["OCF_RA_VERSION_MAJOR"] = "1"
    env["OCF_RA_VERSION_MINOR"] = "1"
    for key, value in params.items():
        env[f"OCF_RESKEY_{key}"] = value
    if interval_ms is not None:
        env["OCF_RESKEY_CRM_meta_interval"] = str(interval_ms)
    if timeout_ms is not None:
        env["OCF_RESKEY_CRM_meta_timeout"] = str(timeout_ms)
    if check_level is not None:
        env["OCF_CHECK_LEVEL"] = str(check_level)
    env.update(extra_env or {})
    started = time.monotonic()
    proc = subprocess.run(
        [str(agent), action], env=env, capture_output=True, text=True, timeout=timeout
    )
    return AgentRun(action, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


# ---------------------------------------------------------------------------
# The agent visible at /usr/lib/ocf/resource.d/ajs3/ajs3 inside a mount namespace.


def agent_overlay_script(workdir: Path, agent: Path = AGENT) -> str:
    """Shell lines (to run inside a private mount namespace) that make
    /usr/lib/ocf/resource.d show every installed provider plus this tree's agent.

    Each provider directory is bind-mounted at its own name inside the new
    resource.d, so agents that source files by relative symlinks
    (heartbeat/.ocf-shellfuncs -> ../../lib/heartbeat/...) still find them.
    """
    new = workdir / "ocf-resource.d"
    new.mkdir(exist_ok=True)
    lines = []
    for provider in sorted(RESOURCE_D.iterdir()):
        if provider.name == "ajs3" or not provider.is_dir():
            continue
        (new / provider.name).mkdir(exist_ok=True)
        source, target = shlex.quote(str(provider)), shlex.quote(str(new / provider.name))
        lines.append(f"mount --bind {source} {target}")
    (new / "ajs3").mkdir(exist_ok=True)
    link = new / "ajs3" / "ajs3"
    if not link.is_symlink():
        link.symlink_to(agent)
    lines.append(f"mount --rbind {shlex.quote(str(new))} {shlex.quote(str(RESOURCE_D))}")
    return "\n".join(lines) + "\n"


def run_with_agent_installed(
    cmd: list[str], workdir: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run cmd in a throw-away mount namespace where ocf:ajs3:ajs3 is this tree's agent."""
    script = (
        "set -e\n"
        + agent_overlay_script(workdir)
        + "exec " + " ".join(shlex.quote(c) for c in cmd) + "\n"
    )  # fmt: skip
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
        capture_output=True, text=True, timeout=timeout, env=PACEMAKER_ENV,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# A real single-node Pacemaker.

COROSYNC_CONF = """\
totem {{
    version: 2
    cluster_name: {cluster}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}}

nodelist {{
    node {{
        ring0_addr: 127.0.0.1
        name: {node}
        nodeid: 1
    }}
}}

quorum {{
    provider: corosync_votequorum
}}

logging {{
    to_logfile: yes
    logfile: /var/log/pacemaker/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
"""

# PID 1 of the node's pid namespace. It must reap every orphan: a daemon that
# daemonizes is re-parented to it, and an unreaped zombie still "exists" for
# kill(pid, 0), so a crashed ajs3 daemon would look alive to the engine.
INIT_PY = r"""
import os, signal, subprocess, sys, time
setup, node = sys.argv[1], sys.argv[2]
subprocess.run(["/bin/sh", "-e", setup], check=True)
subprocess.run(["hostname", node], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["corosync"], check=True)
pcmk = subprocess.Popen(["pacemakerd", "-f"], stdin=subprocess.DEVNULL,
                        stdout=open("/var/log/pacemaker/pacemakerd.out", "ab"),
                        stderr=subprocess.STDOUT)
stopping = []
def on_term(signum, frame):
    if not stopping:
        stopping.append(time.monotonic())
        pcmk.send_signal(signal.SIGTERM)
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
while True:
    try:
        pid, _ = os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.2)
        pid = None
    except InterruptedError:
        continue
    if pid == pcmk.pid or pcmk.poll() is not None:
        # Pacemaker is down (it stopped its resources first): stop corosync and
        # leave; the kernel kills whatever is left in this pid namespace.
        subprocess.run(["corosync-cfgtool", "-H", "--force"], timeout=20, check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.1)
        sys.exit(0)
"""


@dataclass
class PacemakerNode:
    """corosync + pacemakerd in private namespaces, controlled by the init's pid."""

    workdir: Path
    node: str = "ajs3-node1"
    init_pid: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- life cycle -------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        w = self.workdir
        uid = pwd.getpwnam("hacluster").pw_uid
        gid = grp.getgrnam("haclient").gr_gid
        dirs = {
            "etc-corosync": "/etc/corosync",
            "lib-pacemaker": "/var/lib/pacemaker",
            "lib-corosync": "/var/lib/corosync",
            "log-pacemaker": "/var/log/pacemaker",
            "run": "/run",
        }
        for name in dirs:
            (w / name).mkdir(parents=True, exist_ok=True)
        for sub in ("cib", "pengine", "blackbox", "cores"):
            d = w / "lib-pacemaker" / sub
            d.mkdir(exist_ok=True)
            os.chown(d, uid, gid)
            d.chmod(0o750)
        os.chown(w / "log-pacemaker", uid, gid)
        (w / "log-pacemaker").chmod(0o770)
        (w / "etc-corosync" / "corosync.conf").write_text(
            COROSYNC_CONF.format(cluster="ajs3agent", node=self.node)
        )
        self._seed_cib(w / "lib-pacemaker" / "cib" / "cib.xml", uid, gid)
        setup = w / "setup.sh"
        lines = ["mount --make-rprivate /"]
        lines += [f"mount --bind {shlex.quote(str(w / s))} {d}" for s, d in dirs.items()]
        lines += ["mount -t tmpfs -o mode=1777 tmpfs /dev/shm"]
        setup.write_text("\n".join(lines) + "\n" + agent_overlay_script(w))
        init = w / "init.py"
        init.write_text(INIT_PY)
        log = open(w / "init.log", "ab")  # noqa: SIM115 - closed with the process
        self._proc = subprocess.Popen(
            [
                "unshare", "--mount", "--pid", "--net", "--uts", "--ipc",
                "--fork", "--mount-proc", "--kill-child",
                "/usr/bin/python3", str(init), str(setup), self.node,
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=PACEMAKER_ENV, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.init_pid = self._find_init()
        self.wait_for(self._has_dc, timeout, "a DC elected")

    @staticmethod
    def _seed_cib(path: Path, uid: int, gid: int) -> None:
        """The node's first CIB, written offline: no fencing (one node, nothing
        to fence with) and a short dc-deadtime, so that the lone node elects
        itself in seconds instead of waiting 20 s for a DC that does not exist."""
        env = {**PACEMAKER_ENV, "CIB_file": str(path)}
        with path.open("w") as out:
            subprocess.run(["cibadmin", "--empty"], stdout=out, check=True, env=env)
        for name, value in (
            ("stonith-enabled", "false"),
            ("dc-deadtime", "2s"),
            ("cluster-recheck-interval", "10s"),
        ):
            subprocess.run(
                ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                check=True, env=env, capture_output=True,
            )  # fmt: skip
        os.chown(path, uid, gid)
        path.chmod(0o600)

    def _find_init(self) -> int:
        """Host pid of the namespace's pid 1 (the forked child of unshare)."""
        assert self._proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"node failed to start:\n{self.read_log('init.log')}")
            children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
            try:
                pids = children.read_text().split()
            except OSError:
                pids = []
            if pids:
                return int(pids[0])
            time.sleep(0.05)
        raise RuntimeError("unshare did not fork the node's init")

    def stop(self, timeout: float = 60) -> None:
        """Stop Pacemaker cleanly (it stops its resources), then make sure every
        process of the namespace is gone. Only pids we started are signalled."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None and self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            # --kill-child: SIGKILL to unshare takes its child (our pid 1) and
            # with it the whole pid namespace.
            for pid in (self.init_pid, proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=30)

    # -- commands on the node ----------------------------------------------

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-m", "-n", "-p", "-u", "-i", "--", *cmd],
            capture_output=True, text=True, timeout=timeout, env=PACEMAKER_ENV,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def pcs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("pcs", *args, check=check)

    def read_log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- observing ------------------------------------------------------------

    def status_xml(self) -> ET.Element:
        out = self.run("crm_mon", "--one-shot", "--output-as=xml", check=False)
        try:
            return ET.fromstring(out.stdout)
        except ET.ParseError:
            return ET.Element("empty")

    def _has_dc(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"node died:\n{self.read_log('init.log')}")
        dc = self.status_xml().find("./summary/current_dc")
        return dc is not None and dc.get("present") == "true"

    def resource(self, rid: str) -> ET.Element | None:
        for res in self.status_xml().iter("resource"):
            if res.get("id") == rid:
                return res
        return None

    def is_started(self, rid: str) -> bool:
        res = self.resource(rid)
        return (
            res is not None
            and res.get("role") == "Started"
            and res.get("active") == "true"
            and res.get("failed") == "false"
        )

    def is_stopped(self, rid: str) -> bool:
        res = self.resource(rid)
        return res is not None and res.get("role") == "Stopped" and res.get("active") == "false"

    def failures(self, rid: str) -> list[dict[str, str]]:
        found = []
        for failure in self.status_xml().iter("failure"):
            if failure.get("op_key", "").startswith(rid + "_"):
                found.append(dict(failure.attrib))
        return found

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.5
    ) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate():
                return time.monotonic() - started
            time.sleep(poll)
        tail = "\n".join(self.read_log("log-pacemaker/pacemaker.log").splitlines()[-60:])
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n"
            f"{self.run('crm_mon', '-1', '-rf', check=False).stdout}\n{tail}"
        )


@contextmanager
def pacemaker_node(node: str = "ajs3-node1") -> Iterator[PacemakerNode]:
    workdir = short_tempdir("ajs3pm-")
    pm = PacemakerNode(workdir, node)
    try:
        pm.start()
        yield pm
    finally:
        try:
            pm.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()
