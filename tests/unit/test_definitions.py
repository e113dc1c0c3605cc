"""The YAML definition loader: good files give the exact tree, bad ones every problem."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from ajs3.definitions import schema, yamltext
from ajs3.definitions.loader import load_dir, load_files, load_text
from ajs3.definitions.units import Condition, DefinitionSet, Retry, Unit
from ajs3.errors import Code, DefinitionError
from ajs3.model import Compare, RecoveryPolicy, UnitKind

HERE = Path(__file__).parent
GOOD = HERE / "good_definitions"
BAD = HERE / "bad_definitions"
EXPECT = re.compile(r"^# expect: (AJS3-E\d{3}) (\d+)\s*$", re.MULTILINE)


def problems_of(text: str, name: str = "t.yaml") -> list[tuple[str, int]]:
    with pytest.raises(DefinitionError) as info:
        load_text(text, name)
    return [(p.code.value, p.line) for p in info.value.problems]


def unit_at(ds: DefinitionSet, path: str) -> Unit:
    for root in ds.jobnets.values():
        for unit in root.walk():
            if unit.path == path:
                return unit
    raise AssertionError(f"no unit {path}")


# --------------------------------------------------------------------------- good files


@pytest.fixture(scope="module")
def good() -> DefinitionSet:
    return load_dir(GOOD)


def test_good_directory_gives_every_root_jobnet_and_group(good: DefinitionSet) -> None:
    assert list(good.jobnets) == ["/batch/daily/etl", "/hello", "/ops/nightly", "/ops/weekly"]
    assert good.groups == ("/batch", "/batch/daily", "/ops")
    for path, root in good.jobnets.items():
        assert root.kind is UnitKind.JOBNET
        assert root.path == path


def test_big_jobnet_tree(good: DefinitionSet) -> None:
    nightly = good.jobnets["/ops/nightly"]
    units = nightly.walk()
    assert len(units) == 69
    assert nightly.concurrency == 8
    kinds = [u.kind for u in units]
    assert kinds.count(UnitKind.JUDGE) == 20
    assert kinds.count(UnitKind.OR) == 1
    assert kinds.count(UnitKind.JOBNET) == 13
    join = unit_at(good, "/ops/nightly/join")
    assert join.after == tuple(f"check_{i:02d}" for i in range(20))
    cleanup = unit_at(good, "/ops/nightly/cleanup")
    assert cleanup.recovery and cleanup.after == ("extract_00",)
    assert cleanup.argv() == ["/bin/sh", "-c", "rm -f /tmp/nightly.*"]
    check = unit_at(good, "/ops/nightly/check_07")
    assert check.condition == Condition(op=Compare.LE, value=2)
    assert check.after == ("extract_07",)
    # 12 jobnets nested below the root one; every path is the full unit path.
    deepest = max(units, key=lambda u: u.path.count("/"))
    assert deepest.path == "/ops/nightly/" + "/".join(f"l{i:02d}" for i in range(1, 13)) + "/job12"
    assert deepest.argv() == ["/bin/echo", "level", "12"]
    for unit in units:
        assert unit.path.endswith("/" + unit.name)
        assert isinstance(unit.after, tuple) and isinstance(unit.units, tuple)
        file, line = unit.source.rsplit(":", 1)
        assert file == str(GOOD / "big.yaml")
        text_line = (GOOD / "big.yaml").read_text().splitlines()[int(line) - 1]
        assert f"name: {unit.name}" in text_line


def test_every_key_gives_exact_units(good: DefinitionSet) -> None:
    src = str(GOOD / "every_key.yaml")
    extract = unit_at(good, "/batch/daily/etl/extract")
    assert extract == Unit(
        name="extract",
        path="/batch/daily/etl/extract",
        kind=UnitKind.JOB,
        source=f"{src}:10",
        description="pull the files",
        hold=True,
        command=("/usr/bin/env", "echo", "42"),
        cwd="/tmp",
        env=(("A", "one"), ("B", "2")),
        user="nobody",
        warning_threshold=1,
        abnormal_threshold=4,
        timeout=30.0,
        kill_grace=0.0,
        retry=Retry(count=2, interval=1.5, on_exit_codes=(75, 69)),
        on_failover=RecoveryPolicy.JUDGE,
        failover_check=("/usr/local/bin/check-load",),
    )
    assert unit_at(good, "/batch/daily/etl/check").condition == Condition(
        op=Compare.IN_RANGE, low=0, high=3
    )
    flag = unit_at(good, "/batch/daily/etl/flag")
    assert flag.after == () and flag.condition == Condition(
        op=Compare.FILE_EXISTS, path="/var/run/ready"
    )
    on_error = unit_at(good, "/batch/daily/etl/on_error")
    assert on_error.argv() == ["/bin/bash", "-c", "logger failed; exit 3"]
    assert on_error.recovery and on_error.on_failover is RecoveryPolicy.RERUN
    # "<<: *defaults" merges, and keys written beside it win.
    y = unit_at(good, "/batch/daily/etl/sub/y")
    assert (y.command, y.timeout, y.after) == (("/bin/true",), 5.5, ("x",))
    assert good.jobnets["/hello"].units[0].command == ("echo", "hello")


def test_round_trip_through_dict_and_json(good: DefinitionSet) -> None:
    for root in good.jobnets.values():
        assert Unit.from_dict(root.to_dict()) == root
        assert Unit.from_dict(json.loads(json.dumps(root.to_dict()))) == root


def test_defaults_of_a_minimal_job() -> None:
    ds = load_text("jobnets: [{name: n, units: [{name: a, command: [x]}]}]\n", "m.yaml")
    job = ds.jobnets["/n"].units[0]
    assert job == Unit(name="a", path="/n/a", kind=UnitKind.JOB, source="m.yaml:1", command=("x",))
    assert ds.groups == ()


# --------------------------------------------------------------------------- bad corpus

BAD_FILES = sorted(BAD.glob("*.yaml"))


def test_bad_corpus_is_large_enough() -> None:
    assert len(BAD_FILES) >= 35
    covered = {m.group(1) for f in BAD_FILES for m in EXPECT.finditer(f.read_text())}
    # JP1 import codes (E111, E112) are about JP1 files, not YAML: tests/unit/test_jp1.py.
    yaml_codes = {
        c.value for c in Code if c.value.startswith("AJS3-E1") and not c.name.startswith("JP1_")
    }
    # E110 and E114 are about files (unreadable, unsafe): tests below with real files.
    # E150 (unknown execution host) needs the settings: tests/unit/test_exechost_settings.py.
    assert covered >= yaml_codes - {"AJS3-E110", "AJS3-E114", "AJS3-E150"}


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_definition_reports_every_problem(path: Path) -> None:
    expected = sorted((code, int(line)) for code, line in EXPECT.findall(path.read_text()))
    assert expected, f"{path.name} has no '# expect: AJS3-Exxx LINE' comment"
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    error = info.value
    got = sorted((p.code.value, p.line) for p in error.problems)
    assert got == expected, "\n".join(str(p) for p in error.problems)
    assert error.code == error.problems[0].code
    for problem in error.problems:
        assert problem.file == str(path)
        assert f"{path}:{problem.line}: {problem.code.value}: " in str(error)
        assert len(problem.message) > 15


def test_message_names_the_key_the_unit_and_a_suggestion() -> None:
    with pytest.raises(DefinitionError) as info:
        load_files([BAD / "e102_typo_command.yaml"])
    assert info.value.problems[0].message == (
        "unknown key 'comand' in job 'extract' (did you mean 'command'?)"
    )


def test_cycle_message_lists_members() -> None:
    with pytest.raises(DefinitionError) as info:
        load_files([BAD / "e107_cycle_three.yaml"])
    message = info.value.problems[0].message
    assert "'a', 'b', 'c'" in message and "a after c after b after a" in message


# --------------------------------------------------------------------------- sets of files


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


JOBNET = "jobnets:\n  - name: {name}\n    units: [{{name: a, command: [x]}}]\n"


def test_duplicate_root_jobnet_across_files(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", "group: /g\n" + JOBNET.format(name="n"))
    two = write(tmp_path, "two.yaml", "\n\ngroup: /g\n" + JOBNET.format(name="n"))
    with pytest.raises(DefinitionError) as info:
        load_files([one, two])
    (problem,) = info.value.problems
    assert (problem.code, problem.file, problem.line) == (Code.DUPLICATE_NAME, str(two), 5)
    assert f"{one}:3" in problem.message


def test_same_jobnet_name_in_different_groups_is_fine(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", "group: /g\n" + JOBNET.format(name="n"))
    two = write(tmp_path, "two.yaml", "group: /h\n" + JOBNET.format(name="n"))
    assert list(load_files([one, two]).jobnets) == ["/g/n", "/h/n"]


def test_jobnet_and_group_with_the_same_path(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", "group: /g/n\njobnets: []\n")
    two = write(tmp_path, "two.yaml", "group: /g\n" + JOBNET.format(name="n"))
    with pytest.raises(DefinitionError) as info:
        load_files([one, two])
    assert [(p.code, p.file) for p in info.value.problems] == [(Code.DUPLICATE_NAME, str(two))]


def test_one_bad_file_rejects_the_whole_set(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", JOBNET.format(name="good"))
    write(tmp_path, "b.yaml", JOBNET.format(name="-bad"))
    with pytest.raises(DefinitionError) as info:
        load_dir(tmp_path)
    assert [p.code for p in info.value.problems] == [Code.BAD_NAME]


def test_problems_of_several_files_come_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "jobnets: [\n")
    write(tmp_path, "b.yml", "jobnets: 3\n")
    with pytest.raises(DefinitionError) as info:
        load_dir(tmp_path)
    assert [(Path(p.file).name, p.code) for p in info.value.problems] == [
        ("a.yaml", Code.YAML_SYNTAX),
        ("b.yml", Code.WRONG_TYPE),
    ]


def test_load_dir_picks_yaml_and_yml_but_not_others(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", JOBNET.format(name="a"))
    write(tmp_path, "b.yml", JOBNET.format(name="b"))
    write(tmp_path, "c.txt", "not yaml at all: [")
    write(tmp_path, ".d.yaml", "swap file: [")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "e.yaml", "nested: [")
    assert list(load_dir(tmp_path).jobnets) == ["/a", "/b"]


def test_load_dir_missing_or_empty_gives_empty_set(tmp_path: Path) -> None:
    assert load_dir(tmp_path / "nope") == DefinitionSet(jobnets={}, groups=())
    assert load_dir(tmp_path) == DefinitionSet(jobnets={}, groups=())


def test_unreadable_files_are_e110(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"jobnets: []\n# caf\xe9\n")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(DefinitionError) as info:
        load_files([latin, tmp_path / "dir.yaml", tmp_path / "missing.yaml"])
    got = sorted((Path(p.file).name, p.code, p.line) for p in info.value.problems)
    assert got == [
        ("dir.yaml", Code.DEFINITION_FILE, 1),
        ("latin.yaml", Code.DEFINITION_FILE, 2),
        ("missing.yaml", Code.DEFINITION_FILE, 1),
    ]


def test_load_dir_on_a_file_is_e110(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "jobnets: []\n")
    with pytest.raises(DefinitionError) as info:
        load_dir(path)
    assert info.value.problems[0].code is Code.DEFINITION_FILE


# --------------------------------------------------------------------------- limits and junk


def nested(depth: int) -> str:
    lines = ["jobnets:", "  - name: root", "    units:"]
    indent = "      "
    for level in range(1, depth):
        lines += [f"{indent}- name: l{level}", f"{indent}  type: jobnet", f"{indent}  units:"]
        indent += "    "
    lines.append(f"{indent}- {{name: leaf, command: [x]}}")
    return "\n".join(lines) + "\n"


def test_nesting_limit() -> None:
    ds = load_text(nested(schema.MAX_DEPTH), "deep.yaml")
    assert max(u.path.count("/") for u in ds.jobnets["/root"].walk()) == schema.MAX_DEPTH + 1
    assert problems_of(nested(schema.MAX_DEPTH + 1)) == [("AJS3-E113", 3 * schema.MAX_DEPTH + 1)]


BILLION_LAUGHS = (
    "jobnets:\n - name: n\n   units: &u\n"
    "    - {name: s, type: jobnet, units: *u}\n"
    "    - {name: t, type: jobnet, units: *u}\n"
)

#: Nine lists of ten aliases of the list before: 10**9 nodes written in 10 lines.
LAUGHS = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    + "jobnets: [{name: n, units: *i}]\n"
)

JUNK: dict[str, tuple[str, list[tuple[str, int]] | None]] = {
    "empty": ("", [("AJS3-E104", 1)]),
    "only comments": ("# nothing here\n", [("AJS3-E104", 1)]),
    "list at top": ("- a\n- b\n", [("AJS3-E103", 1)]),
    "scalar at top": ("hello\n", [("AJS3-E103", 1)]),
    "binary": ("jobnets: []\n\x00\x01\x02\xff\xfe", [("AJS3-E101", 2)]),
    "tabs": ("jobnets:\n\t- name: n\n", [("AJS3-E101", 2)]),
    "duplicate yaml keys": ("jobnets: []\njobnets: []\n", [("AJS3-E105", 2)]),
    "huge int": (
        "jobnets:\n - name: n\n   concurrency: "
        + "9" * 5000
        + "\n   units: [{name: a, command: [x]}]",
        [("AJS3-E108", 3)],
    ),
    "huge hex int in argv": (
        "jobnets: [{name: n, units: [{name: a, command: [x, 0x" + "f" * 5000 + "]}]}]",
        [("AJS3-E108", 1)],
    ),
    "infinite timeout": (
        "jobnets: [{name: n, units: [{name: a, command: [x], timeout: .inf}]}]",
        [("AJS3-E108", 1)],
    ),
    "recursive alias": (
        "jobnets:\n - &n {name: n, type: jobnet, units: [*n]}\n",
        [("AJS3-E108", 2)],
    ),
    "alias bomb": (BILLION_LAUGHS, [("AJS3-E108", 4)]),
    "laughs": (LAUGHS, [("AJS3-E113", 6)]),
    "merge of itself": (
        "jobnets:\n - &n {name: n, <<: *n, units: [{name: a, command: [x]}]}\n",
        [("AJS3-E108", 2)],
    ),
    "undefined alias": ("jobnets: *nope\n", [("AJS3-E101", 1)]),
    "deep brackets": ("[" * 5000 + "]" * 5000, [("AJS3-E113", 1)]),
    "python tag": (
        "jobnets: [{name: !!python/object/apply:os.system [x], units: [{name: a, command: [x]}]}]",
        [("AJS3-E115", 1)],
    ),
    "bad bool tag": (
        "jobnets: [{name: n, hold: !!bool maybe, units: [{name: a, command: [x]}]}]",
        [("AJS3-E115", 1)],
    ),
    "non-text keys": (
        "jobnets: [{name: n, units: [{name: a, command: [x], 1: 2, ? [k] : v}]}]",
        [("AJS3-E103", 1), ("AJS3-E103", 1)],
    ),
    "two documents": ("jobnets: []\n---\njobnets: []\n", [("AJS3-E101", 2)]),
    "nul in argv": (
        'jobnets: [{name: n, units: [{name: a, command: ["x\\0y"]}]}]',
        [("AJS3-E108", 1)],
    ),
}


@pytest.mark.parametrize("name", list(JUNK))
def test_junk_gives_only_definition_errors(name: str) -> None:
    text, expected = JUNK[name]
    assert problems_of(text) == expected


def test_random_junk_and_mutations_never_escape() -> None:
    rng = random.Random(20240611)
    good = (GOOD / "every_key.yaml").read_text()
    alphabet = "[]{}:,-&*!|>'\"#\n\t ab0129.<?%@`\\\x00\x85\u2028"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(400)]
    for _ in range(400):
        chars = list(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            if rng.random() < 0.5:
                del chars[pos]
            else:
                chars.insert(pos, rng.choice(alphabet))
        texts.append("".join(chars))
    lines = good.splitlines()
    for i in range(len(lines)):
        texts.append("\n".join(lines[:i] + lines[i + 1 :]))
    for text in texts:
        try:
            load_text(text, "fuzz.yaml")
        except DefinitionError as error:
            for problem in error.problems:
                assert problem.code.value.startswith("AJS3-E1")
                assert 1 <= problem.line <= max(1, len(text.splitlines()) + 1)


# --------------------------------------------------------------------------- both YAML parsers


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser, then with PyYAML's own (used without libyaml)."""
    if request.param == "libyaml" and not yamltext.USE_LIBYAML:
        pytest.skip("PyYAML is built without libyaml here")
    monkeypatch.setattr(yamltext, "USE_LIBYAML", request.param == "libyaml")
    return str(request.param)


