"""Fuzzing tier of the JP1 parser and importer: every input ends, quickly, as AjsError.

Two targets, each fed over 10,000 inputs per session: ``jp1-parse`` (the unit definition
reader alone) and ``jp1-import`` (parse, map to definitions, and the YAML loader's check
that ``ajs3 import --jp1 FILE --check`` runs). Inputs are (a) random mutations of the
valid files in tests/unit/jp1/ and of each unit cut out of them (characters and JP1's
tokens inserted, deleted, replaced) and (b) JP1 text generated from its grammar with
values that are valid, out of range, foreign digits or junk. Any exception other than
AjsError fails; the guard fails a hang and an input over its memory bound.

The hostile inputs of issue 12 are kept in tests/fuzz/corpus/jp1/, one file each, with
the code and line they must give in their first line (``/* expect AJS3-E111 4: ... */``).
"""

from __future__ import annotations

import functools
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from fuzzguard import Hang, guarded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ajs3.tz
from ajs3.errors import AjsError, DefinitionError
from ajs3.jp1 import parser
from ajs3.jp1.importer import import_text
from ajs3.jp1.parser import parse

HERE = Path(__file__).parent
CORPUS = HERE / "corpus" / "jp1"
SAMPLES = HERE.parent / "unit" / "jp1"


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )


def _unit_blocks(text: str) -> list[str]:
    """Each ``unit=...;{ ... }`` of a file on its own (the seeds stay small and varied)."""
    blocks = []
    for start in (m.start() for m in re.finditer(r"(?m)^[ \t]*unit=", text)):
        brace = text.find("{", start)
        depth, i = 0, brace
        while 0 <= i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                blocks.append(text[start : i + 1].strip())
                break
            i += 1
    return blocks


_FILES = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES.glob("*.jp1"))]
SEEDS = _FILES + [b for text in _FILES for b in _unit_blocks(text)]

TOKENS = [
    "{",
    "}",
    ";",
    "=",
    ",",
    '"',
    "#",
    '#"',
    "##",
    "/*",
    "*/",
    "\n",
    "(",
    ")",
    "/",
    ":",
    "*",
    "+",
    "-",
    "\u00b2",
    "\u0663",
    "\uff11",
    "0",
    "00",
    "145",
    "99999999999",
    "9" * 40,
    "unit=X,,,;",
    "unit=",
    "{ty=j;}",
    "ty=g;",
    "ty=n;",
    "ty=j;",
    "ty=jdj;",
    "ty=pj;",
    "sd=",
    "st=",
    "cy=",
    "0000/01/01",
    "2027/02/30",
    "24:00",
    "48:00",
]


@st.composite
def mutated(draw: st.DrawFn) -> list[str]:
    """A seed mutated step by step; every step is an input (one draw, several inputs)."""
    text = draw(st.sampled_from(SEEDS))
    piece = st.one_of(st.sampled_from(TOKENS), st.text(max_size=4))
    steps = []
    for _ in range(draw(st.integers(2, 8))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        if how == "insert":
            text = text[:at] + draw(piece) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        else:
            token = draw(piece)
            text = text[:at] + token + text[at + max(len(token), 1) :]
        steps.append(text)
    return steps


NUMBERS = st.one_of(
    st.integers(-5, 300).map(str),
    st.integers(0, 2**40).map(str),
    st.sampled_from(["", "\u00b2", "\u0663", "\uff18", "1x", "x", "-1", "0", "9" * 30]),
)
DATES = st.one_of(
    st.builds(
        lambda y, m, d: f"{y:04d}/{m:02d}/{d}",
        st.integers(0, 10000),
        st.integers(0, 13),
        st.sampled_from(
            [
                "01",
                "15",
                "28",
                "30",
                "31",
                "32",
                "*3",
                "*40",
                "+5",
                "+40",
                "@2",
                "+b",
                "b",
                "b-3",
                "*b",
                "fr:b",
                "mo:2",
                "\u00b2",
                "x",
            ]
        ),
    ),
    st.sampled_from(["en", "ud", "12/25", "+3", "2027/1", "\u0662\u0660\u0662\u0667/01/01"]),
)
TIMES = st.one_of(
    st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 60), st.integers(0, 70)),
    st.sampled_from(["+01:00", "1:5", "\u00b2:00", "ab", ""]),
)


