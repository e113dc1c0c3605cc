"""The output of a job on an execution host, followed while it runs
(ajs3/exechost/mirror.py, docs/exechosts.md): the poll's offsets, the bounds of an
answer, fairness between runs, and the final file byte for byte that of the end-only
fetch."""

from __future__ import annotations

import base64
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from ajs3.errors import AjsError, Code
from ajs3.exechost import mirror
from ajs3.exechost import protocol as pr
from ajs3.exechost.link import Exchange, Home, Link, Outcome
from ajs3.exechost.serve import Server, answer_line
from ajs3.exechost_config import ExecHost

KIB = 1024


def rid(n: int) -> str:
    return f"r{n:020x}"


A, B = rid(1), rid(2)


# -- offsets: what a poll may carry ------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "parsed"),
    [
        (None, {}),
        ({}, {}),
        ({A: {}}, {A: {}}),
        ({A: {"stdout": 0, "stderr": 7}}, {A: {"stdout": 0, "stderr": 7}}),
        ({A: {"stdout": 5}, B: {"stderr": 2**40}}, {A: {"stdout": 5}, B: {"stderr": 2**40}}),
    ],
)
def test_well_formed_offsets_are_taken(offsets: Any, parsed: Any) -> None:
    assert mirror.parse_offsets(offsets, [A, B]) == parsed


@pytest.mark.parametrize(
    ("offsets", "words"),
    [
        ([A], "a mapping"),
        ("stdout", "a mapping"),
        ({A: [0, 0]}, "stream: offset"),
        ({A: {"stdout": -1}}, "no byte count"),
        ({A: {"stdout": 1.5}}, "no byte count"),
        ({A: {"stdout": "10"}}, "no byte count"),
        ({A: {"stdout": True}}, "no byte count"),
        ({A: {"stdout": None}}, "no byte count"),
        ({A: {"stdout": 2**60}}, "no byte count"),
        ({A: {"vars": 0}}, "unknown stream"),
        ({A: {"STDOUT": 0}}, "unknown stream"),
        ({"r1": {"stdout": 0}}, "not a run id"),
        ({"../../etc": {"stdout": 0}}, "not a run id"),
        ({rid(3): {"stdout": 0}}, "not among the run_ids"),
    ],
)
def test_malformed_offsets_are_refused_with_a_protocol_code(offsets: Any, words: str) -> None:
    with pytest.raises(AjsError) as err:
        mirror.parse_offsets(offsets, [A, B])
    assert err.value.code is Code.EXEC_HOST_PROTOCOL and words in err.value.message


def test_a_poll_with_malformed_offsets_is_answered_with_a_refusal(tmp_path: Path) -> None:
    server = Server("lh1", tmp_path / "s", allow_root_jobs=True)
    server.handle({"op": "hello", "version": pr.VERSION, "lhost": "lh1", "epoch": 1})
    for offsets in ({A: {"stdout": -1}}, [1], {A: {"err": 0}}, {"x": {}}):
        poll = {"op": "poll", "run_ids": [A], "offsets": offsets}
        answer = answer_line(server, pr.encode(poll))
        assert answer["ok"] is False and answer["code"] == Code.EXEC_HOST_PROTOCOL.value
    # and the session goes on
    assert answer_line(server, pr.encode({"op": "poll", "run_ids": [A]}))["ok"] is True


# -- what one answer carries ------------------------------------------------------


def reader(files: dict[str, dict[str, bytes]]) -> mirror.Reader:
    def read(run_id: str, stream: str, offset: int, limit: int) -> tuple[bytes, int]:
        data = files.get(run_id, {}).get(stream, b"")
        return data[offset : offset + limit], len(data)

    return read


