"""`ajs3 exechost serve` without ssh: the protocol, the claim, the epoch fence, and
the placement of jobs on execution hosts (docs/exechosts.md)."""

from __future__ import annotations

import base64
import io
import json
import pwd
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from ajs3.errors import AjsError, Code
from ajs3.exechost import placement
from ajs3.exechost import protocol as pr
from ajs3.exechost.serve import Server, serve
from ajs3.exechost_config import Distribution, ExecHost, ExecHosts, HostGroup

RUN = "r" + "a" * 20


def session(state: Path, *lines: dict[str, Any], lhost: str = "lh1") -> list[dict[str, Any]]:
    out = io.BytesIO()
    serve(
        {"lhost": lhost, "state_dir": state, "allow_root_jobs": True},
        io.BytesIO(b"".join(pr.encode(x) for x in lines)),
        out,
    )
    return [json.loads(line) for line in out.getvalue().splitlines()]


def hello(epoch: int = 1, version: int = pr.VERSION, lhost: str = "lh1") -> dict[str, Any]:
    return {"op": "hello", "version": version, "lhost": lhost, "epoch": epoch}


def start(run_id: str, script: str) -> dict[str, Any]:
    return {"op": "start", "run_id": run_id, "argv": ["/bin/sh", "-c", script], "env": {}}


def poll_until_ended(state: Path, run_id: str, epoch: int = 1) -> dict[str, Any]:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        [_, got] = session(state, hello(epoch), {"op": "poll", "run_ids": [run_id]})
        if got["runs"][run_id]["state"] == "ended":
            return dict(got["runs"][run_id])
        time.sleep(0.05)
    raise AssertionError("the job did not end")


def test_a_start_runs_once_and_its_end_and_output_are_kept(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    script = f"echo $AJS3_RUN_ID >> {ledger}; echo out; exit 9"
    first = session(tmp_path / "s", hello(), start(RUN, script))
    assert first[0]["ok"] and first[1]["ok"] and first[1]["state"] in ("running", "ended")
    got = poll_until_ended(tmp_path / "s", RUN)
    assert got["status"]["exit_code"] == 9
    again = session(tmp_path / "s", hello(), start(RUN, script))  # sent again: not run again
    assert again[1]["state"] == "ended"
    [_, out] = session(tmp_path / "s", hello(), {"op": "output", "run_id": RUN, "stream": "stdout"})
    assert out["data"] == "b3V0Cg==" and out["size"] == 4
    assert len(ledger.read_text().splitlines()) == 1


def test_a_job_there_writes_its_vars_out_file_and_it_is_read_back(tmp_path: Path) -> None:
    """AJS3_VARS_OUT on an execution host: made there for the job, carried by the poll
    that finds the end (the stream ``vars``) and readable with ``output``."""
    script = 'echo ROWS=42 >> "$AJS3_VARS_OUT"; echo "DAY=2024-01-02" >> "$AJS3_VARS_OUT"'
    session(tmp_path / "s", hello(), start(RUN, script))
    got = poll_until_ended(tmp_path / "s", RUN)
    assert got["status"]["exit_code"] == 0
    values = b"ROWS=42\nDAY=2024-01-02\n"
    assert base64.b64decode(got["output"]["vars"]["data"]) == values
    path = tmp_path / "s" / "lh1" / "vars" / f"{RUN}.out"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    more = {"op": "output", "run_id": RUN, "stream": "vars", "offset": 8, "limit": 4}
    [_, out] = session(tmp_path / "s", hello(), more)
    assert base64.b64decode(out["data"]) == b"DAY=" and out["size"] == len(values)


def test_the_vars_out_file_there_is_the_jobs_user_and_a_start_sent_again_keeps_it(
    tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    request = {**start(RUN, "sleep 5"), "user": "nobody"}
    session(tmp_path / "s", hello(), request)
    path = tmp_path / "s" / "lh1" / "vars" / f"{RUN}.out"
    st = path.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o600)
    path.write_text("KEPT=1\n")  # as the job would
    again = session(tmp_path / "s", hello(), request)
    # The run's state, not a second start; on a busy machine the job may not have
    # written its pids into its claim yet ("starting": CI saw it once).
    assert again[1]["state"] in ("starting", "running", "ended")
    assert path.read_text() == "KEPT=1\n"
    session(tmp_path / "s", hello(), {"op": "kill", "run_id": RUN, "signal": 9})


def test_void_claims_a_run_so_that_a_late_start_never_runs_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    answers = session(
        tmp_path / "s",
        hello(),
        {"op": "void", "run_id": RUN, "why": "test"},
        start(RUN, f"echo ran >> {ledger}"),
        {"op": "poll", "run_ids": [RUN, "r" + "b" * 20]},
    )
    assert answers[1]["voided"] is True and answers[1]["state"] == "void"
    assert answers[2]["state"] == "void"
    assert answers[3]["runs"]["r" + "b" * 20] == {"state": "absent"}
    time.sleep(0.3)
    assert not ledger.exists()


def test_a_lower_epoch_is_refused_and_nothing_it_asks_is_done(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert session(state, hello(5))[0]["ok"]
    answers = session(state, hello(4), start(RUN, "true"))
    assert answers[0]["code"] == Code.EXEC_HOST_EPOCH.value
    assert answers[1]["code"] == Code.EXEC_HOST_PROTOCOL.value  # no hello: nothing done
    assert not (state / "lh1" / "jobs" / RUN).exists()
    assert (state / "lh1" / "epoch").read_text().strip() == "5"
    assert session(state, hello(5), {"op": "poll", "run_ids": []})[1]["ok"]


def test_a_newer_epoch_fences_a_session_already_open(tmp_path: Path) -> None:
    old = Server("lh1", tmp_path / "s", allow_root_jobs=True)
    old.handle(hello(3))
    new = Server("lh1", tmp_path / "s", allow_root_jobs=True)
    new.handle(hello(4))
    with pytest.raises(AjsError) as err:
        old.handle(start(RUN, "true"))
    assert err.value.code is Code.EXEC_HOST_EPOCH


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        (hello(version=pr.VERSION + 1), Code.EXEC_HOST_VERSION, "this execution host's"),
        (hello(version=0), Code.EXEC_HOST_VERSION, "the logical host's"),
        (hello(lhost="lh2"), Code.EXEC_HOST_PROTOCOL, "speaks for logical host lh1"),
        ({"op": "poll", "run_ids": []}, Code.EXEC_HOST_PROTOCOL, "first request"),
    ],
)
def test_bad_hellos_are_coded(
    tmp_path: Path, first: dict[str, Any], code: Code, words: str
) -> None:
    [answer] = session(tmp_path / "s", first)
    assert answer["ok"] is False and answer["code"] == code.value and words in answer["message"]


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "start", "run_id": "../../etc", "argv": ["x"], "env": {}},
        {"op": "start_many", "runs": "x"},
        {"op": "kill", "run_id": RUN, "signal": 9999},
        {"op": "output", "run_id": RUN, "stream": "../x"},
        {"op": "poll", "run_ids": "x"},
        {"op": "what"},
    ],
)
def test_malformed_requests_are_refused_and_the_session_goes_on(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    answers = session(tmp_path / "s", hello(), request_, {"op": "poll", "run_ids": []})
    assert answers[1]["ok"] is False and answers[1]["code"] == Code.EXEC_HOST_PROTOCOL.value
    assert answers[2]["ok"] is True


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "start", "run_id": RUN, "argv": [], "env": {}},
        {"op": "start", "run_id": RUN, "argv": ["x"], "env": {"A": 1}},
        {"op": "start_many", "runs": [{"run_id": RUN, "argv": "x", "env": {}}]},
    ],
)
def test_a_start_without_argv_or_env_fails_to_start(tmp_path: Path, request_: Any) -> None:
    answer = session(tmp_path / "s", hello(), request_)[1]
    state = answer if request_["op"] == "start" else answer["runs"][RUN]
    assert answer["ok"] is True and state["state"] == "failed" and "argv" in state["error"]
    assert not (tmp_path / "s" / "lh1" / "jobs" / RUN / "started.json").exists()


