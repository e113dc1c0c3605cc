"""Notifications through a real daemon: every event kind reaches a command route, each
with a stable event id; a route that fails and recovers delivers every event once;
undelivered events survive a kill -9 of the daemon (docs/notifications.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lhost import LogicalHost, wait_for

SINK = r"""#!/bin/sh
# a notification receiver: fails while $1.fail exists, else appends the event
[ -e "$1.fail" ] && { echo "receiver down" >&2; exit 7; }
{ cat; } >> "$1"
printf '%s %s %s\n' "$AJS3_EVENT_ID" "$AJS3_KIND" "$AJS3_UNIT" >> "$1.env"
"""


def sink_route(tmp_path: Path, name: str = "cmd", extra: str = "") -> tuple[Path, str]:
    script = tmp_path / "sink.sh"
    script.write_text(SINK)
    script.chmod(0o755)
    out = tmp_path / f"{name}.jsonl"
    text = f"""
    notify:
      - name: {name}
        kind: command
        command: [{script}, {out}]
        user: root
        backoff: {{first: 0.2, max: 1}}
    {extra}"""
    return out, text


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kinds(path: Path) -> list[str]:
    return [e["kind"] for e in events(path)]


def wait_event(path: Path, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [e for e in events(path) if pred(e)]
        return bool(found)

    wait_for(seen, timeout, f"no such event in {path}: {events(path)}")
    return found[0]


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