def live_sizes(runs: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """The bytes each run got in an answer, (stdout, stderr), by run id."""
    return {
        r: tuple(len(base64.b64decode(s["live"][x]["data"])) for x in mirror.STREAMS)  # type: ignore[misc]
        for r, s in runs.items()
        if "live" in s
    }


@pytest.mark.parametrize(
    ("outputs", "offsets", "served"),
    [
        # small output: all of it, from the offset on
        ({A: (10, 3)}, {A: {}}, {A: (10, 3)}),
        ({A: (10, 3)}, {A: {"stdout": 4, "stderr": 3}}, {A: (6, 0)}),
        # an offset beyond the file (it was cut there): nothing
        ({A: (10, 3)}, {A: {"stdout": 99}}, {A: (0, 3)}),
        # at most 64 KiB per stream
        ({A: (100 * KIB, 70 * KIB)}, {A: {}}, {A: (64 * KIB, 64 * KIB)}),
        # at most 256 KiB per answer: the third run gets what is left, the fourth none
        (
            {rid(i): (100 * KIB, 100 * KIB) for i in range(1, 5)},
            {rid(i): {} for i in range(1, 5)},
            {rid(1): (64 * KIB, 64 * KIB), rid(2): (64 * KIB, 64 * KIB)},
        ),
        (
            {rid(i): (50 * KIB, 0) for i in range(1, 7)},
            {rid(i): {} for i in range(1, 7)},
            {**{rid(i): (50 * KIB, 0) for i in range(1, 6)}, rid(6): (6 * KIB, 0)},
        ),
        # only the runs the offsets name, in their order
        ({A: (1, 1), B: (2, 2)}, {B: {}}, {B: (2, 2)}),
    ],
)
def test_an_answer_carries_output_within_its_bounds(
    outputs: dict[str, tuple[int, int]],
    offsets: mirror.Offsets,
    served: dict[str, tuple[int, int]],
) -> None:
    files = {r: {"stdout": b"o" * o, "stderr": b"e" * e} for r, (o, e) in outputs.items()}
    runs: dict[str, dict[str, Any]] = {r: {"state": "running"} for r in outputs}
    mirror.serve_live(runs, offsets, reader(files))
    assert live_sizes(runs) == served
    for r, state in runs.items():
        for stream in mirror.STREAMS if "live" in state else ():
            got = state["live"][stream]
            assert got["size"] == len(files[r][stream])
            assert got["offset"] == offsets[r].get(stream, 0)


def test_at_most_1000_runs_are_served_in_one_answer() -> None:
    ids = [rid(i) for i in range(1, 1501)]
    files = {r: {"stdout": b"x"} for r in ids}
    runs: dict[str, dict[str, Any]] = {r: {"state": "running"} for r in ids}
    mirror.serve_live(runs, {r: {} for r in ids}, reader(files))
    assert [r for r in ids if "live" in runs[r]] == ids[: mirror.MAX_RUNS]


@pytest.mark.parametrize("state", ["starting", "ended", "lost", "void", "absent"])
def test_only_running_runs_are_followed(state: str) -> None:
    runs: dict[str, dict[str, Any]] = {A: {"state": state}}
    mirror.serve_live(runs, {A: {}}, reader({A: {"stdout": b"out"}}))
    assert "live" not in runs[A]


# -- fairness ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chatty", "quiet"),
    [(1, 1), (1, 20), (4, 4), (10, 50), (40, 10), (0, 1500), (3, 1200)],
)
def test_chatty_jobs_never_starve_the_others(tmp_path: Path, chatty: int, quiet: int) -> None:
    """Chatty runs (always more output than an answer carries) and quiet ones (a line
    each), the chatty ones named first: the runs served longest ago go first, so every
    run is served once before any is served twice, and all within the polls the
    budgets need (an answer carries 4 chatty runs' 64 KiB, and at most 1000 runs)."""
    ids = [rid(i) for i in range(1, chatty + quiet + 1)]
    noisy = set(ids[:chatty])

    def read(run_id: str, stream: str, offset: int, limit: int) -> tuple[bytes, int]:
        if run_id in noisy and stream == "stdout":  # endless output
            return b"c" * limit, offset + limit + 1
        data = b"quiet\n" if stream == "stdout" else b""
        return data[offset : offset + limit], len(data)

    jobdirs = {r: tmp_path / r for r in ids}
    follower = mirror.Follower()
    times: dict[str, int] = {}
    need = -(-chatty * mirror.STREAM_BUDGET // mirror.ANSWER_BUDGET) + -(-quiet // mirror.MAX_RUNS)
    for _ in range(need + 1):
        offsets = follower.offsets(jobdirs)
        assert len(offsets) <= mirror.MAX_RUNS
        runs: dict[str, dict[str, Any]] = {r: {"state": "running"} for r in ids}
        mirror.serve_live(runs, offsets, read)
        follower.take(runs, jobdirs, dict.fromkeys(ids, 1 << 30))
        served = [r for r in ids if "live" in runs[r]]
        for r in served:
            times[r] = times.get(r, 0) + 1
        if len(times) < len(ids):
            assert all(n == 1 for n in times.values()), "served twice before all once"
    assert set(times) == set(ids), f"never served: {sorted(set(ids) - set(times))[:5]}"
    for r in ids[chatty:]:
        assert (tmp_path / r / "stdout").read_bytes() == b"quiet\n"


# -- the local copy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "offset", "data", "cap", "fresh", "after"),
    [
        (b"", 0, b"abc", 100, False, b"abc"),
        (b"abc", 3, b"def", 100, False, b"abcdef"),
        # bytes the file holds already are not written twice
        (b"abcd", 2, b"cdef", 100, False, b"abcdef"),
        (b"abcdef", 2, b"cd", 100, False, b"abcdef"),
        # a gap (the file shorter than the offset): nothing, the next poll asks again
        (b"ab", 5, b"fgh", 100, False, b"ab"),
        # never past the cap
        (b"abc", 3, b"defgh", 5, False, b"abcde"),
        (b"abcde", 5, b"fgh", 5, False, b"abcde"),
        # a copy not trusted: emptied first
        (b"stale!", 0, b"abc", 100, True, b"abc"),
        (b"stale!", 3, b"def", 100, True, b""),
    ],
)
def test_append_writes_exactly_the_next_bytes(
    tmp_path: Path, held: bytes, offset: int, data: bytes, cap: int, fresh: bool, after: bytes
) -> None:
    path = tmp_path / "stdout"
    path.write_bytes(held)
    assert mirror.append(path, offset, data, cap, fresh=fresh) == len(after)
    assert path.read_bytes() == after


