"""`ajs3 exechost serve` reading hostile request lines: every line gets exactly one
answer, `ok` or a coded AJS3-E33x refusal, never another exception, a hang or
unbounded memory. Starts and voids with a valid run id are left out (they would
start or claim real runs); tests/unit/test_exechost_serve.py covers them."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzguard import guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ajs3.errors import Code
from ajs3.exechost import protocol as pr
from ajs3.exechost.serve import Server, answer_line

TARGET = "exechost-protocol"
STATE = Path(tempfile.mkdtemp(prefix="ajs3-fuzz-xh-"))
CODES = {c.value for c in Code}
VALID_ID = "r" + "1" * 20

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    ["op", "version", "lhost", "epoch", "run_id", "run_ids", "argv", "env", "signal",
     "stream", "offset", "limit", "why", "cwd", "user"]
)  # fmt: skip
_requests = st.builds(
    lambda op, extra: {**extra, "op": op},
    st.sampled_from([*pr.OPS, "", "x"]),
    st.dictionaries(_keys, _json | st.just(VALID_ID) | st.just([VALID_ID]), max_size=6),
)


def _safe(req: Any) -> Any:
    if isinstance(req, dict) and req.get("op") in ("start", "void"):
        req = {**req, "run_id": "not-a-run"}
    return req


SERVER = Server("fz", STATE)


@pytest.fixture(scope="module", autouse=True)
def _remove_state() -> Iterator[None]:
    """The server's state directory goes with the module (it lives outside tmp_path)."""
    yield
    shutil.rmtree(STATE, ignore_errors=True)


def _session(lines: list[bytes]) -> None:
    """A session of one server (as `serve` reads it): hello may change its epoch."""
    SERVER.epoch = None
    with guarded(TARGET):
        answers = [answer_line(SERVER, line) for line in lines]
    for a in answers:
        json.loads(pr.encode(a))
        assert a["ok"] is True or a["code"] in CODES, a


_hello = pr.encode({"op": "hello", "version": pr.VERSION, "lhost": "fz", "epoch": 1})


@settings(max_examples=6000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(_requests, _json), max_size=3))
def test_any_json_request_gets_one_coded_answer(values: list[Any]) -> None:
    _session([_hello, *(pr.encode(_safe(v)) for v in values)])  # type: ignore[arg-type]


@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=64).map(lambda b: b.replace(b"\n", b" ") + b"\n"), max_size=4))
def test_any_bytes_get_one_coded_answer_each(lines: list[bytes]) -> None:
    safe = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            safe.append(line)
            continue
        safe.append(pr.encode(_safe(value)) if isinstance(value, dict) else line)
    _session([_hello, *safe])
