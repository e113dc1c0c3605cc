"""Execution hosts and host groups in ajs3.yaml, and `host:` of jobs (docs/exechosts.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ajs3.definitions.hosts import check_hosts
from ajs3.definitions.loader import load_texts
from ajs3.errors import AjsError, Code
from ajs3.exechost_config import Distribution
from ajs3.settings import load_settings

GOOD = """\
execution_hosts:
  db1: {destination: 10.0.0.5, user: ajs3x, port: 2222, identity_file: /etc/k,
        known_hosts: /etc/kh, max_jobs: 4, follow_output: false}
  db2: {destination: db2.example.com}
host_groups:
  dbs: {members: [db1, db2], distribution: round_robin}
exechost_timeout: 30
"""


def write(datadir: Path, text: str) -> None:
    path = datadir / "ajs3.yaml"
    path.write_text(text)
    path.chmod(0o644)


def test_hosts_and_groups_are_read(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    xh = load_settings(tmp_path, "lh1").exechosts
    db1 = xh.host("db1")
    assert db1 is not None
    assert (db1.destination, db1.user, db1.port, db1.max_jobs) == ("10.0.0.5", "ajs3x", 2222, 4)
    assert (db1.identity_file, db1.known_hosts) == ("/etc/k", "/etc/kh")
    assert db1.follow_output is False
    db2 = xh.host("db2")
    assert db2 is not None and (db2.user, db2.port, db2.max_jobs) == ("ajs3", 22, None)
    assert db2.follow_output is True  # by default
    group = xh.group("dbs")
    assert group is not None and group.distribution is Distribution.ROUND_ROBIN
    assert xh.members("dbs") == ("db1", "db2") and xh.members("db2") == ("db2",)
    assert xh.members("nope") == () and xh.timeout == 30.0
    assert xh.names() == ["db1", "db2", "dbs"]


def test_none_by_default(tmp_path: Path) -> None:
    xh = load_settings(tmp_path, "lh1").exechosts
    assert xh.hosts == () and xh.groups == () and xh.timeout == 600.0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("execution_hosts: [a]", "execution_hosts"),
        ("execution_hosts: {a: {}}", "execution_hosts.a.destination"),
        ("execution_hosts: {a: {destination: -oProxyCommand=x}}", "execution_hosts.a.destination"),
        ("execution_hosts: {a: {destination: h, port: 0}}", "execution_hosts.a.port"),
        ("execution_hosts: {a: {destination: h, port: true}}", "execution_hosts.a.port"),
        ("execution_hosts: {a: {destination: h, user: 'r oot'}}", "execution_hosts.a.user"),
        ("execution_hosts: {a: {destination: h, identity_file: rel}}", "identity_file"),
        ("execution_hosts: {a: {destination: h, max_jobs: 0}}", "execution_hosts.a.max_jobs"),
        ("execution_hosts: {a: {destination: h, colour: red}}", "unknown: ['colour']"),
        ("execution_hosts: {a: {destination: h, follow_output: 1}}", "a.follow_output"),
        ("execution_hosts: {a: {destination: h, follow_output: 'no'}}", "a.follow_output"),
        ("execution_hosts: {'a b': {destination: h}}", "the name 'a b'"),
        ("host_groups: {g: {members: [x]}}", "host_groups.g.members"),
        ("host_groups: {g: {members: []}}", "host_groups.g.members"),
        (
            "execution_hosts: {a: {destination: h}}\nhost_groups: {g: {members: [a, a]}}",
            "host_groups.g.members",
        ),
        (
            "execution_hosts: {a: {destination: h}}\n"
            "host_groups: {g: {members: [a], distribution: random}}",
            "host_groups.g.distribution",
        ),
        (
            "execution_hosts: {a: {destination: h}}\nhost_groups: {a: {members: [a]}}",
            "host_groups.a",
        ),
        ("exechost_timeout: 0", "exechost_timeout"),
        ("exechost_timeout: yes", "exechost_timeout"),
    ],
)
def test_bad_values_are_coded_errors_naming_the_key(tmp_path: Path, text: str, where: str) -> None:
    write(tmp_path, text)
    with pytest.raises(AjsError) as err:
        load_settings(tmp_path, "lh1")
    assert err.value.code is Code.SETTINGS
    assert where in err.value.message and "ajs3.yaml" in err.value.message


DEFS = """\
group: /g
jobnets:
  - name: net
    host: dbs
    units:
      - {name: a, type: job, command: [/bin/true]}
      - {name: b, type: job, command: [/bin/true], host: db1, after: [a]}
      - name: inner
        type: jobnet
        after: [b]
        units:
          - {name: c, type: job, command: [/bin/true]}
  - name: local
    units:
      - {name: d, type: job, command: [/bin/true]}
      - {name: e, type: job, command: [/bin/true], host: nowhere, after: [d]}
"""


def test_host_is_inherited_from_the_jobnet(tmp_path: Path) -> None:
    defs = load_texts([("f.yaml", DEFS)])
    units = {u.path: u for root in defs.jobnets.values() for u in root.walk()}
    assert units["/g/net/a"].host == "dbs"
    assert units["/g/net/b"].host == "db1"
    assert units["/g/net/inner/c"].host == "dbs"
    assert units["/g/local/d"].host is None


def test_unknown_host_is_e150_at_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    defs = load_texts([("f.yaml", DEFS)])
    problems = check_hosts(defs, load_settings(tmp_path, "lh1").exechosts)
    assert [(p.code, p.file, p.line) for p in problems] == [(Code.UNKNOWN_EXEC_HOST, "f.yaml", 16)]
    assert "nowhere" in problems[0].message and "db1, db2, dbs" in problems[0].message


def test_bad_host_name_in_definitions_is_refused() -> None:
    with pytest.raises(AjsError) as err:
        load_texts(
            [
                (
                    "f.yaml",
                    "jobnets:\n  - name: n\n    units:\n"
                    "      - {name: a, type: job, command: [/bin/true], host: 'a b'}\n",
                )
            ]
        )
    assert "'host' of" in str(err.value)
