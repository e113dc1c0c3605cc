"""Bad input through the real CLI: `ajs3: AJS3-Exxx: ...` on stderr, exit 1, no traceback,
and nothing already applied or stored is lost."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, cli_env

CORPUS = Path(__file__).resolve().parent.parent / "unit" / "bad_definitions"
EXPECT = re.compile(r"^# expect: (AJS3-E\d{3}) (\d+)\s*$", re.MULTILINE)
ERROR_LINE = re.compile(r"^ajs3: AJS3-E\d{3}: ", re.MULTILINE)

GOOD = """
    group: /ok
    jobnets:
      - name: net
        units:
          - {name: a, command: [/bin/true]}
          - {name: b, after: [a], command: [/bin/true]}
"""


def ajs3(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", *argv],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )


def assert_error(done: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    """The CLI failed the way a user should see it."""
    assert done.returncode == 1, f"exit {done.returncode}: {done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert ERROR_LINE.search(done.stderr), done.stderr
    assert f"ajs3: {code}: " in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the bad-definition corpus ------------------------------------------------------------


def test_bad_definition_corpus_through_the_cli(tmp_path: Path) -> None:
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) >= 30

    def check(path: Path) -> list[str]:
        expected = EXPECT.findall(path.read_text())
        assert expected, path
        done = ajs3(
            "define", "--check", str(path), "-h", "corpus", "--rundir", str(tmp_path / "run")
        )
        problems = []
        if done.returncode != 1 or "Traceback" in done.stderr:
            problems.append(f"{path.name}: exit {done.returncode}\n{done.stderr}")
        if not done.stderr.startswith("ajs3: AJS3-E1"):
            problems.append(f"{path.name}: first line: {done.stderr[:200]}")
        for code, line in expected:
            if f"{path}:{line}: {code}: " not in done.stderr:
                problems.append(f"{path.name}: no '{path.name}:{line}: {code}' in\n{done.stderr}")
        return problems

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for found in pool.map(check, files) for p in found]
    assert not problems, "\n".join(problems)


def test_rejected_definitions_leave_the_applied_ones_unchanged(lhost: Any) -> None:
    lhost.define(GOOD, name="a.yaml")
    before = lhost.show()
    assert [j["jobnet"] for j in before["jobnets"]] == ["/ok/net"]
    version = before["definitions_version"]

    defs = lhost.datadir / "definitions"
    # a valid new jobnet next to a broken file: nothing of the set may be applied
    (defs / "b.yaml").write_text(
        "group: /new\njobnets:\n  - name: n2\n    units: [{name: x, command: [/bin/true]}]\n"
    )
    (defs / "c.yaml").write_text(
        "jobnets:\n  - name: broken\n    units:\n      - {name: x, comand: [/bin/true]}\n"
    )
    done = lhost.run("define", check=False)
    assert_error(
        done,
        "AJS3-E102",
        f"{defs / 'c.yaml'}:4: AJS3-E102",
        "did you mean 'command'",
        "nothing was applied",
    )
    # an explicit bad file as well
    bad = CORPUS / "e107_cycle_three.yaml"
    done = lhost.run("define", str(bad), check=False)
    assert_error(done, "AJS3-E107", f"{bad}:")

    after = lhost.show()
    assert after["definitions_version"] == version
    assert [j["jobnet"] for j in after["jobnets"]] == ["/ok/net"]
    # the old jobnet still runs; the one from the rejected set is unknown
    run = lhost.entry("/ok/net")
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    assert_error(lhost.run("entry", "/new/n2", check=False), "AJS3-E401", "/new/n2")
    # --json gives every problem as data
    data = json.loads(lhost.run("define", "--json", check=False).stdout)
    assert data["code"] == "AJS3-E102"
    assert {(p["code"], p["line"]) for p in data["problems"]} == {("AJS3-E102", 4)}


# -- operations ---------------------------------------------------------------------------


def test_operation_errors(lhost: Any) -> None:
    lhost.define(GOOD)
    assert_error(lhost.run("entry", "/no/such", check=False), "AJS3-E401", "/no/such", "/ok/net")
    run = lhost.entry("/ok/net")
    lhost.wait(run)
    assert_error(lhost.run("release", "/ok/net/a", check=False), "AJS3-E403", "/ok/net/a")
    assert_error(lhost.run("hold", "/ok/net/a", check=False), "AJS3-E403")
    assert_error(lhost.run("kill", "/ok/net/a", check=False), "AJS3-E403")
    assert_error(lhost.run("hold", "/ok/net/zz", check=False), "AJS3-E402", "/ok/net/zz")
    assert_error(lhost.run("rerun", "/ok/net", "--from", "/ok/net/zz", check=False), "AJS3-E402")
    assert_error(lhost.run("show", "--run", "999", check=False), "AJS3-E402")
    assert_error(lhost.run("log", "rdeadbeef", check=False), "AJS3-E402")
    assert_error(lhost.run("entry", "/ok/net", "--at", "tomorrow", check=False), "AJS3-E406")
    # a usage error is exit 2 with the same kind of message
    done = lhost.run("entry", "/ok/net", "--bogus", check=False)
    assert done.returncode == 2 and "AJS3-E406" in done.stderr
    assert "Traceback" not in done.stderr


def test_commands_against_a_stopped_logical_host(lhost: Any) -> None:
    lhost.define(GOOD)
    run = lhost.entry("/ok/net")
    lhost.wait(run)
    lhost.stop()
    for argv in (
        ["entry", "/ok/net"],
        ["hold", "/ok/net/a"],
        ["release", "/ok/net/a"],
        ["kill", "/ok/net"],
        ["rerun", "/ok/net"],
    ):
        assert_error(lhost.run(*argv, check=False), "AJS3-E302", "not running")
    assert lhost.run("service", "status", check=False).returncode == 3
    # reading still works from the journal
    assert lhost.units(run)["/ok/net"]["status"] == "ended_normally"
    # stop of a stopped host is no error
    assert "was not running" in lhost.run("service", "stop").stdout


def test_start_with_a_missing_data_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = ajs3(
        "service",
        "start",
        "-h",
        "lhx",
        "--datadir",
        str(missing),
        "--rundir",
        str(tmp_path / "run"),
        "--timeout",
        "20",
    )
    assert_error(done, "AJS3-E201", str(missing))
    assert not missing.exists()


def test_journal_of_a_newer_schema_is_refused_and_left_alone(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("lh1")
    host.start()
    host.define(GOOD)
    host.stop()
    journal = host.datadir / "journal.db"
    conn = sqlite3.connect(str(journal))
    with conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    digest = sha(journal)
    done = host.run("service", "start", "--timeout", "20", check=False)
    assert_error(done, "AJS3-E203", "99")
    assert host.run("service", "status", check=False).returncode == 3
    assert_error(host.run("show", check=False), "AJS3-E203")
    assert_error(host.run("define", check=False), "AJS3-E203")
    assert sha(journal) == digest
    rows = (
        sqlite3.connect(str(journal))
        .execute("SELECT value FROM meta WHERE key='schema_version'")
        .fetchall()
    )
    assert rows == [("99",)]


@pytest.mark.parametrize(
    "holder",
    [
        {"pid": 4194000, "node": "a-dead-node", "lhost": "lh1", "since": 1000.0},
        "garbage that is not json",
    ],
)
def test_stale_lock_file_is_taken_over(make_lhost: Any, holder: Any) -> None:
    host: LogicalHost = make_lhost("lh1")
    lock = host.datadir / "ajs3.lock"
    lock.write_text(json.dumps(holder) if isinstance(holder, dict) else holder)
    host.start()
    assert host.run("service", "status").returncode == 0
    pid = host.daemon_pid()
    assert json.loads(lock.read_text())["pid"] == pid
    host.define(GOOD)
    run = host.entry("/ok/net")
    assert host.wait(run)["units"][0]["status"] == "ended_normally"
    if isinstance(holder, dict):
        deadline = time.monotonic() + 5
        log = host.datadir / "log" / "ajs3.log"
        while "stale lock" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(x for x in log.read_text().splitlines() if "stale lock" in x)
        assert "4194000" in line and "a-dead-node" in line