def test_both_parsers_agree_on_the_bad_corpus_and_the_junk(parser: str) -> None:
    for path in BAD_FILES:
        expected = sorted((code, int(line)) for code, line in EXPECT.findall(path.read_text()))
        with pytest.raises(DefinitionError) as info:
            load_files([path])
        assert sorted((p.code.value, p.line) for p in info.value.problems) == expected, path
    for name, (text, junk_expected) in JUNK.items():
        assert problems_of(text) == junk_expected, name


def test_both_parsers_read_the_good_files_alike(parser: str) -> None:
    assert load_dir(GOOD) == load_dir(GOOD)  # no error, and the same tree each time
    assert list(load_dir(GOOD).jobnets) == [
        "/batch/daily/etl",
        "/hello",
        "/ops/nightly",
        "/ops/weekly",
    ]


# --------------------------------------------------------------------------- text exec can not take

TEXT_KEYS = {
    "command": 'command: [/bin/echo, "{v}"]',
    "cwd": 'command: [x], cwd: "/tmp/{v}"',
    "user": 'command: [x], user: "u{v}"',
    "env value": 'command: [x], env: {{A: "{v}"}}',
    "env name": 'command: [x], env: {{"A{v}": x}}',
    "script": 'script: "echo {v}"',
    "shell": 'script: "echo", shell: "/bin/sh{v}"',
    "failover_check": 'command: [x], on_failover: judge, failover_check: [/bin/true, "{v}"]',
    "description": 'command: [x], description: "d{v}"',
}