def test_a_root_job_without_allow_root_fails_to_start_with_e313(tmp_path: Path) -> None:
    out = io.BytesIO()
    serve(
        {"lhost": "lh1", "state_dir": tmp_path / "s", "default_user": "root"},
        io.BytesIO(pr.encode(hello()) + pr.encode(start(RUN, "true"))),
        out,
    )
    answer = json.loads(out.getvalue().splitlines()[1])
    assert answer["state"] == "failed" and "AJS3-E313" in answer["error"]


XH = ExecHosts(
    hosts=(
        ExecHost("a", "a", max_jobs=2),
        ExecHost("b", "b", max_jobs=1),
        ExecHost("c", "c"),
    ),
    groups=(
        HostGroup("least", ("a", "b", "c"), Distribution.LEAST_BUSY),
        HostGroup("rr", ("a", "b", "c"), Distribution.ROUND_ROBIN),
        HostGroup("first", ("b", "a"), Distribution.FIRST_AVAILABLE),
    ),
)


def test_placement_by_distribution_room_and_reach() -> None:
    busy: dict[str, int] = {"a": 1, "c": 3}
    assert placement.choose(XH, "least", busy, set(), {}) == "b"
    assert placement.choose(XH, "least", {"a": 2, "b": 1, "c": 0}, set(), {}) == "c"
    turns: dict[str, int] = {}
    got = [placement.choose(XH, "rr", {}, set(), turns) for _ in range(4)]
    assert got == ["a", "b", "c", "a"]
    assert placement.choose(XH, "rr", {}, {"b"}, {"rr": 1}) == "c"
    assert placement.choose(XH, "first", {}, set(), {}) == "b"
    assert placement.choose(XH, "first", {"b": 1}, set(), {}) == "a"
    assert placement.choose(XH, "first", {"b": 1, "a": 2}, set(), {}) is None
    assert placement.choose(XH, "b", {}, {"b"}, {}) is None
    assert placement.choose(XH, "c", {"c": 10_000}, set(), {}) == "c"
    assert placement.choose(XH, "nowhere", {}, set(), {}) is None
