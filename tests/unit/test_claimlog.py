"""The claim logs of the supervisor servers (ADR 0033): what a reader counts, and which
logs are removed. Real files and real locks."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ajs3.engine import claimlog

HERE = "n1/boot-a/pid:[1]"
THERE = "n2/boot-b/pid:[1]"


def log(where: Path, name: str, host: str, body: bytes, size: int = 4096) -> Path:
    """A log as a server makes it: its header, the run ids written, then zeros."""
    data = b"ajs3-claims 1 " + host.encode() + b"\n" + body
    path = where / name
    path.write_bytes(data + bytes(size - len(data)))
    return path


def test_only_whole_lines_count_and_zeros_end_the_log() -> None:
    data = b"ajs3-claims 1 " + THERE.encode() + b"\nr1\nr2\nr3-cut" + bytes(64)
    assert claimlog.parse(data) == (THERE, ["r1", "r2"])
    assert claimlog.parse(b"ajs3-claims 1 x\n" + bytes(8)) == ("x", [])


def test_what_is_not_a_log_is_none() -> None:
    for data in (b"", bytes(100), b"ajs3-claims 1 cut short", b"something else\nr1\n"):
        assert claimlog.parse(data) is None


def test_only_the_logs_of_other_nodes_and_boots_are_read(tmp_path: Path) -> None:
    log(tmp_path, "1-10-0.log", HERE, b"mine\n")
    log(tmp_path, "2-20-0.log", THERE, b"a\nb\n")
    log(tmp_path, "2-20-1.log", THERE, b"c\n")
    (tmp_path / "notes.txt").write_text("a\n")
    (tmp_path / "3-30-0.log").write_bytes(b"")  # made by a server that died first
    assert claimlog.foreign_claims(tmp_path, HERE) == dict.fromkeys(["a", "b", "c"], THERE)
    assert claimlog.foreign_claims(tmp_path / "none", HERE) == {}


def test_a_log_goes_once_no_server_writes_it_and_none_of_its_runs_runs(tmp_path: Path) -> None:
    done = log(tmp_path, "1-10-0.log", HERE, b"r1\nr2\n")
    running = log(tmp_path, "1-10-1.log", HERE, b"r3\nr4\n")
    written = log(tmp_path, "1-10-2.log", HERE, b"r5\n")
    unused = tmp_path / "1-10-3.log"
    unused.write_bytes(b"ajs3-cl")  # never whole, so never used
    other = tmp_path / "keep.txt"
    other.write_text("r9\n")
    fd = os.open(written, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what its live server holds
    try:
        removed = claimlog.cut(tmp_path, {"r4", "r7"})
        assert sorted(removed) == [done, unused]
        assert running.exists() and written.exists() and other.exists()
    finally:
        os.close(fd)
    assert claimlog.cut(tmp_path, {"r4"}) == [written]
    assert claimlog.cut(tmp_path, set()) == [running]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