@pytest.mark.parametrize("key", list(TEXT_KEYS))
def test_lone_surrogate_and_nul_are_refused_where_a_job_could_take_them(
    key: str, parser: str
) -> None:
    def text(value: str) -> str:
        unit = "{name: a, " + TEXT_KEYS[key].format(v=value) + "}"
        return f"jobnets:\n  - name: n\n    units:\n      - {unit}\n"

    assert problems_of(text("\\0")) == [("AJS3-E108", 4)]
    # libyaml refuses the escape of half a UTF-16 pair as YAML; PyYAML's parser reads
    # it, and the loader refuses the value. Either way: refused, with the line.
    code = "AJS3-E101" if parser == "libyaml" else "AJS3-E108"
    assert problems_of(text("\\ud800")) == [(code, 4)]
    assert problems_of(text("\\udc80x\\ud83d")) == [(code, 4)]


def test_a_lone_surrogate_in_the_text_itself_is_refused_with_its_line() -> None:
    assert problems_of("jobnets:\n  - name: n\n    units: [{name: a, command: [\ud800]}]\n") == [
        ("AJS3-E101", 3)
    ]


def test_names_with_a_final_newline_are_refused() -> None:
    # Patterns ending in $ matched "a\n"; a unit or variable name never holds a newline.
    assert problems_of('jobnets: [{name: "n\\n", units: [{name: a, command: [x]}]}]') == [
        ("AJS3-E109", 1)
    ]
    assert problems_of(
        'jobnets: [{name: n, units: [{name: a, command: [x], env: {"A\\n": x}}]}]'
    ) == [("AJS3-E108", 1)]
    assert problems_of('group: "/g\\n"\njobnets: []\n') == [("AJS3-E109", 1)]


