"""Progress bars of long commands, as a person sees them: `ajs3 import --jp1` of a large
file and `ajs3 purge` draw bars on stderr when it is a terminal (a real pseudo
terminal here), and nothing at all with --json or when stderr is a pipe, where the
output is what it always was."""

from __future__ import annotations

import errno
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

from lhost import LogicalHost, cli_env


def big_jp1(path: Path, nets: int) -> Path:
    lines = ["unit=BIG,,admin,;", "{", "    ty=g;"]
    for k in range(nets):
        lines += [f"    unit=NET{k},,admin,;", "    {", "        ty=n;"]
        lines.append("        ar=(f=A,t=B,seq);")
        for name in ("A", "B"):
            lines += [f"        unit={name},,admin,;", "        {", "            ty=j;"]
            lines += ['            sc="/bin/true";', "        }"]
        lines.append("    }")
    path.write_text("\n".join([*lines, "}", ""]))
    return path


def on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run ``ajs3 ARGV`` with stderr on a pseudo terminal: (exit, stdout, what the
    terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ajs3.cli.main", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**cli_env(), "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError as exc:  # EIO: the last writer closed the terminal
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=600), out, seen.decode(errors="replace")


def piped(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", *argv],
        capture_output=True,
        text=True,
        env={**cli_env(), "TERM": "xterm"},
        timeout=600,
        check=False,
    )


def test_a_large_jp1_import_draws_its_phases_on_a_terminal_only(tmp_path: Path) -> None:
    source = big_jp1(tmp_path / "big.jp1", 1500)
    argv = ["import", "--jp1", str(source), "--tz", "UTC", "--out", str(tmp_path / "out")]
    code, out, terminal = on_a_terminal(argv)
    assert code == 0, terminal
    for label in ("reading the JP1 file", "mapping units", "validating", "writing files"):
        assert label in terminal, terminal[-2000:]
    assert "4501/4501" in terminal  # every unit mapped
    assert out.startswith(f"{source}: 4501 unit(s), 1500 root jobnet(s)")

    plain = piped(argv)
    assert plain.returncode == 0 and plain.stderr == "" and plain.stdout == out
    code, as_json, terminal = on_a_terminal([*argv, "--json"])
    assert code == 0 and terminal == ""
    assert json.loads(as_json)["units"] == 4501


def test_a_purge_draws_its_bar_on_a_terminal_only(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("pbar")
    host.start()
    host.define(
        """
        jobnets:
          - name: a
            keep: {runs: 1}
            units: [{name: j, command: [/bin/true]}]
          - name: b
            keep: {runs: 1}
            units: [{name: j, command: [/bin/true]}]
        """
    )
    for jobnet in ("/a", "/b", "/a", "/b", "/a"):
        host.wait(host.entry(jobnet))
    code, out, terminal = on_a_terminal(["purge", *host.opts])
    assert code == 0, terminal
    assert "purging jobnets" in terminal and "2/2" in terminal, terminal[-2000:]
    assert out.startswith("removed 3 jobnet runs")
    plain = host.run("purge")
    assert plain.stderr == "" and plain.stdout.startswith("removed 0 jobnet runs")
    code, as_json, terminal = on_a_terminal(["purge", "--json", *host.opts])
    assert code == 0 and terminal == "" and json.loads(as_json)["removed"]["jobnet_runs"] == 0
