"""The logical host's side of the wire: OpenSSH with connection sharing.

Each exchange is one ``ssh`` run through a shared master connection (ControlMaster,
ControlPersist; its socket under the logical host's run directory), so a request pays
no handshake once the master is up. The execution host's ``authorized_keys`` forces
``ajs3 exechost serve`` whatever command is asked for (docs/exechosts.md). Every
exchange starts with ``hello`` (version, logical host, epoch). ssh's own failures
become coded errors: a refused key or unknown host key AJS3-E331, anything else that
keeps the host out of reach AJS3-E330.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.exechost import protocol as pr
from ajs3.exechost_config import ExecHost

#: Seconds for the TCP connection and the ssh handshake.
CONNECT_TIMEOUT = 5
#: Seconds one exchange may take in all (a start waits for the claim on the far side).
EXCHANGE_TIMEOUT = 30.0
#: How long an idle master connection is kept.
CONTROL_PERSIST = 300
#: What ssh says when the key or the host key is the problem.
AUTH_MARKS = (
    "Permission denied",
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "No such file or directory",  # the identity file
    "Too many authentication failures",
)
#: A unix socket path is at most 107 bytes; ssh adds a temporary suffix.
SOCKET_ROOM = 80


class Unreachable(AjsError):
    """The exchange did not complete; ``answers`` holds those that came back."""

    def __init__(self, message: str, code: Code, answers: list[dict[str, Any]]) -> None:
        super().__init__(
            message,
            code=code,
            hint="check the execution host, its sshd, the key in its authorized_keys and "
            "known_hosts (docs/runbooks/add-execution-host.md)",
        )
        self.answers = answers


def control_dir(rundir: Path | None) -> Path:
    """Where the master sockets live: ``<rundir>/exechost``, or a short private
    directory when that path is too long for a socket."""
    if rundir is not None and len(str(rundir / "exechost")) + 42 <= SOCKET_ROOM:
        path = rundir / "exechost"
    else:
        tag = hashlib.blake2b(str(rundir).encode(), digest_size=6).hexdigest()
        path = Path(tempfile.gettempdir()) / f"ajs3xh-{os.geteuid()}-{tag}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise AjsError(
            f"{path} is not the daemon user's alone: no ssh control socket is put there",
            code=Code.UNSAFE_PATH,
            hint=f"remove {path} and start again",
        )
    return path


def ssh_argv(host: ExecHost, control: Path) -> list[str]:
    argv = [
        "ssh",
        "-T",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control}/%C",
        "-o", f"ControlPersist={CONTROL_PERSIST}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "ForwardAgent=no",
        "-o", "ForwardX11=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "LogLevel=ERROR",
        "-p", str(host.port),
        "-l", host.user,
    ]  # fmt: skip
    if host.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={host.known_hosts}"]
    if host.identity_file:
        argv += ["-i", host.identity_file, "-o", "IdentitiesOnly=yes"]
    return [*argv, "--", host.destination, "ajs3", "exechost", "serve"]


def remove_control_dir(control: Path) -> None:
    """At a clean stop, after every master was asked to exit: the sockets they left
    and the directory go, so stops leave nothing behind in the temporary directory.
    Anything else in it stays (and so does the directory)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(control):
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                os.unlink(entry.path)
        control.rmdir()


def close_master(host: ExecHost, control: Path) -> None:
    """Ask the shared master connection to a host to exit (at a clean stop)."""
    argv = ssh_argv(host, control)
    argv[argv.index("--") :] = ["-O", "exit", "--", host.destination]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, capture_output=True, timeout=10, check=False)


def exchange(
    host: ExecHost,
    control: Path,
    lhost: str,
    epoch: int,
    requests: list[dict[str, Any]],
    timeout: float = EXCHANGE_TIMEOUT,
) -> list[dict[str, Any]]:
    """Say hello, send ``requests``, return their answers (one each, in order).

    A refusal of hello is raised with its code (AJS3-E332 version, AJS3-E333 epoch);
    an exchange cut short is :class:`Unreachable` with the answers that came."""
    hello = {"op": "hello", "version": pr.VERSION, "lhost": lhost, "epoch": epoch}
    payload = b"".join(pr.encode(r) for r in [hello, *requests])
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    try:
        done = subprocess.run(
            ssh_argv(host, control),
            input=payload,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=env,
            start_new_session=True,
        )
        out, err, rc = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, rc = exc.stdout or b"", b"timed out", -1
    except OSError as exc:
        raise Unreachable(f"cannot run ssh: {exc}", Code.EXEC_HOST_UNREACHABLE, []) from exc
    answers: list[dict[str, Any]] = []
    for line in out.splitlines():
        answers.append(pr.decode(line))
    if answers:
        pr.raise_refusal(answers[0], host.name)
        answers = answers[1:]
    if len(answers) < len(requests):
        said = err.decode(errors="replace").strip().splitlines()
        last = said[-1] if said else f"ssh exited {rc}"
        code = (
            Code.EXEC_HOST_AUTH
            if any(m in line for line in said for m in AUTH_MARKS)
            else Code.EXEC_HOST_UNREACHABLE
        )
        what = (
            "refused the key or its host key is not known"
            if code is Code.EXEC_HOST_AUTH
            else "cannot be reached"
        )
        raise Unreachable(
            f"execution host {host.name} ({host.user}@{host.destination}:{host.port}) "
            f"{what}: {last}",
            code,
            answers,
        )
    return answers