def test_a_copy_another_process_wrote_is_fetched_again_from_its_first_byte(
    tmp_path: Path,
) -> None:
    """After a failover the new owner's follower did not write the copy on the shared
    volume (its last writes may not have reached the disk): it asks from byte 0."""
    jobdir = tmp_path / A
    jobdir.mkdir()
    (jobdir / "stdout").write_bytes(b"GARBAGE, longer than the real output")
    follower = mirror.Follower()
    assert follower.offsets({A: jobdir}) == {A: {"stdout": 0, "stderr": 0}}
    runs: dict[str, dict[str, Any]] = {A: {"state": "running"}}
    mirror.serve_live(runs, {A: {}}, reader({A: {"stdout": b"real\n"}}))
    follower.take(runs, {A: jobdir}, {A: 1000})
    assert (jobdir / "stdout").read_bytes() == b"real\n"
    assert follower.offsets({A: jobdir}) == {A: {"stdout": 5, "stderr": 0}}


# -- end to end through a link and a real server: the final files -------------------


class Direct:
    """The link's sessions, answered by a Server in this process (no ssh)."""

    def __init__(self, server: Server, *, old: bool = False) -> None:
        self.server = server
        self.old = old  # an execution host that ignores offsets (an older ajs3)
        self.polls: list[dict[str, Any]] = []

    def exchange(self, host: Any, control: Any, lhost: Any, epoch: Any, requests: Any) -> Any:
        answers = []
        for req in requests:
            if req["op"] == "poll":
                self.polls.append(req)
                if self.old:
                    req = {k: v for k, v in req.items() if k != "offsets"}
            answers.append(answer_line(self.server, pr.encode(req)))
        return answers

    def close(self) -> None:
        pass