# --------------------------------------------------------------------------- bounds (E113)


def test_a_text_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MAX_FILE_BYTES", 1000)
    text = "jobnets: []\n" + "# padding\n" * 200
    assert problems_of(text) == [("AJS3-E113", 100)]
    path = write(tmp_path, "big.yaml", text)
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    assert [(p.code, p.line) for p in info.value.problems] == [(Code.INPUT_LIMIT, 100)]
    assert "1000 bytes" in info.value.problems[0].message


def test_reading_stops_after_max_problems(parser: str) -> None:
    keys = ", ".join(f"k{i}: 1" for i in range(schema.MAX_PROBLEMS + 50))
    got = problems_of(f"jobnets: [{{name: n, units: [{{name: a, command: [x], {keys}}}]}}]")
    assert got[:-1] == [("AJS3-E102", 1)] * schema.MAX_PROBLEMS
    assert got[-1] == ("AJS3-E113", 1)


@pytest.mark.parametrize("depth", [schema.MAX_YAML_DEPTH + 1, 5000, 200_000])
def test_deep_yaml_is_refused_in_block_and_flow_style(depth: int, parser: str) -> None:
    assert problems_of("jobnets: " + "[" * depth + "]" * depth) == [("AJS3-E113", 1)]
    assert problems_of("jobnets: " + "{a: " * depth + "1" + "}" * depth) == [("AJS3-E113", 1)]
    block = "jobnets:\n" + "".join("  " * i + "-\n" for i in range(min(depth, 2000)))
    assert problems_of(block) == [("AJS3-E113", schema.MAX_YAML_DEPTH + 1)]


