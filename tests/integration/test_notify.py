"""Notifications through a real daemon: every event kind reaches a command route, each
with a stable event id; a route that fails and recovers delivers every event once;
undelivered events survive a kill -9 of the daemon (docs/notifications.md)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, wait_for
from notifysink import events, kinds, sink_route, wait_event


def test_every_event_kind_reaches_a_command_route(make_lhost: Any, tmp_path: Path) -> None:
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    host.write_settings(text)
    host.start()
    started = wait_event(out, lambda e: e["kind"] == "host_started")
    assert started["mode"] == "hot" and started["epoch"] >= 1 and started["node"]
    assert started["severity"] == "info"
    host.define("""
        group: /n
        jobnets:
          - name: bad
            units:
              - {name: fails, command: [sh, -c, 'exit 3']}
          - name: warn
            units:
              - {name: warns, command: [sh, -c, 'exit 5'], warning_threshold: 4,
                 abnormal_threshold: 10}
          - name: slow
            units:
              - {name: sleeper, command: [sleep, '30'], timeout: 1, kill_grace: 1}
          - name: nostart
            units:
              - {name: missing, command: [/nonexistent/program]}
          - name: held
            units:
              - {name: first, command: [/bin/true]}
              - {name: second, after: [first], command: [/bin/true]}
    """)
    for name in ("bad", "warn", "slow", "nostart"):
        host.wait(host.entry(f"/n/{name}"), timeout=60)
    held = host.entry("/n/held", "--hold")
    host.run("hold", "/n/held/second", "--run", str(held))
    abnormal = wait_event(out, lambda e: e["kind"] == "unit_ended_abnormally")
    assert abnormal["unit"] == "/n/bad/fails" and abnormal["exit_code"] == 3
    assert abnormal["severity"] == "err" and abnormal["run_id"]
    assert "exit 3" in abnormal["message"] and "[lh1]" in abnormal["message"]
    warn = wait_event(out, lambda e: e["kind"] == "unit_ended_warning")
    assert warn["unit"] == "/n/warn/warns" and warn["severity"] == "warning"
    killed = wait_event(out, lambda e: e["kind"] == "unit_killed")
    assert killed["unit"] == "/n/slow/sleeper" and killed["code"] == "timed-out"
    nostart = wait_event(out, lambda e: e["kind"] == "unit_failed_to_start")
    assert nostart["unit"] == "/n/nostart/missing"
    wait_event(out, lambda e: e["kind"] == "unit_held" and e["unit"] == "/n/held/second")
    # registered held (entry --hold, or hold: true) waits for an operator from the start
    registered = wait_event(out, lambda e: e["kind"] == "unit_held" and e["unit"] == "/n/held")
    assert registered["code"] == "held-at-registration" and registered["run"] == held
    ended = wait_event(out, lambda e: e["kind"] == "jobnet_ended" and e["unit"] == "/n/bad")
    assert ended["status"] == "ended_abnormally" and ended["severity"] == "err"
    wait_event(out, lambda e: e["kind"] == "jobnet_ended" and e["unit"] == "/n/warn")
    # the variables carry the same event
    env_lines = (out.parent / (out.name + ".env")).read_text().splitlines()
    assert f"{abnormal['event_id']} unit_ended_abnormally /n/bad/fails" in env_lines
    host.stop()
    wait_event(out, lambda e: e["kind"] == "host_stopped", timeout=5)
    ids = [e["event_id"] for e in events(out)]
    assert len(ids) == len(set(ids))


FAILING = """
    group: /f
    jobnets:
      - name: bad
        units:
          - {name: a, command: [sh, -c, 'exit 1']}
          - {name: b, command: [sh, -c, 'exit 2']}
          - {name: c, command: [sh, -c, 'exit 3']}
