"""A scratch ext4 volume for the benchmark's logical hosts, like a logical host's own.

In production a logical host's data directory is a volume of its own (the Filesystem
resource mounts it), made with the distribution's `mkfs.ext4` defaults: with a
journal. The root file system of a test machine may be anything (the machines of
issue 7 have an ext4 root *without* a journal, on which every new inode costs a scan
of recently deleted ones). So, when run as root, the benchmark makes a file-backed
ext4 volume with the defaults, on the same disk, and runs the logical hosts there;
fsync reaches the disk through the loop device as it would through a real one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

SIZE = "8G"  # sparse: only what is written takes space


def available() -> str | None:
    """None if a volume can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return None


@contextlib.contextmanager
def scratch_volume(base: Path) -> Iterator[Path]:
    """Mount a fresh ext4 volume on ``base/vol`` and yield that directory; unmount and
    detach it (only the device made here) afterwards."""
    image = base / "volume.img"
    mnt = base / "vol"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", SIZE, str(image)], check=True)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    mounted = False
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
        subprocess.run(["mount", dev, str(mnt)], check=True)
        mounted = True
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False)
        subprocess.run(["losetup", "-d", dev], check=False)
        image.unlink(missing_ok=True)


def describe(path: Path) -> str:
    """The file system under ``path``, as findmnt tells it."""
    out = subprocess.run(
        ["findmnt", "-no", "SOURCE,FSTYPE", "--target", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return " ".join(out) or "?"