def test_yaml_just_within_the_depth_limit_is_read(parser: str) -> None:
    # The file's mapping and 'jobnets' list are 2 levels; description takes the rest.
    inner = schema.MAX_YAML_DEPTH - 4
    text = (
        "jobnets: [{name: n, units: [{name: a, command: [x]}], description: "
        + "[" * inner
        + "]" * inner
        + "}]"
    )
    assert problems_of(text) == [("AJS3-E103", 1)]  # read, then refused as not text


def test_numbers_of_thousands_of_digits_are_values_out_of_range() -> None:
    many = "9" * 5000
    rule = "{{at: '01:00', {}}}"
    for extra in (f"every: '{many} days', start: 2027-01-01", f"deadline: '{many}s'"):
        text = (
            "jobnets:\n  - name: n\n    schedule:\n      rules: ["
            + rule.format(extra)
            + "]\n    units: [{name: a, command: [x]}]\n"
        )
        assert problems_of(text) == [("AJS3-E108", 4)]


def test_a_long_cycle_is_named_briefly() -> None:
    n = 300
    units = ", ".join(f"{{name: u{i}, command: [x], after: [u{(i + 1) % n}]}}" for i in range(n))
    with pytest.raises(DefinitionError) as info:
        load_text(f"jobnets: [{{name: n, units: [{units}]}}]", "t.yaml")
    (problem,) = info.value.problems
    assert problem.code is Code.CYCLE
    assert f"({n} in all)" in problem.message and len(problem.message) < 1000