#: A job that writes more than one poll carries to both streams, waits for a flag
#: (while it waits, its output is followed), then writes more and ends.
SCRIPT = """
i=0; while [ $i -lt 3000 ]; do echo "line $i of the first part, some padding"; i=$((i+1)); done
echo "an error line" >&2
while [ ! -e {flag} ]; do sleep 0.02; done
i=0; while [ $i -lt 2000 ]; do echo "line $i of the second part"; i=$((i+1)); done
printf 'no newline at the end' >&2
"""


def run_through_link(
    tmp_path: Path, name: str, *, follow: bool, old: bool = False, limit: int = 1 << 20
) -> tuple[bytes, bytes, list[int], Direct]:
    """Run SCRIPT on a Server, polled through a Link until its end came home: the
    local stdout and stderr, and the local stdout's sizes seen while the job waited
    for its flag (the last one: when the flag was set)."""
    run_id = {"on": A, "off": B, "old": rid(3)}[name]
    server = Server("lh1", tmp_path / "there", allow_root_jobs=True)
    server.handle({"op": "hello", "version": pr.VERSION, "lhost": "lh1", "epoch": 1})
    flag = tmp_path / f"flag-{run_id}"
    argv = ["/bin/sh", "-c", SCRIPT.format(flag=flag)]
    start = {"op": "start", "run_id": run_id, "argv": argv, "env": {}, "output_limit": limit}
    assert server.handle(start)["ok"]
    there = tmp_path / "there" / "lh1" / "jobs" / run_id
    home = Home(tmp_path / "here" / run_id, limit)
    home.jobdir.parent.mkdir(exist_ok=True)
    host = ExecHost(name="xh1", destination="xh1", follow_output=follow)
    direct = Direct(server, old=old)
    link = Link("xh1", lambda outcome: None)
    link._sessions = direct  # type: ignore[assignment]
    seen: list[int] = []
    first_part_there = 0  # polls since the first part is all there
    try:
        deadline = time.monotonic() + 120
        outcome = Outcome(Exchange(host, tmp_path, "lh1", 1, []))
        while run_id not in outcome.home:
            assert time.monotonic() < deadline, "the job's end never came home"
            poll = {"op": "poll", "run_ids": [run_id]}
            outcome = link._do(Exchange(host, tmp_path, "lh1", 1, [poll], {run_id: home}))
            assert outcome.error is None and not outcome.problems
            if flag.exists():
                continue
            stdout = home.jobdir / "stdout"
            seen.append(stdout.stat().st_size if stdout.exists() else 0)
            err = there / "stderr"
            if err.exists() and err.read_bytes().startswith(b"an error line"):
                first_part_there += 1
            if first_part_there > 3:  # two polls carry it: let the job go on
                assert seen[-1] == ((there / "stdout").stat().st_size if follow and not old else 0)
                flag.touch()
            time.sleep(0.02)
    finally:
        link.stop()
        link.join()
    here = (home.jobdir / "stdout").read_bytes(), (home.jobdir / "stderr").read_bytes()
    assert here == ((there / "stdout").read_bytes(), (there / "stderr").read_bytes())
    return here[0], here[1], seen, direct


FIRST_PART = sum(len(f"line {i} of the first part, some padding\n") for i in range(3000))


@pytest.mark.parametrize("limit", [1 << 20, 70_000])
def test_the_final_files_are_those_of_the_end_only_fetch(tmp_path: Path, limit: int) -> None:
    on_out, on_err, seen_on, _ = run_through_link(tmp_path, "on", follow=True, limit=limit)
    off_out, off_err, seen_off, _ = run_through_link(tmp_path, "off", follow=False, limit=limit)
    assert (on_out, on_err) == (off_out, off_err)
    assert on_err.startswith(b"an error line\n") and on_err.endswith(b"no newline at the end")
    if limit == 70_000:
        assert b"output cut here" in on_out and len(on_out) <= limit + mirror.MARKER_ROOM
        assert seen_on[-1] == len(on_out)  # the cap and its marker, before the end
    else:
        assert on_out.count(b"\n") == 5000
        assert seen_on[-1] == FIRST_PART  # followed: all of the first part while it waited
    assert all(b - a <= mirror.STREAM_BUDGET for a, b in itertools.pairwise(seen_on))
    assert set(seen_off) == {0}  # not followed: nothing until the end