"""


def route_state(host: LogicalHost, name: str = "cmd") -> dict[str, Any]:
    health = json.loads(host.run("service", "status", "--json", check=False).stdout)
    checks = [c for c in health["checks"] if c.get("check") == "notify"]
    return next(c for c in checks if c["route"] == name)


def test_a_failing_route_is_retried_and_delivers_each_event_once(
    make_lhost: Any, tmp_path: Path
) -> None:
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    host.write_settings(text)
    flag = Path(str(out) + ".fail")
    flag.touch()  # the receiver is down
    host.start()
    host.define(FAILING)
    for _ in range(3):
        host.wait(host.entry("/f/bad"), timeout=60)
    # 3 runs x (3 job ends + 1 jobnet end) + host_started wait in the journal
    stored = host.journal_query(
        "SELECT e.event_id FROM notify_events e JOIN notify_deliveries d ON d.event = e.id"
        " WHERE d.route='cmd'"
    )
    assert len(stored) == 13
    state = wait_for(
        lambda: (s := route_state(host)) and s["failures"] >= 2 and s,
        30,
        "the route's failures shown by service status",
    )
    assert state["pending"] == 13 and "exited 7" in state["last_error"]
    assert "receiver down" in state["last_error"] and state["ok"] is False
    text_status = host.run("service", "status").stdout
    assert "notify route cmd (command): 13 waiting" in text_status
    assert not out.exists()
    flag.unlink()  # the receiver is back
    wait_for(lambda: len(events(out)) == 13, 30, "every event delivered after recovery")
    ids = [e["event_id"] for e in events(out)]
    assert sorted(ids) == sorted(r[0] for r in stored)  # each id once, none lost
    assert wait_for(lambda: route_state(host)["pending"] == 0, 10)
    log = (host.datadir / "log" / "ajs3.log").read_text()
    assert "notify: delivery failed" in log and "notify: route recovered" in log


def test_undelivered_events_are_sent_by_the_next_start_after_kill_9(
    make_lhost: Any, tmp_path: Path
) -> None:
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    host.write_settings(text)
    flag = Path(str(out) + ".fail")
    flag.touch()
    host.start()
    host.define(FAILING)
    host.wait(host.entry("/f/bad"), timeout=60)
    before = {
        r[0]
        for r in host.journal_query(
            "SELECT e.event_id FROM notify_events e JOIN notify_deliveries d"
            " ON d.event = e.id WHERE d.delivered_at IS NULL"
        )
    }
    assert len(before) == 5  # host_started, 3 abnormal ends, the jobnet's end
    host.crash()  # SIGSTOP, then SIGKILL: nothing of it can send or record anything more
    flag.unlink()
    host.start()
    wait_for(lambda: before <= {e["event_id"] for e in events(out)}, 30, "the kept events")
    wait_for(lambda: kinds(out).count("host_started") == 2, 30, "the new start's event")
    got = events(out)
    ids = [e["event_id"] for e in got]
    assert len(ids) == len(set(ids))
    starts = [e for e in got if e["kind"] == "host_started"]
    assert [s["epoch"] for s in starts] == sorted(s["epoch"] for s in starts)
    assert len(starts) == 2 and starts[0]["epoch"] < starts[1]["epoch"]
    assert not any(e["kind"] == "host_stopped" for e in got)  # a crash says nothing itself


def test_bad_routes_are_refused_with_the_file_and_key_and_nothing_starts(
    make_lhost: Any, tmp_path: Path
) -> None:
    host: LogicalHost = make_lhost("lh1")
    host.write_settings("""
    notify:
      - {name: ok, kind: syslog}
      - {name: pager, kind: sms, number: '112'}
    """)
    done = host.run("service", "start", "--timeout", "30", check=False)
    assert done.returncode != 0
    err = done.stderr
    assert "AJS3-E206" in err and str(host.datadir / "ajs3.yaml") in err
    assert "notify[1] (route 'pager'): kind" in err
    assert host.daemon_pid() is None
    host.write_settings("""
    notify:
      - {name: m, kind: mail, to: ops@example.com}
    """)
    done = host.run("service", "start", "--timeout", "30", check=False)
    assert done.returncode != 0 and "notify[0] (route 'm'): from" in done.stderr


def test_notify_test_delivers_to_one_route_and_is_audited(make_lhost: Any, tmp_path: Path) -> None:
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    # the route wants only abnormal ends: a test event goes to it all the same
    host.write_settings(text + "\n        events: [unit_ended_abnormally]\n")
    host.start()
    sent = host.json("notify", "test", "cmd")
    assert sent["delivered"] is True
    got = wait_event(out, lambda e: e["kind"] == "test")
    assert got["event_id"] == sent["event_id"] and got["route"] == "cmd"
    assert [e["kind"] for e in events(out)] == ["test"]  # host_started was filtered out
    missing = host.run("notify", "test", "nope", check=False)
    assert missing.returncode != 0 and "AJS3-E409" in missing.stderr
    Path(str(out) + ".fail").touch()
    failing = host.run("notify", "test", "cmd", check=False)
    assert failing.returncode != 0
    assert "AJS3-E410" in failing.stderr and "receiver down" in failing.stderr
    rows = host.journal_query("SELECT op, code FROM audit WHERE op='notify_test' ORDER BY id")
    assert rows == [("notify_test", "ok"), ("notify_test", "AJS3-E409"), ("notify_test", "ok")]


def test_unknown_end_after_a_crash_and_catch_up_decisions_are_notified(
    make_lhost: Any, tmp_path: Path
) -> None:
    if time.gmtime().tm_hour == 0 and time.gmtime().tm_min < 7:
        pytest.skip("the every-minute rule starts at 00:00 UTC; too close to midnight")
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    host.write_settings(text)
    host.start()
    ledger = tmp_path / "ledger"
    host.define(f"""
        group: /u
        jobnets:
          - name: doubt
            units:
              - {{name: work, script: 'echo x >> {ledger}; sleep 30', on_failover: unknown}}
          - name: tick
            schedule:
              time_zone: UTC
              catch_up: latest
              catch_up_window: 1h
              rules:
                - {{at: '00:00', repeat: {{every: 1m, until: '23:59'}}}}
            units:
              - {{name: a, command: [/bin/true]}}
    """)
    run = host.entry("/u/doubt")
    wait_for(ledger.exists, 20, "the job started")
    host.crash()
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    with conn:  # the logical host was down for 3.5 minutes
        conn.execute(
            "UPDATE meta SET value=? WHERE key='schedule_seen'", (repr(time.time() - 210),)
        )
    conn.close()
    host.start("hot")
    unknown = wait_event(out, lambda e: e["kind"] == "unit_unknown")
    assert unknown["unit"] == "/u/doubt/work" and unknown["run"] == run
    assert unknown["severity"] == "err" and unknown["code"] in (
        "in-doubt-after-failover",
        "supervisor-died",
    )

    def decided() -> list[dict[str, Any]] | None:
        found = [e for e in events(out) if e["kind"] == "catch_up"]
        # 3.5 minutes down: 3 or 4 runs missed, the latest registered (delivered last)
        return found if len(found) >= 3 and any(e["registered"] for e in found) else None

    decisions = wait_for(decided, 30, "the catch-up decisions")
    assert {d["jobnet"] for d in decisions} == {"/u/tick"}
    assert len(decisions) >= 3 and [d["registered"] for d in decisions].count(True) == 1
    taken = next(d for d in decisions if d["registered"])
    assert isinstance(taken["run"], int) and taken["detail"]
    # host_started is written once the recovery (in doubt, catch-up) is done: after them
    wait_for(lambda: kinds(out).count("host_started") == 2, 30, "the new start's event")
    starts = [e for e in events(out) if e["kind"] == "host_started"]
    assert [s["epoch"] for s in starts] == [1, 2]
    got = kinds(out)
    assert got.index("unit_unknown") < len(got) - 1 - got[::-1].index("host_started")