# --------------------------------------------------------------------------- unsafe files (E114)


def unsafe_codes(error: DefinitionError) -> list[tuple[str, Code]]:
    return [(Path(p.file).name, p.code) for p in error.problems]


def test_a_file_others_may_write_is_refused_naming_path_and_mode(tmp_path: Path) -> None:
    path = write(tmp_path, "open.yaml", JOBNET.format(name="n"))
    path.chmod(0o666)
    for load in (lambda: load_files([path]), lambda: load_dir(tmp_path)):
        with pytest.raises(DefinitionError) as info:
            load()
        (problem,) = info.value.problems
        assert (problem.code, problem.file, problem.line) == (Code.UNSAFE_FILE, str(path), 1)
        assert "0666" in problem.message and "chmod go-w" in problem.message
    path.chmod(0o644)
    assert list(load_files([path]).jobnets) == ["/n"]


def test_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    write(defs, "a.yaml", JOBNET.format(name="n"))
    defs.chmod(0o777)
    with pytest.raises(DefinitionError) as info:
        load_dir(defs)
    assert unsafe_codes(info.value) == [("defs", Code.UNSAFE_FILE)]
    assert "0777" in info.value.problems[0].message


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_refused_also_through_a_link(tmp_path: Path) -> None:
    foreign = write(tmp_path, "foreign.yaml", JOBNET.format(name="n"))
    os.chown(foreign, 65534, 65534)
    safe = write(tmp_path, "safe.yml", JOBNET.format(name="s"))
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "via-link.yaml").symlink_to(foreign)
    (defs / "to-safe.yaml").symlink_to(safe)
    with pytest.raises(DefinitionError) as info:
        load_dir(defs)
    assert unsafe_codes(info.value) == [("via-link.yaml", Code.UNSAFE_FILE)]
    assert "uid 65534" in info.value.problems[0].message
    with pytest.raises(DefinitionError):
        load_files([foreign])
    assert list(load_files([defs / "to-safe.yaml"]).jobnets) == ["/s"]


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(DefinitionError) as info:
        load_files([fifo])
    assert unsafe_codes(info.value) == [("pipe.yaml", Code.DEFINITION_FILE)]
    assert load_dir(tmp_path) == DefinitionSet(jobnets={}, groups=())  # skipped