def test_an_older_execution_host_that_ignores_offsets_still_brings_the_end_home(
    tmp_path: Path,
) -> None:
    out, err, seen, direct = run_through_link(tmp_path, "old", follow=True, old=True)
    assert set(seen) == {0} and out.count(b"\n") == 5000 and err.startswith(b"an error")
    assert all("offsets" in poll for poll in direct.polls)


def test_an_older_logical_host_without_offsets_gets_no_live_output(tmp_path: Path) -> None:
    server = Server("lh1", tmp_path / "s", allow_root_jobs=True)
    server.handle({"op": "hello", "version": pr.VERSION, "lhost": "lh1", "epoch": 1})
    start = {"op": "start", "run_id": A, "argv": ["/bin/sh", "-c", "echo hi; sleep 30"]}
    assert server.handle({**start, "env": {}})["ok"]
    try:
        deadline = time.monotonic() + 60
        while True:
            with_offsets = server.handle({"op": "poll", "run_ids": [A], "offsets": {A: {}}})
            live = with_offsets["runs"][A].get("live", {}).get("stdout", {})
            if live.get("data"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert base64.b64decode(live["data"]) == b"hi\n"
        assert "live" not in server.handle({"op": "poll", "run_ids": [A]})["runs"][A]
    finally:
        server.handle({"op": "kill", "run_id": A, "signal": 9})


class Blob:
    """Sessions that answer ``output`` requests from one stream's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def exchange(self, host: Any, control: Any, lhost: Any, epoch: Any, requests: Any) -> Any:
        answers = []
        for req in requests:
            assert req["op"] == "output" and req["limit"] > 0
            chunk = self.data[req["offset"] : req["offset"] + min(req["limit"], 10)]
            answers.append({"ok": True, "data": base64.b64encode(chunk).decode(), "size": 30})
        return answers

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("inline", "base", "cap"),
    [
        (None, 0, 100),  # nothing inline: all in output requests
        (None, 12, 100),  # from the copy's size on
        ((0, 30), 0, 100),  # all inline
        ((0, 30), 12, 100),  # an older host sends from byte 0: what is held is skipped
        ((12, 18), 12, 100),  # from the poll's offset
        ((12, 5), 12, 100),  # part inline, the rest in output requests
        ((20, 10), 12, 100),  # inline from beyond the copy: not taken
        ((0, 30), 12, 20),  # the cap
        ((0, 30), 25, 20),  # the copy at the cap already
    ],
)
def test_the_end_fetch_brings_exactly_the_bytes_after_the_copy(
    tmp_path: Path, inline: tuple[int, int] | None, base: int, cap: int
) -> None:
    data = bytes(range(65, 95))  # 30 bytes there
    answer: dict[str, Any] = {"state": "ended", "status": {}}
    if inline is not None:
        start, n = inline
        chunk = base64.b64encode(data[start : start + n]).decode()
        answer["output"] = {"stdout": {"data": chunk, "size": 30, "offset": start}}
    link = Link("xh1", lambda outcome: None)
    link._sessions = Blob(data)  # type: ignore[assignment]
    try:
        exchange = Exchange(ExecHost(name="xh1", destination="xh1"), tmp_path, "lh1", 1, [])
        outcome = Outcome(exchange)
        got = link._fetch(exchange, A, answer, "stdout", cap, outcome, base)
    finally:
        link.stop()
        link.join()
    assert got == data[base:cap] and not outcome.problems
