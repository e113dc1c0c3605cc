"""Fuzzing the parsers of run values: a job's AJS3_VARS_OUT file (written by somebody
else's program) and `entry --var` items. Every input ends in values or AJS3-E407; the
values accepted are names a shell can hold and one-line texts within the bounds, and
${NAME} replacement of any argument with them ends too."""

from __future__ import annotations

from typing import Any

import pytest
from fuzzguard import guarded

from ajs3.engine import runvars
from ajs3.engine.runvars import VariableError
from ajs3.errors import Code

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = st.sampled_from(["A", "DAY", "PATH", "AJS3_X", "LD_PRELOAD", "a", "1A", "", "A B"])
_LINES = st.one_of(
    st.builds(lambda n, v: f"{n}={v}", _NAMES, st.text(max_size=40)),
    st.text(max_size=60),
    st.just("#comment"),
    st.just(""),
)
_FILES = st.one_of(
    st.lists(_LINES, max_size=30).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    st.binary(max_size=400),
)


def _accepted(values: dict[str, str]) -> None:
    for name, value in values.items():
        assert runvars.name_problem(name) is None
        assert runvars.value_problem(name, value) is None


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_FILES)
def test_any_vars_out_file_is_values_or_e407(data: bytes) -> None:
    with guarded("vars-out"):
        try:
            values = runvars.parse_out(data, "in a fuzzed file")
        except VariableError as exc:
            assert exc.code is Code.BAD_VARIABLE and exc.problems
            assert str(exc).isprintable()  # one line, whatever the job wrote
            return
        _accepted(values)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_LINES, max_size=20), st.lists(st.text(max_size=30), max_size=6))
def test_any_var_items_are_values_or_e407_and_expand_ends(
    items: list[str], argv: list[str]
) -> None:
    with guarded("var-items"):
        try:
            values: dict[str, Any] = runvars.parse_assignments(items, "fuzzed")
        except VariableError as exc:
            assert exc.code is Code.BAD_VARIABLE and exc.problems
            assert str(exc).isprintable()
            values = {}
        _accepted(values)
        out = runvars.expand([*argv, *(f"${{{n}}}" for n in values)], values)
        assert out[len(argv) :] == list(values.values())
