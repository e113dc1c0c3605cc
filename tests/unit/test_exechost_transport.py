"""Where the daemon keeps its ssh control sockets, and that a clean stop leaves no
directory behind in the temporary directory."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from ajs3.errors import AjsError
from ajs3.exechost import transport


def test_a_short_rundir_holds_the_sockets_itself(tmp_path: Path) -> None:
    rundir = Path(tempfile.mkdtemp(dir="/tmp", prefix="x"))
    try:
        assert transport.control_dir(rundir) == rundir / "exechost"
    finally:
        transport.remove_control_dir(rundir / "exechost")
        rundir.rmdir()


def test_a_long_rundir_gets_a_private_directory_that_a_stop_removes(tmp_path: Path) -> None:
    rundir = tmp_path / ("long" * 30)
    control = transport.control_dir(rundir)
    assert control.parent == Path(tempfile.gettempdir())
    assert control.stat().st_mode & 0o777 == 0o700
    assert transport.control_dir(rundir) == control  # the same one for the same rundir
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(control / "0123abcd"))  # a socket a master left
    transport.remove_control_dir(control)
    assert not control.exists()


def test_a_directory_with_anything_but_sockets_stays(tmp_path: Path) -> None:
    control = transport.control_dir(tmp_path / ("long" * 30))
    try:
        (control / "note").write_text("not ours\n")
        transport.remove_control_dir(control)
        assert (control / "note").read_text() == "not ours\n"
    finally:
        (control / "note").unlink()
        control.rmdir()


def test_a_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    control = transport.control_dir(tmp_path / ("long" * 30))
    try:
        control.chmod(0o755)
        with pytest.raises(AjsError, match="not the daemon user's alone"):
            transport.control_dir(tmp_path / ("long" * 30))
    finally:
        control.rmdir()