def _rule(key: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    number = st.one_of(st.integers(0, 146).map(str), st.sampled_from(["\uff11", "x", ""]))
    return st.builds(lambda n, v: f"{key}={n},{v};", number, value)


NET_PARAMS = st.one_of(
    _rule("sd", DATES),
    _rule("st", TIMES),
    _rule("shd", NUMBERS),
    _rule("cy", st.builds(lambda n, p: f"({n},{p})", NUMBERS, st.sampled_from("ymwdx"))),
    _rule("sh", st.sampled_from(["be", "af", "ca", "no", "zz"])),
    st.sampled_from(["mp=y;", "mp=n;", "mp=q;", 'cm="a #"quoted#" text";', "ha=y;", "zz=1;"]),
    # connection settings of a root jobnet (jobnet connectors)
    st.sampled_from(["ncl=y;", "ncl=q;", "ncn=/A/B;", "ncn=A/C;", "ncs=y;", "ncs=n;", "ncs=x;"]),
    st.sampled_from(["ncex=y;", 'nchn="h";', "ncsv=S;"]),
)
JOB_PARAMS = st.one_of(
    st.builds(
        lambda k, v: f"{k}={v};",
        st.sampled_from(["wth", "tho", "etm", "rec", "rei", "rjs", "rje", "ejc", "ejl", "ejh"]),
        NUMBERS,
    ),
    st.sampled_from(
        [
            'sc="/bin/true";',
            'prm="a \'b";',
            'te="echo hi";',
            "un=batch;",
            'env="A=1";',
            'env="1=x";',
            "jd=cod;",
            "jd=exf;",
            "abr=y;",
            "abr=q;",
            "jd=abc;",
            "ej=ri;",
            "ej=ef;",
            "ej=zz;",
            'ejf="/tmp/x";',
            "ha=n;",
            "so=x;",
            "ncr=/A;",
            "ncr=/B;",
            "ncr=A/B;",
            "ncr=/A/B/C;",
            "ncr=/bad name;",
            "ncex=n;",
            'nchn="h";',
        ]
    ),
)
GROUP_PARAMS = st.one_of(
    st.builds(
        lambda k, v: f"{k}={v};",
        st.sampled_from(["op", "cl"]),
        st.one_of(DATES, st.sampled_from(["su", "sa", "mo", "xx"])),
    ),
    st.builds(lambda v: f"stt={v};", TIMES),
    st.builds(
        lambda v: f"sdd={v};",
        st.one_of(NUMBERS, st.sampled_from(["su:1", "mo:5", "fr:6", "xx:2", "mo:", ":1"])),
    ),
    st.sampled_from(["md=th;", "md=ne;", "md=xx;", "gty=n;", "gty=p;", "gty=q;"]),
)
NAMES = st.one_of(
    st.sampled_from(["A", "B", "C", "J1", "N.1", "x-y"]),
    st.sampled_from(["", "bad name", "\u00b2", "/P/Q", "a" * 70]),
)


def _unit(name: str, ty: str, params: list[str], children: list[str]) -> str:
    return f"unit={name},,,;\n{{\n ty={ty};\n " + "\n ".join(params + children) + "\n}"


JOBS = st.builds(
    _unit,
    NAMES,
    st.sampled_from(["j", "rj", "jdj", "orj", "pj", "nc"]),
    st.lists(JOB_PARAMS, max_size=4),
    st.just([]),
)


def _jobnet(children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    relations = st.lists(
        st.builds(
            lambda a, b, k: f"ar=(f={a},t={b}{k});",
            NAMES,
            NAMES,
            st.sampled_from(["", ",seq", ",con", ",x"]),
        ),
        max_size=3,
    )
    return st.builds(
        lambda name, ty, params, ars, kids: _unit(name, ty, params + ars, kids),
        NAMES,
        st.sampled_from(["n", "rn"]),
        st.lists(NET_PARAMS, max_size=5),
        relations,
        children,
    )


UNITS = st.recursive(
    JOBS,
    lambda inner: st.one_of(
        _jobnet(st.lists(inner, max_size=3)),
        st.builds(
            _unit,
            NAMES,
            st.just("g"),
            st.lists(GROUP_PARAMS, max_size=3),
            st.lists(inner, max_size=2),
        ),
    ),
    max_leaves=6,
)
#: Units generated from the grammar: each alone, then all of them as one file.
GENERATED = st.lists(UNITS, min_size=2, max_size=3).map(lambda units: [*units, "\n".join(units)])


@pytest.fixture(autouse=True, scope="module")
def _zone_list_read_once() -> Iterator[None]:
    """The loader asks for the machine's zone at every schedule, and tz.local_zone_name
    lists every zone on disk each time (~50 ms): at 10,000 inputs that alone is minutes.
    The list does not change during a session, so it is read once here."""
    real = ajs3.tz.available_timezones
    ajs3.tz.available_timezones = functools.cache(real)
    yield
    ajs3.tz.available_timezones = real


def _parse(text: str) -> None:
    with guarded("jp1-parse"):
        try:
            parse(text, "fuzz.jp1")
        except AjsError:
            pass


def _import(text: str) -> None:
    with guarded("jp1-import"):
        try:
            import_text(text, "fuzz.jp1", time_zone="UTC")
        except AjsError:
            pass


@fuzz(1300)
@given(mutated())
def test_mutated_samples_end_as_ajs_errors(texts: list[str]) -> None:
    for text in texts:
        _parse(text)
        _import(text)


@fuzz(1500)
@given(GENERATED)
def test_generated_text_ends_as_ajs_errors(texts: list[str]) -> None:
    for text in texts:
        _parse(text)
        _import(text)


# -- hostile inputs kept ------------------------------------------------------------------


def _expected(path: Path) -> tuple[str, int]:
    match = re.match(r"/\* expect (AJS3-E\d+) (\d+):", path.read_text(encoding="utf-8"))
    assert match is not None, f"{path.name} says in its first line what it must give"
    return match.group(1), int(match.group(2))


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.jp1")), ids=lambda p: p.stem)
def test_corpus_input_gives_its_code_at_its_line(path: Path) -> None:
    code, line = _expected(path)
    with pytest.raises(DefinitionError) as info, guarded("jp1-import"):
        import_text(path.read_text(encoding="utf-8"), path.name, time_zone="UTC")
    got = [(p.code.value, p.line) for p in info.value.problems]
    assert (code, line) in got, got


def _problems(text: str) -> list[tuple[str, int]]:
    with pytest.raises(DefinitionError) as info, guarded("jp1-parse"):
        parse(text, "big.jp1")
    return [(p.code.value, p.line) for p in info.value.problems]


def test_a_megabyte_of_semicolons_stops_at_the_problem_limit() -> None:
    got = _problems(";" * 2**20)
    assert got[0] == ("AJS3-E111", 1)
    assert ("AJS3-E113", 1) in got and len(got) == parser.MAX_PROBLEMS + 1


def test_a_megabyte_of_semicolon_lines_is_read_in_one_pass() -> None:
    got = _problems(";\n" * 2**19)
    assert got[:2] == [("AJS3-E111", 1), ("AJS3-E111", 2)]


def test_a_megabyte_of_open_braces() -> None:
    assert _problems("{" * 2**20)[0] == ("AJS3-E111", 1)


def test_nesting_100000_deep_is_refused_at_the_limit_without_recursion_error() -> None:
    text = "unit=G,,,;{ty=g;\n" * 100_000 + "}" * 100_000
    assert _problems(text) == [("AJS3-E113", parser.MAX_DEPTH + 1)]


def test_nesting_at_the_limit_is_read() -> None:
    text = "unit=G,,,;{ty=g;\n" * parser.MAX_DEPTH + "}" * parser.MAX_DEPTH
    with guarded("jp1-parse"):
        units = parse(text, "deep.jp1")
    depth = 0
    while units:
        depth, units = depth + 1, units[0].children
    assert depth == parser.MAX_DEPTH


@contextmanager
def _ends_within(seconds: float) -> Iterator[None]:
    """A hang guard without the memory tracing of fuzzguard, which slows a large input
    several times over. The bound is generous: the quadratic reader this replaces took
    hours on this input, the linear one about a second."""

    def hang(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"not read within {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_100000_units_are_read() -> None:
    text = "".join(f"unit=U{i},,,;{{ty=j;sc=/bin/true;}}\n" for i in range(100_000))
    with _ends_within(60):
        units = parse(text, "many.jp1")
    assert len(units) == 100_000 and units[-1].line == 100_000


def test_a_file_over_the_size_limit_is_refused_before_reading() -> None:
    text = " " * (parser.MAX_BYTES + 1)
    assert _problems(text) == [("AJS3-E113", 1)]


def test_statements_without_semicolons_are_each_reported_in_one_pass() -> None:
    # Each 'a=b' line lacks its ';' and is reported at its own line; the reader must
    # not scan to the distant ';' again for every line (that was quadratic).
    text = "unit=A,,,;{\n" + "a=b\n" * 3_000_000 + ";}"
    with _ends_within(20):
        got = _problems(text)
    assert got[:2] == [("AJS3-E111", 2), ("AJS3-E111", 3)]
    assert got[-1] == ("AJS3-E113", parser.MAX_PROBLEMS + 2)
