"""The `ajs3` command in-process: one time parser, output files, one way to the daemon."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import ajs3.cli
from ajs3.cli import exits
from ajs3.cli.main import main

DEFS = Path(__file__).resolve().parent / "good_definitions"


def test_one_time_parser_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rundir = str(tmp_path / "run")
    cases = [
        (["entry", "/a/b", "--at", "tomorrow", "--rundir", rundir], "--at", "tomorrow"),
        (
            ["plan", "--from", "soon", "--to", "2027-01-02", "--definitions", str(DEFS)],
            "--from",
            "soon",
        ),
        (
            ["plan", "--from", "2027-01-01", "--to", "later", "--definitions", str(DEFS)],
            "--to",
            "later",
        ),
    ]
    for argv, option, text in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ajs3: AJS3-E406: cannot read {option} {text!r} "), err
        assert "2027-01-01T02:00+09:00" in err


def test_plan_takes_dates_times_and_offsets(capsys: pytest.CaptureFixture[str]) -> None:
    for start, end in (
        ("2027-01-01", "2027-01-03"),
        ("2027-01-01T00:00", "2027-01-03T00:00"),
        ("2027-01-01T00:00+09:00", "2027-01-03T00:00+09:00"),
    ):
        assert main(["plan", "--from", start, "--to", end, "--definitions", str(DEFS)]) == 0
        assert capsys.readouterr().err == ""


def test_an_output_file_that_cannot_be_written_is_a_coded_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.jp1"
    assert main(["export", "--jp1", str(target), "--definitions", str(DEFS)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ajs3: AJS3-E406: cannot write {target}: "), err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert (
        main(
            [
                "import",
                "--jp1",
                str(Path(__file__).parent / "jp1" / "sales.jp1"),
                "--out",
                str(blocker / "sub"),
                "--allow-unmapped",
            ]
        )
        == 1
    )
    assert capsys.readouterr().err.startswith("ajs3: AJS3-E406: cannot write ")


def test_every_control_request_goes_through_transport() -> None:
    """Only ajs3/cli/transport.py may reach the control socket, so that the protocol can
    change in one place."""
    package = Path(ajs3.cli.__file__).parent
    pattern = re.compile(
        r"import .*\b(control|client|socket)\b|"
        r"ajs3\.service\.(control|client)\b|\.socket\b"
    )
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(package.glob("*.py"))
        if path.name != "transport.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line.split("#")[0])
    ]
    assert not offenders, offenders


def test_a_permission_error_nobody_expected_is_still_a_coded_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise PermissionError(13, "Permission denied", "/srv/ajs3/lh1/somewhere")

    assert exits.run(handler, argparse.Namespace()) == exits.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("ajs3: AJS3-E309: /srv/ajs3/lh1/somewhere is not open to this user")
