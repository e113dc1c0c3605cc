"""Values for runs: names, sizes, the AJS3_VARS_OUT format and ${NAME} replacement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ajs3.engine import runvars
from ajs3.engine.runvars import VariableError
from ajs3.errors import Code

RUN = "r" + "c" * 20


def test_entry_assignments_keep_everything_after_the_first_equals_sign() -> None:
    got = runvars.parse_assignments(["A=1", "B=x=y", "EMPTY=", "A=2"], "here")
    assert got == {"A": "2", "B": "x=y", "EMPTY": ""}


@pytest.mark.parametrize(
    "bad",
    [
        "lower=1",
        "1A=1",
        "A-B=1",
        "=1",
        "PATH=/x",
        "HOME=/",
        "AJS3_RUN_ID=r",
        "LD_PRELOAD=x",
        "NOVALUE",
        "A=" + "x" * 4097,
        "A=two\nlines",
        "A=nul\0",
        "A\n=1",
    ],
)
def test_bad_assignments_are_refused_with_e407(bad: str) -> None:
    with pytest.raises(VariableError) as caught:
        runvars.parse_assignments(["GOOD=1", bad], "given with --var")
    assert caught.value.code is Code.BAD_VARIABLE
    assert "nothing applied" in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(VariableError) as caught:
        runvars.parse_assignments(["PATH=1", "x=2", "OK=3"], "here")
    assert len(caught.value.problems) == 2


def test_count_and_total_size_are_bounded_with_the_runs_known_values() -> None:
    known = {f"K{i}": "v" for i in range(runvars.MAX_COUNT)}
    runvars.check({"K0": "again"}, "here", known)  # replaces one: still within
    with pytest.raises(VariableError, match="more than 100"):
        runvars.check({"NEW": "1"}, "here", known)
    big = {f"B{i}": "x" * 4000 for i in range(17)}
    with pytest.raises(VariableError, match="bytes of values"):
        runvars.check(big, "here")


def test_vars_out_lines_skip_blanks_and_comments_and_name_bad_lines() -> None:
    data = b"# from the job\nA=1\n\nB = 2\r\nC=3\r\n"
    with pytest.raises(VariableError) as caught:
        runvars.parse_out(data, "in f")
    assert [p[:7] for p in caught.value.problems] == ["line 4:"]
    assert runvars.parse_out(b"A=1\n\nC=3\r\n#x\n", "in f") == {"A": "1", "C": "3"}
    with pytest.raises(VariableError, match="not UTF-8"):
        runvars.parse_out(b"A=\xff\n", "in f")


def test_macros_in_arguments() -> None:
    values = {"DAY": "mon", "X": "$HOME"}
    argv = ["/bin/x", "${DAY}", "a${DAY}b${DAY}", "$${DAY}", "${NOPE}", "$DAY", "${X}", "${day}"]
    assert runvars.expand(argv, values) == [
        "/bin/x",
        "mon",
        "amonbmon",
        "${DAY}",
        "${NOPE}",
        "$DAY",
        "$HOME",
        "${day}",
    ]


def test_prepare_out_makes_a_left_over_anew_unless_told_to_keep_it(tmp_path: Path) -> None:
    me = (os.geteuid(), os.getegid())
    path = runvars.prepare_out(tmp_path, RUN, *me)
    path.write_text("OLD=1\n")
    assert runvars.prepare_out(tmp_path, RUN, *me, keep=True).read_text() == "OLD=1\n"
    assert runvars.prepare_out(tmp_path, RUN, *me).read_text() == ""


def test_a_file_brought_home_is_collected_as_a_local_one(tmp_path: Path) -> None:
    """put_out: the AJS3_VARS_OUT file of a job on an execution host, as its end
    brought it; nothing written, no file; a larger one is kept as it came (one byte
    over the limit at most), for the collector to refuse as it does locally."""
    runvars.put_out(tmp_path, RUN, b"A=1\n")
    assert runvars.take_out(tmp_path, RUN) == b"A=1\n"
    assert stat.S_IMODE(runvars.out_path(tmp_path, RUN).stat().st_mode) == 0o600
    runvars.put_out(tmp_path, RUN, b"")
    assert runvars.take_out(tmp_path, RUN) is None
    runvars.put_out(tmp_path, RUN, b"x" * (runvars.MAX_OUT_FILE + 1))
    assert runvars.take_out(tmp_path, RUN) == b"x" * (runvars.MAX_OUT_FILE + 1)


def test_the_vars_directory_is_kept_open_while_it_stays_the_same(tmp_path: Path) -> None:
    """Opened once for the batches of starts; opened again when the path is another
    directory, and refused (None) once it is not the daemon user's alone."""
    kept = runvars.VarsDir(tmp_path)
    fd = kept.get()
    assert fd is not None and kept.get() == fd
    (tmp_path / "vars").rename(tmp_path / "old")
    again = kept.get()  # made anew
    assert again is not None and os.fstat(again).st_ino == (tmp_path / "vars").stat().st_ino
    (tmp_path / "vars").chmod(0o777)
    assert kept.get() is None
    (tmp_path / "vars").chmod(0o711)
    assert kept.get() is not None
    kept.close()
