"""Reading the supervisor servers' record logs (ADR 0039): whole lines only, and a piece
of a line that a full disk cut short never hides the whole line written after it."""

from __future__ import annotations

from pathlib import Path

from ajs3.engine import recordlog

HEAD = b"ajs3-records 1 n1/boot/pid:[1]\n"
START = (
    b'p {"supervisor_pid": 10, "supervisor_start": 5, "job_pid": 11, "job_start": 6,'
    b' "pgid": 11, "host": "n1/boot/pid:[1]", "started_at": 1.5, "run_id": "ra"}\n'
)
END = (
    b'e {"supervisor_pid": 10, "supervisor_start": 5, "job_pid": 11, "job_start": 6,'
    b' "pgid": 11, "ended_at": 2.5, "run_id": "ra", "exit_code": 3, "signal": null}\n'
)
FAILED = (
    b'e {"supervisor_pid": 10, "supervisor_start": 5, "ended_at": 2.5, "run_id": "rb",'
    b' "failed_to_start": "could not exec: e {\\"x\\" p {", "exit_code": null, "signal": null}\n'
)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "1-2-0.records"
    path.write_bytes(data)
    return tmp_path


def test_whole_lines_are_read_and_a_last_line_without_newline_is_not(tmp_path: Path) -> None:
    where = write(tmp_path, HEAD + START + FAILED + END[:-1])
    found = recordlog.gather(where)
    assert found.host == "" and set(found.started) == {"ra"}
    assert set(found.ended) == {"rb"}  # ra's end is still being written
    assert found.ended["rb"]["failed_to_start"] == 'could not exec: e {"x" p {'
    index = recordlog.Index(where)
    assert index.ended("ra") is None and index.ended("rb") == found.ended["rb"]
    assert recordlog.unended(where) == [found.started["ra"]]


def test_a_piece_cut_short_by_a_full_disk_does_not_hide_the_next_line(tmp_path: Path) -> None:
    for cut in (3, 40, len(END) - 2):
        where = write(tmp_path, HEAD + START + END[:cut] + END + FAILED)
        found = recordlog.gather(where)
        assert found.ended["ra"]["exit_code"] == 3, cut
        assert found.ended["rb"]["exit_code"] is None, cut
        index = recordlog.Index(where)
        assert index.ended("ra") == found.ended["ra"], cut
        assert index.started("ra") == found.started["ra"], cut
        assert recordlog.unended(where) == [], cut


def test_the_index_reads_what_a_log_gains(tmp_path: Path) -> None:
    where = write(tmp_path, HEAD + START)
    index = recordlog.Index(where)
    assert index.started("ra") is not None and index.ended("ra") is None
    with (where / "1-2-0.records").open("ab") as log:
        log.write(END[:20])
    assert index.ended("ra") is None  # a line being written
    with (where / "1-2-0.records").open("ab") as log:
        log.write(END[20:])
    assert (index.ended("ra") or {}).get("exit_code") == 3
