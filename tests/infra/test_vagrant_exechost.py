"""vagrant/provision/exechost.sh serve, run for real without a VM.

The Vagrant lab's execution host gets its host key and the logical hosts' forced
commands from this script (docs/runbooks/add-execution-host.md, steps 2-3). Here it
runs as root in a mount namespace of its own, over copies of /etc/ssh and root's home
and a /run of its own, so it edits nothing of this machine; Debian's sshd then checks
the configuration it leaves (`sshd -t`), and a second run changes nothing.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "vagrant" / "provision" / "exechost.sh"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="exechost.sh runs as root"),
    pytest.mark.skipif(
        not (shutil.which("unshare") and Path("/usr/sbin/sshd").exists()),
        reason="needs unshare and openssh-server (install.sh installs them)",
    ),
    pytest.mark.skipif(
        not Path("/usr/local/bin/ajs3").exists(), reason="ajs3 is not installed (install.sh)"
    ),
]


def keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


def run_serve(tmp: Path, host_key: Path, *pairs: str) -> subprocess.CompletedProcess[str]:
    args = " ".join(f"--lhost-key '{p}'" for p in pairs)
    sandbox = f"""
set -euo pipefail
mount --make-rprivate /
mount --bind {tmp}/etc-ssh /etc/ssh
mount --bind {tmp}/root /root
mount -t tmpfs sandbox-run /run
mkdir -p /run/sshd
bash {SCRIPT} serve {args}
"""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "AJS3_XH_HOST_KEY": base64.b64encode(host_key.read_bytes()).decode(),
    }
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", sandbox],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    shutil.copytree("/etc/ssh", tmp_path / "etc-ssh", symlinks=True)
    (tmp_path / "root").mkdir(mode=0o700)
    return tmp_path


def test_serve_installs_the_host_key_and_one_forced_command_per_logical_host(
    sandbox: Path,
) -> None:
    keygen(sandbox / "xh1-host", "ajs3 xh1-host")
    keygen(sandbox / "lh1", "ajs3 lh1")
    keygen(sandbox / "lh2", "ajs3 lh2")
    pub1 = (sandbox / "lh1.pub").read_text().strip()
    pub2 = (sandbox / "lh2.pub").read_text().strip()

    for _ in range(2):  # a second provisioning run leaves the same files
        proc = run_serve(sandbox, sandbox / "xh1-host", f"lh1 {pub1}", f"lh2 {pub2}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "serves 2 logical host(s)" in proc.stdout

    etc = sandbox / "etc-ssh"
    assert (etc / "ssh_host_ed25519_key").read_bytes() == (sandbox / "xh1-host").read_bytes()
    assert (etc / "ssh_host_ed25519_key").stat().st_mode & 0o077 == 0
    assert (etc / "ssh_host_ed25519_key.pub").read_text().split()[:2] == (
        sandbox / "xh1-host.pub"
    ).read_text().split()[:2]
    assert (
        "PermitRootLogin forced-commands-only"
        in (etc / "sshd_config.d" / "00-ajs3-exechost.conf").read_text()
    )

    keys = sandbox / "root" / ".ssh" / "authorized_keys"
    assert keys.stat().st_mode & 0o077 == 0
    lines = keys.read_text().splitlines()
    options = "no-port-forwarding,no-pty,no-agent-forwarding,no-X11-forwarding"
    assert lines == [
        f'command="/usr/local/bin/ajs3 exechost serve --lhost-key lh1",{options} {pub1}',
        f'command="/usr/local/bin/ajs3 exechost serve --lhost-key lh2",{options} {pub2}',
    ]
    # sshd itself reads these lines as forced commands
    check = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(keys)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and check.stdout.count("ED25519") == 2, check.stdout


def test_serve_wins_over_a_sites_own_drop_in_and_removes_its_old_file(sandbox: Path) -> None:
    """The VM lab's box says PermitRootLogin no in sshd_config.d/ajs3-box.conf, which
    sorted before (and so won over) the file of earlier versions: root's forced
    commands were refused on the VMs. Now sshd's effective setting is checked."""
    drop_ins = sandbox / "etc-ssh" / "sshd_config.d"
    drop_ins.mkdir(exist_ok=True)
    (drop_ins / "ajs3-box.conf").write_text("PermitRootLogin no\n")
    (drop_ins / "ajs3-exechost.conf").write_text("PermitRootLogin forced-commands-only\n")
    keygen(sandbox / "xh1-host", "h")
    keygen(sandbox / "lh1", "ajs3 lh1")
    pub = (sandbox / "lh1.pub").read_text().strip()

    proc = run_serve(sandbox, sandbox / "xh1-host", f"lh1 {pub}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (drop_ins / "ajs3-exechost.conf").exists()
    assert sorted(p.name for p in drop_ins.iterdir())[0] == "00-ajs3-exechost.conf"

    # a file that sorts first still wins: said, with what to look for, and a failure
    (drop_ins / "0-site.conf").write_text("PermitRootLogin no\n")
    proc = run_serve(sandbox, sandbox / "xh1-host", f"lh1 {pub}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "PermitRootLogin is 'no', not forced-commands-only" in proc.stderr


def test_serve_keeps_other_lines_and_replaces_a_logical_hosts_old_key(sandbox: Path) -> None:
    keygen(sandbox / "xh1-host", "h")
    keygen(sandbox / "old", "ajs3 lh1")
    keygen(sandbox / "new", "ajs3 lh1")
    keygen(sandbox / "admin", "admin@site")
    admin = (sandbox / "admin.pub").read_text().strip()
    (sandbox / "root" / ".ssh").mkdir(mode=0o700)
    (sandbox / "root" / ".ssh" / "authorized_keys").write_text(admin + "\n")

    old = (sandbox / "old.pub").read_text().strip()
    new = (sandbox / "new.pub").read_text().strip()
    assert run_serve(sandbox, sandbox / "xh1-host", f"lh1 {old}").returncode == 0
    proc = run_serve(sandbox, sandbox / "xh1-host", f"lh1 {new}")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = (sandbox / "root" / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines[0] == admin
    assert len(lines) == 2 and lines[1].endswith(new), lines


@pytest.mark.parametrize(
    ("pair", "env_key", "message"),
    [
        ("lh1 not-a-key", True, "is not a public key"),
        ("../x ssh-ed25519 AAAA", True, "bad logical host name"),
        ("lh1 ssh-ed25519 AAAA", False, "AJS3_XH_HOST_KEY is not an OpenSSH private key"),
    ],
)
def test_serve_refuses_bad_input_and_changes_nothing(
    sandbox: Path, pair: str, env_key: bool, message: str
) -> None:
    host_key = sandbox / "xh1-host"
    if env_key:
        keygen(host_key, "h")
    else:
        host_key.write_text("not a key\n")
    before = (sandbox / "etc-ssh" / "sshd_config").read_text()
    proc = run_serve(sandbox, host_key, pair)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert not (sandbox / "root" / ".ssh" / "authorized_keys").exists()
    assert (sandbox / "etc-ssh" / "sshd_config").read_text() == before
