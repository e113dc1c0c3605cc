"""Jobnet connectors with a real daemon: a root jobnet waits for the matching run of
another one to end (docs/definitions.md, Jobnet connectors), across a kill -9 too."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lhost import wait_for


def gate(flag: Path, code: int = 0) -> str:
    return f"while [ ! -e {flag} ]; do sleep 0.05; done; exit {code}"


def definitions(flag: Path, ledger: Path, *, code: int = 0, match: str = "scheduling-day") -> str:
    return f"""
        group: /cn
        jobnets:
          - name: target
            units:
              - {{name: work, script: '{gate(flag, code)}'}}
          - name: waiter
            units:
              - {{name: first, command: [/bin/true]}}
              - {{name: link, type: connector, waits_for: /cn/target, match: {match},
                  after: [first]}}
              - {{name: next, after: [link], script: 'echo next >> {ledger}'}}
              - {{name: cleanup, recovery: true, after: [link],
                  script: 'echo cleanup >> {ledger}'}}
        """


def unit(host: Any, run: int, path: str) -> dict[str, Any]:
    units: dict[str, dict[str, Any]] = host.units(run)
    return units[path]


def why(host: Any, run: int, path: str) -> dict[str, str]:
    data = host.json("show", "--why", path, "--run", str(run))
    return {c["rule"]: c["reason"] for c in data["checks"] if not c["passed"]}


def waits(host: Any, run: int) -> str:
    """The reason the connector of ``run`` gives while it waits, once it does."""
    found = wait_for(
        lambda: why(host, run, "/cn/waiter/link").get("connection"), 30, "the connector to wait"
    )
    return str(found)


def today() -> str:
    # the jobnets have no schedule: their scheduling day is the date in the daemon's
    # zone, which is this process's (same machine, same TZ)
    return datetime.now().astimezone().date().isoformat()


def test_connector_ends_when_target_ends_normally(lhost: Any, tmp_path: Path) -> None:
    flag, ledger = tmp_path / "go", tmp_path / "ledger"
    lhost.define(definitions(flag, ledger))
    target = lhost.entry("/cn/target")
    waiter = lhost.entry("/cn/waiter")
    reason = waits(lhost, waiter)
    assert f"waits for /cn/target run of {today()} to end (run {target}" in reason
    time.sleep(0.5)  # every chance to (wrongly) go on
    assert unit(lhost, waiter, "/cn/waiter/link")["status"] == "waiting"
    assert unit(lhost, waiter, "/cn/waiter/next")["status"] == "waiting"
    assert not ledger.exists()
    text = lhost.run("show", "--why", "/cn/waiter/link", "--run", str(waiter)).stdout
    assert "connection" in text and "/cn/target" in text

    flag.touch()
    done = lhost.wait(waiter)
    assert done["units"][0]["status"] == "ended_normally"
    link = unit(lhost, waiter, "/cn/waiter/link")
    assert link["status"] == "ended_normally"
    root = unit(lhost, target, "/cn/target")
    assert root["status"] == "ended_normally"
    assert link["ended_at"] >= root["ended_at"]
    assert ledger.read_text() == "next\n"


def test_connector_ends_abnormally_when_target_does(lhost: Any, tmp_path: Path) -> None:
    flag, ledger = tmp_path / "go", tmp_path / "ledger"
    lhost.define(definitions(flag, ledger, code=3))
    target = lhost.entry("/cn/target")
    waiter = lhost.entry("/cn/waiter")
    waits(lhost, waiter)
    flag.touch()
    done = lhost.wait(waiter)
    assert unit(lhost, target, "/cn/target")["status"] == "ended_abnormally"
    assert done["units"][0]["status"] == "ended_abnormally"
    assert unit(lhost, waiter, "/cn/waiter/link")["status"] == "ended_abnormally"
    assert unit(lhost, waiter, "/cn/waiter/next")["status"] == "not_executed"
    assert unit(lhost, waiter, "/cn/waiter/cleanup")["status"] == "ended_normally"
    assert ledger.read_text() == "cleanup\n"  # the recovery unit after it ran


def test_latest_takes_an_earlier_day_same_day_waits_for_its_own(lhost: Any, tmp_path: Path) -> None:
    flag, ledger = tmp_path / "go", tmp_path / "ledger"
    flag.touch()  # the target's runs end at once
    text = (
        definitions(flag, ledger)
        + """
          - name: latest
            units:
              - {name: link, type: connector, waits_for: /cn/target, match: latest}
        """
    )
    lhost.define(text)
    # a run of the target of two days ago, ended
    earlier = datetime.fromtimestamp(time.time() - 2 * 86400, UTC).isoformat()
    old = lhost.entry("/cn/target", "--at", earlier)
    lhost.wait(old)
    latest = lhost.entry("/cn/latest")
    done = lhost.wait(latest)
    assert done["units"][0]["status"] == "ended_normally"
    link = unit(lhost, latest, "/cn/latest/link")
    assert link["status"] == "ended_normally"
    assert f"run {old}," in link["reason"]

    same_day = lhost.entry("/cn/waiter")
    reason = waits(lhost, same_day)
    assert f"waits for /cn/target run of {today()} to be registered" in reason
    time.sleep(0.5)
    assert unit(lhost, same_day, "/cn/waiter/link")["status"] == "waiting"
    todays = lhost.entry("/cn/target")
    done = lhost.wait(same_day)
    assert done["units"][0]["status"] == "ended_normally"
    assert f"run {todays}," in unit(lhost, same_day, "/cn/waiter/link")["reason"]
    assert ledger.read_text() == "next\n"


def test_connector_waits_across_kill_9_and_hot_start(make_lhost: Any, tmp_path: Path) -> None:
    host = make_lhost("cnkill")
    host.start()
    flag, ledger = tmp_path / "go", tmp_path / "ledger"
    flag.touch()
    host.define(definitions(flag, ledger))
    target = host.entry("/cn/target", "--hold")
    waiter = host.entry("/cn/waiter")
    waits(host, waiter)
    host.crash()  # SIGSTOP, then SIGKILL: the daemon can not react
    host.start("hot")
    reason = waits(host, waiter)
    assert f"to end (run {target}" in reason
    assert unit(host, waiter, "/cn/waiter/link")["status"] == "waiting"
    host.run("release", "/cn/target", "--run", str(target))
    done = host.wait(waiter)
    assert done["units"][0]["status"] == "ended_normally"
    assert ledger.read_text() == "next\n"
    rows = host.journal_query(
        "SELECT e.new FROM events e JOIN unit_runs u ON u.id = e.unit_run"
        " WHERE u.jobnet_run = ? AND u.path = ? ORDER BY e.id",
        (waiter, "/cn/waiter/link"),
    )
    assert [r[0] for r in rows][-2:] == ["running", "ended_normally"]
    assert [r[0] for r in rows].count("ended_normally") == 1
