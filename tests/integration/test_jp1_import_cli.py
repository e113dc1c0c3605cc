"""`ajs3 import --jp1` end to end, as a migration script runs it (issue 14).

Every file of the invalid corpus (tests/data/jp1/invalid, and the fuzzing tier's
hostile inputs in tests/fuzz/corpus/jp1) says in its first line the code and the JP1
lines it must give (``/* expect AJS3-E111 6,7: ... */``). Run through the command
line, with and without ``--check``, each must exit 1, name those lines of the JP1
file (no other line of it, never a generated YAML file), print no traceback and
write nothing. Every file of the unmapped corpus (tests/data/jp1/unmapped) is valid
JP1 with parts ajs3 can not express (``/* unmapped 6,8: ... */``): exit 3 with those
lines listed and nothing written; ``--allow-unmapped`` writes and exits 0.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lhost import cli_env

from ajs3.cli.main import main

DATA = Path(__file__).parent.parent / "data" / "jp1"
INVALID = sorted((DATA / "invalid").glob("*.jp1"))
HOSTILE = sorted((Path(__file__).parent.parent / "fuzz" / "corpus" / "jp1").glob("*.jp1"))
UNMAPPED = sorted((DATA / "unmapped").glob("*.jp1"))
#: code and line in the CLI's report: "FILE:LINE: AJS3-E111: ..."
REPORTED = re.compile(r"^\s*(\S+?):(\d+): (AJS3-E\d+):", re.M)


def _header(path: Path, word: str) -> tuple[str, set[int]]:
    match = re.match(rf"/\* {word} (?:(AJS3-E\d+) )?([\d,]+):", path.read_text(encoding="utf-8"))
    assert match is not None, f"{path.name}: the first line says what it must give"
    return match.group(1) or "AJS3-E112", {int(n) for n in match.group(2).split(",")}


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", "import", *args],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _reported(text: str) -> set[tuple[str, int, str]]:
    return {(Path(f).name, int(n), code) for f, n, code in REPORTED.findall(text)}


@pytest.mark.parametrize("path", INVALID + HOSTILE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_invalid_jp1_fails_at_its_lines_and_writes_nothing(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _header(path, "expect")
    out = tmp_path / "defs"
    # without --check, through a real process: what a migration script sees
    done = _run(tmp_path, "--jp1", str(path), "--out", str(out), "--tz", "UTC")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    got = _reported(done.stderr)
    at_file = {(n, c) for f, n, c in got if f == path.name}
    if path in INVALID:  # the files written for this test: exactly these lines
        assert at_file == {(n, code) for n in lines}, done.stderr
        assert {f for f, _, _ in got} == {path.name}, "a problem not at the JP1 file"
    else:  # the fuzzing tier's inputs: at least these
        assert {(n, code) for n in lines} <= at_file, done.stderr
    assert not out.exists()
    # with --check (and --allow-unmapped, which must not let invalid input pass)
    for extra in (["--check"], ["--check", "--allow-unmapped"], ["--allow-unmapped"]):
        status = main(["import", "--jp1", str(path), "--out", str(out), "--tz", "UTC", *extra])
        err = capsys.readouterr().err
        assert status == 1, (extra, err)
        assert {(n, code) for n in lines} <= {
            (n, c) for f, n, c in _reported(err) if f == path.name
        }
        assert not out.exists()


@pytest.mark.parametrize("path", UNMAPPED, ids=lambda p: p.stem)
def test_valid_jp1_with_unmapped_parts_exits_3_listing_their_lines(
    path: Path, tmp_path: Path
) -> None:
    code, lines = _header(path, "unmapped")
    out = tmp_path / "defs"
    for extra in (["--check"], []):
        done = _run(tmp_path, "--jp1", str(path), "--out", str(out), "--tz", "UTC", *extra)
        assert done.returncode == 3, done.stdout + done.stderr
        listed = {(n, c) for f, n, c in _reported(done.stdout) if f == path.name}
        assert listed == {(n, code) for n in lines}, done.stdout
        assert not out.exists()
    assert _run(tmp_path, "--jp1", str(path), "--check", "--allow-unmapped").returncode == 0
    assert not out.exists()
    done = _run(tmp_path, "--jp1", str(path), "--out", str(out), "--allow-unmapped")
    assert done.returncode == 0, done.stderr
    assert sorted(p.suffix for p in out.iterdir()) == [".yaml"]
    strict = _run(tmp_path, "--jp1", str(path), "--check", "--strict")
    assert strict.returncode == 1


def test_fully_mapped_jp1_exits_0(tmp_path: Path) -> None:
    (tmp_path / "ok.jp1").write_text(
        "unit=G,,,;{ty=g;cl=su;unit=N,,,;{ty=n;sd=1,2027/01/04;st=1,25:30;cy=1,(1,d);"
        "unit=J,,,;{ty=j;sc=/bin/true;}}}\n"
    )
    assert _run(tmp_path, "--jp1", "ok.jp1", "--check").returncode == 0
    done = _run(tmp_path, "--jp1", "ok.jp1", "--out", "defs")
    assert done.returncode == 0 and (tmp_path / "defs" / "G.yaml").exists()
