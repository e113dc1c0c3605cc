"""The control protocol's reading of a request line: any bytes give a request or
AJS3-E310, never another exception, a hang or unbounded memory. (The daemon answers
with exactly this code path; tests/integration/test_control_protocol.py floods a real
daemon with the same shapes.)"""

from __future__ import annotations

import json
from typing import Any

from fuzzguard import guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ajs3.errors import Code
from ajs3.service import protocol
from ajs3.service.protocol import OPS, BadRequest

TARGET = "control-protocol"

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from([*{f.name for o in OPS.values() for f in o.fields}, "op", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
_requests = st.builds(
    lambda op, extra: {"op": op, **extra},
    st.sampled_from([*OPS, "", "op_ping", "__init__"]),
    st.dictionaries(
        st.sampled_from(sorted({f.name for o in OPS.values() for f in o.fields} | {"zz"})),
        _json,
        max_size=6,
    ),
)


def _read(line: bytes) -> None:
    with guarded(TARGET):
        try:
            protocol.check(protocol.decode(line))
        except BadRequest as exc:
            assert exc.code is Code.BAD_REQUEST


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(_requests, _json))
def test_any_json_value_is_a_request_or_a_coded_error(value: Any) -> None:
    _read(json.dumps(value).encode())


_valid = [
    protocol.build("entry", jobnet="/a/b", at=1.0, key="k" * 16).to_line(),
    protocol.build("hold", unit="/a/b", run=3).to_line(),
    protocol.build("define", files=[{"name": "a.yaml", "text": "jobnets: []"}]).to_line(),
]


@settings(max_examples=3600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(_valid),
    st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=4)), max_size=6),
    st.binary(max_size=64),
)
def test_any_mutated_line_or_random_bytes_is_a_request_or_a_coded_error(
    base: bytes, edits: list[tuple[int, bytes]], noise: bytes
) -> None:
    line = bytearray(base.rstrip(b"\n"))
    for at, data in edits:
        at = min(at, len(line))
        line[at : at + len(data)] = data
    _read(bytes(line))
    _read(noise)
