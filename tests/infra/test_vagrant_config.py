"""The Vagrant lab's configuration, checked without booting anything.

`vagrant validate` parses the Vagrantfile with every provisioner and setting
(VMs can not boot on the CI machines: no hardware virtualisation), and every
provisioning script passes shellcheck. Validate runs on a copy of vagrant/ with
its own VAGRANT_HOME, so it writes nothing into the tree or ~/.vagrant.d, and it
never asks the network for anything (no box is needed to validate, and the
version checkpoint is switched off).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VAGRANT_DIR = REPO / "vagrant"
SCRIPTS = sorted((VAGRANT_DIR / "provision").glob("*.sh"))
# The VM lab's own tools: host-setup.sh, lab.sh, box/build.sh, box/customize.sh.
LAB_SCRIPTS = sorted(VAGRANT_DIR.glob("*.sh")) + sorted((VAGRANT_DIR / "box").glob("*.sh"))


def _validate(
    tmp_path: Path, ignore_provider: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed (install.sh --dev installs it)")
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work, ignore=shutil.ignore_patterns(".vagrant"))
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        # No provider is usable here; -p skips the provider-specific checks.
        "VAGRANT_DEFAULT_PROVIDER": "virtualbox",
        **env,
    }
    return subprocess.run(
        ["vagrant", "validate"] + (["--ignore-provider"] if ignore_provider else []),
        cwd=work,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_vagrant_validate(tmp_path: Path) -> None:
    proc = _validate(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
    # One storage VM, three nodes and one execution host by default.
    assert re.findall(r"==> (\w+):", proc.stdout) == ["storage", "node1", "node2", "node3", "xh1"]
    # Validating is not provisioning: no secret or key made, nothing left in the tree.
    assert not (tmp_path / "vagrant" / ".vagrant" / "ajs3-cluster-secret").exists()
    assert not (tmp_path / "vagrant" / ".vagrant" / "ajs3-keys").exists()
    assert not (VAGRANT_DIR / ".vagrant").exists()


def test_vagrant_node_count_is_a_setting(tmp_path: Path) -> None:
    proc = _validate(tmp_path, AJS3_NODES="2", AJS3_LHOSTS="3", AJS3_EXECHOSTS="2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.findall(r"==> (\w+):", proc.stdout) == ["storage", "node1", "node2", "xh1", "xh2"]


def test_vagrant_lab_without_execution_hosts(tmp_path: Path) -> None:
    proc = _validate(tmp_path, AJS3_EXECHOSTS="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.findall(r"==> (\w+):", proc.stdout) == ["storage", "node1", "node2", "node3"]


def test_vagrant_execution_host_count_is_checked(tmp_path: Path) -> None:
    proc = _validate(tmp_path, AJS3_EXECHOSTS="10")
    assert proc.returncode != 0
    assert "AJS3_EXECHOSTS must be 0..9" in proc.stdout + proc.stderr


def _has_vagrant_libvirt(tmp_path: Path) -> bool:
    if not shutil.which("vagrant"):
        return False
    proc = subprocess.run(
        ["vagrant", "plugin", "list"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    return "vagrant-libvirt" in proc.stdout


@pytest.mark.parametrize("driver", ["qemu", "kvm"])
def test_vagrant_validate_libvirt(tmp_path: Path, driver: str) -> None:
    """The libvirt provider's own checks (vagrant/host-setup.sh installs it): the
    emulated default and KVM, with the console log vagrant/lab.sh asks for."""
    if not _has_vagrant_libvirt(tmp_path):
        pytest.skip("vagrant-libvirt is not installed (vagrant/host-setup.sh installs it)")
    proc = _validate(
        tmp_path,
        ignore_provider=False,
        VAGRANT_DEFAULT_PROVIDER="libvirt",
        AJS3_LIBVIRT_DRIVER=driver,
        AJS3_VM_CONSOLE_DIR=str(tmp_path / "consoles"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_vagrant_libvirt_driver_is_checked(tmp_path: Path) -> None:
    proc = _validate(tmp_path, AJS3_LIBVIRT_DRIVER="xen")
    assert proc.returncode != 0
    assert "AJS3_LIBVIRT_DRIVER must be qemu or kvm" in proc.stdout + proc.stderr


def test_vagrant_validate_fails_on_a_missing_script(tmp_path: Path) -> None:
    """A test that could not fail would be worthless: a renamed script must break it."""
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed")
    broken = tmp_path / "b"
    broken.mkdir()
    shutil.copytree(VAGRANT_DIR, broken / "vagrant", ignore=shutil.ignore_patterns(".vagrant"))
    (broken / "vagrant" / "provision" / "sbd.sh").unlink()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(broken),
        "VAGRANT_HOME": str(broken / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_DEFAULT_PROVIDER": "virtualbox",
    }
    bad = subprocess.run(
        ["vagrant", "validate", "-p"],
        cwd=broken / "vagrant",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    assert "sbd.sh does not exist" in bad.stdout + bad.stderr


def test_every_script_the_vagrantfile_runs_exists() -> None:
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    used = set(re.findall(r'script\("([\w.-]+\.sh)"', text))
    assert used >= {
        "install.sh",
        "iscsi-target.sh",
        "iscsi-initiator.sh",
        "sbd.sh",
        "vm-cluster.sh",
        "vm-node.sh",
        "exechost.sh",
    }
    assert used <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize(
    "script", SCRIPTS + LAB_SCRIPTS, ids=[p.name for p in SCRIPTS + LAB_SCRIPTS]
)
def test_shellcheck(script: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (install.sh --dev installs it)")
    proc = subprocess.run(
        ["shellcheck", "--external-sources", script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
