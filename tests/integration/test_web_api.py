"""`ajs3 web` with a real daemon: the REST API under /api/v1/ shows what the journal
holds, its actions go through the control socket (permission, audit with who did it),
tokens are required, a viewer may not act, and the console's death never stops
scheduling. Every answer is checked against ajs3/web/openapi.json."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from lhost import LogicalHost, wait_for
from webserve import OPERATOR, SETTINGS, VIEWER, WebConsole, checked, serving
from webspec import check_answer

DEFS = """
group: /g
jobnets:
  - name: net
    units:
      - name: a
        command: [/bin/sh, -c, 'echo hello from a']
      - name: b
        command: [/bin/sh, -c, 'echo bad >&2; exit 3']
        after: [a]
  - name: slow
    units:
      - name: sleeper
        command: [/bin/sleep, '600']
"""


@pytest.fixture
def web(make_lhost: Any) -> Iterator[tuple[LogicalHost, WebConsole]]:
    with serving(make_lhost, "wapi", DEFS) as served:
        yield served


call = checked


def test_the_api_shows_what_the_journal_holds(web: tuple[LogicalHost, WebConsole]) -> None:
    host, console = web
    run = host.entry("/g/net")
    host.wait(run)
    status, who = call(console, "GET", "/api/v1/whoami", VIEWER)
    assert status == 200 and who == {"name": "wally", "role": "viewer"}
    status, tree = call(console, "GET", "/api/v1/jobnets", VIEWER)
    assert status == 200
    assert {j["jobnet"] for j in tree["jobnets"]} == {"/g/net", "/g/slow"}
    net = next(j for j in tree["jobnets"] if j["jobnet"] == "/g/net")
    assert net["latest"]["run"] == run and net["latest"]["status"] == "ended_abnormally"

    status, shown = call(console, "GET", f"/api/v1/runs/{run}", VIEWER)
    journal = dict(
        host.journal_query("SELECT path, status FROM unit_runs WHERE jobnet_run=?", (run,))
    )
    assert {u["path"]: u["status"] for u in shown["units"]} == journal
    status, latest = call(console, "GET", "/api/v1/runs/latest?jobnet=/g/net", VIEWER)
    assert status == 200 and latest["run"] == run

    status, why = call(console, "GET", f"/api/v1/runs/{run}/why?unit=/g/net/b", VIEWER)
    assert status == 200 and why["status"] == "ended_abnormally" and "3" in why["reason"]
    status, out = call(console, "GET", f"/api/v1/runs/{run}/log?unit=/g/net/a", VIEWER)
    assert status == 200 and base64.b64decode(out["data"]) == b"hello from a\n"
    status, err = call(console, "GET", f"/api/v1/runs/{run}/log?unit=/g/net/b&stderr=true")
    assert base64.b64decode(err["data"]) == b"bad\n"
    status, listing = call(console, "GET", "/api/v1/runs?all=true", VIEWER)
    assert [r["run"] for r in listing["runs"]] == [run]
    status, ping = call(console, "GET", "/api/v1/status", VIEWER)
    assert status == 200 and ping["lhost"] == "wapi" and ping["pid"] == host.daemon_pid()
    status, plan = call(
        console, "GET", "/api/v1/plan?from=2027-01-01T00:00:00Z&to=2027-01-02T00:00:00Z"
    )
    assert status == 200 and plan["runs"] == []

    status, missing = call(console, "GET", "/api/v1/runs/999", VIEWER)
    assert status == 404 and missing["error"]["code"] == "AJS3-E402"
    status, nowhere = console.get("/api/v1/nothing", VIEWER)  # not in the document
    assert status == 400 and nowhere["error"]["code"] == "AJS3-E317"


def test_without_a_valid_token_nothing_is_shown(web: tuple[LogicalHost, WebConsole]) -> None:
    host, console = web
    for token in (None, "", "x" * 30, OPERATOR + "x", OPERATOR[:-1]):
        for method, path in (
            ("GET", "/api/v1/jobnets"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/openapi.json"),
            ("POST", "/api/v1/actions/entry"),
        ):
            status, answer = call(
                console, method, path, token, {"jobnet": "/g/net"} if method == "POST" else None
            )
            assert status == 401, (token, path)
            assert answer["error"]["code"] == "AJS3-E315"
    assert host.journal_query("SELECT count(*) FROM jobnet_runs") == [(0,)]


def test_actions_go_through_the_daemon_and_are_audited_with_who(
    web: tuple[LogicalHost, WebConsole],
) -> None:
    host, console = web
    status, refused = call(console, "POST", "/api/v1/actions/entry", VIEWER, {"jobnet": "/g/net"})
    assert status == 403 and refused["error"]["code"] == "AJS3-E316"
    assert host.journal_query("SELECT count(*) FROM jobnet_runs") == [(0,)]

    status, done = call(console, "POST", "/api/v1/actions/entry", OPERATOR, {"jobnet": "/g/slow"})
    assert status == 200
    run = done["run"]
    wait_for(lambda: host.units(run)["/g/slow/sleeper"]["status"] == "running", 60)
    status, killed = call(
        console, "POST", "/api/v1/actions/kill", OPERATOR, {"run": run, "unit": "/g/slow/sleeper"}
    )
    assert status == 200, killed
    host.wait(run)
    assert host.units(run)["/g/slow/sleeper"]["status"] == "killed"

    status, _held = call(
        console,
        "POST",
        "/api/v1/actions/suspend",
        OPERATOR,
        {"jobnet": "/g/net", "reason": "maintenance"},
    )
    assert status == 200
    assert host.journal_query("SELECT jobnet FROM suspended") == [("/g/net",)]
    status, _ = call(console, "POST", "/api/v1/actions/resume", OPERATOR, {"jobnet": "/g/net"})
    assert status == 200 and host.journal_query("SELECT jobnet FROM suspended") == []

    rows = host.journal_query("SELECT op, args, code FROM audit WHERE op != 'define' ORDER BY id")
    assert [(op, code) for op, _, code in rows] == [
        ("entry", "ok"),
        ("kill", "ok"),
        ("suspend", "ok"),
        ("resume", "ok"),
    ]
    assert all(json.loads(args)["on_behalf"] == "web:alice" for _, args, _ in rows)

    # what the daemon refuses is an error with its code, and audited as refused
    status, bad = call(console, "POST", "/api/v1/actions/entry", OPERATOR, {"jobnet": "/none"})
    assert status == 404 and bad["error"]["code"] == "AJS3-E401"
    status, bad = call(console, "POST", "/api/v1/actions/entry", OPERATOR, {"jobnet": 3})
    assert status == 400 and bad["error"]["code"] == "AJS3-E310"
    status, bad = console.post("/api/v1/actions/stop", {})  # not in the document
    assert status == 400 and bad["error"]["code"] == "AJS3-E317"
    status, bad = call(
        console,
        "POST",
        "/api/v1/actions/entry",
        OPERATOR,
        {"jobnet": "/g/net", "on_behalf": "someone-else"},
    )
    assert status == 400


def test_the_environment_token_and_a_trusted_header(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("wenv")
    host.write_settings(
        "web:\n  trusted_header: {name: X-Remote-User, operators: [olga], viewers: [vic]}\n"
    )
    host.start()
    host.define(DEFS)
    console = WebConsole(host, env={"AJS3_WEB_TOKEN": "env-token-abcdefghijklmnop"})
    try:
        status, who, _ = console.request("GET", "/api/v1/whoami", "env-token-abcdefghijklmnop")
        assert status == 200 and who == {"name": "env", "role": "operator"}
        status, who, _ = console.request(
            "GET", "/api/v1/whoami", None, headers={"X-Remote-User": "vic"}
        )
        assert status == 200 and who["role"] == "viewer"
        status, _, _ = console.request(
            "POST",
            "/api/v1/actions/entry",
            None,
            {"jobnet": "/g/net"},
            headers={"X-Remote-User": "vic"},
        )
        assert status == 403
        status, _done, _ = console.request(
            "POST",
            "/api/v1/actions/entry",
            None,
            {"jobnet": "/g/net"},
            headers={"X-Remote-User": "olga"},
        )
        assert status == 200
        args = host.journal_query("SELECT args FROM audit WHERE op='entry'")[0][0]
        assert json.loads(args)["on_behalf"] == "web:olga"
        status, _, _ = console.request(
            "GET", "/api/v1/whoami", None, headers={"X-Remote-User": "mallory"}
        )
        assert status == 401
    finally:
        console.stop()


def test_without_any_token_the_console_does_not_start(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("wnone")
    host.start()
    with pytest.raises(AssertionError, match="AJS3-E318"):
        WebConsole(host)


def test_the_consoles_death_never_stops_scheduling(web: tuple[LogicalHost, WebConsole]) -> None:
    host, console = web
    os.kill(console.proc.pid, signal.SIGKILL)
    console.proc.wait()
    run = host.entry("/g/net")
    assert host.wait(run)["units"][1]["status"] == "ended_normally"
    again = WebConsole(host)
    try:
        status, shown = call(again, "GET", f"/api/v1/runs/{run}")
        assert status == 200 and shown["run"] == run
    finally:
        again.stop()


def test_a_stopped_daemon_is_a_503_and_the_console_stays(
    web: tuple[LogicalHost, WebConsole],
) -> None:
    host, console = web
    host.stop()
    status, answer = call(console, "GET", "/api/v1/jobnets")
    assert status == 503 and answer["error"]["code"] == "AJS3-E302"
    host.start()
    status, _ = call(console, "GET", "/api/v1/jobnets")
    assert status == 200


def test_the_graph_and_the_timeline(web: tuple[LogicalHost, WebConsole]) -> None:
    host, console = web
    run = host.entry("/g/net")
    host.wait(run)
    status, svg, ctype = console.request("GET", f"/api/v1/graph?jobnet=/g/net&run={run}")
    check_answer("GET", "/api/v1/graph", status, svg, ctype)
    assert status == 200 and svg.lstrip().startswith("<?xml") and "<svg" in svg
    # each job a node in its status' colour, the relation a Graphviz edge
    assert 'id="unit:/g/net/a"' in svg and 'id="unit:/g/net/b"' in svg
    assert svg.count('fill="#8fd19e"') >= 1 and svg.count('fill="#f28b82"') >= 1
    assert "/g/net/a&#45;&gt;/g/net/b" in svg or "/g/net/a->/g/net/b" in svg
    status, _ = call(console, "GET", "/api/v1/graph?jobnet=/g/slow")
    assert status == 200
    status, _ = call(console, "GET", "/api/v1/graph?jobnet=/none")
    assert status == 404

    status, line = call(console, "GET", "/api/v1/timeline")
    assert status == 200
    assert [(r["run"], r["status"]) for r in line["runs"]] == [(run, "ended_abnormally")]
    started, ended = host.journal_query(
        "SELECT started_at, ended_at FROM unit_runs WHERE jobnet_run=? AND path='/g/net'", (run,)
    )[0]
    assert line["runs"][0]["started_at"] == started and line["runs"][0]["ended_at"] == ended
    status, other = call(console, "GET", "/api/v1/timeline?jobnet=/g/slow")
    assert other["runs"] == []


def _served_urls(host: LogicalHost) -> list[str]:
    log = host.datadir / "log" / "web.log"
    text = log.read_text() if log.exists() else ""
    return re.findall(r"serving logical host \S+ on (http://127\.0\.0\.1:\d+)", text)


def test_the_daemon_starts_its_console_and_again_when_it_dies(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("wserve")
    host.write_settings(SETTINGS + "  serve: true\n  listen: 127.0.0.1:0\n")
    host.start()
    host.define(DEFS)
    url = wait_for(lambda: _served_urls(host), 60, "the console's address")[-1]
    req = urllib.request.Request(url + "/api/v1/whoami")
    req.add_header("Authorization", f"Bearer {OPERATOR}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert json.loads(resp.read())["name"] == "alice"
    pids = [
        p.pid
        for p in psutil.Process(host.daemon_pid()).children()
        if "web" in p.cmdline() and "ajs3.cli.main" in p.cmdline()
    ]
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: len(_served_urls(host)) == 2, 60, "the console started again")
    run = host.entry("/g/net")  # scheduling went on all along
    host.wait(run)
    host.stop()
    wait_for(lambda: not psutil.pid_exists(pids[0]), 30)
    children = [
        p for p in psutil.process_iter(["cmdline"]) if "wserve" in " ".join(p.info["cmdline"] or [])
    ]
    assert children == []

    # a daemon killed outright leaves no console behind
    host.start()
    wait_for(lambda: len(_served_urls(host)) == 3, 60, "the console with the daemon")
    daemon = psutil.Process(host.daemon_pid())
    consoles = [p for p in daemon.children() if "web" in p.cmdline()]
    assert len(consoles) == 1
    daemon.kill()
    daemon.wait(30)
    wait_for(lambda: not consoles[0].is_running(), 30, "the console's end")


def test_connections_beyond_the_bound_are_closed_and_served_again_after(
    web: tuple[LogicalHost, WebConsole],
) -> None:
    import socket

    from ajs3.web.server import MAX_CONNECTIONS

    _, console = web
    held = []
    closed = False
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", console.port), timeout=30))
        try:
            console.get("/api/v1/whoami")  # one beyond the bound
        except OSError:  # urllib's URLError, a reset or a remote disconnect
            closed = True
        assert closed, "a connection beyond the bound was served"
    finally:
        for s in held:
            s.close()
    wait_for(lambda: console.get("/api/v1/whoami")[0] == 200, 30, "served again")
