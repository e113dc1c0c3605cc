"""Read-only views of a logical host's journal: what `ajs3 show` prints (a run's
units, why a unit waits, its events).

They read the journal directly (SQLite WAL readers never block the daemon), so they
also work while the logical host is stopped; the daemon answers its `show` and
`events` requests (for viewers, who may not read the journal) with the same functions
over its own open journal (:func:`show_in`, :func:`events_in`). A job's output files
are ajs3.service.joboutput's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ajs3.definitions.units import DefinitionSet
from ajs3.engine import planchanges, runvars, suspend
from ajs3.engine.delays import delays_of
from ajs3.errors import AjsError, Code, OperationError
from ajs3.journal.store import JobnetRun, Journal
from ajs3.model import ENDED_BADLY, FINAL, label_of
from ajs3.schedule import next_run


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


#: The current definitions and their version, when the caller has them in memory (the
#: daemon: reading them from the journal costs a second with 10,000 units).
Current = tuple[int, DefinitionSet]


def _current(journal: Journal, current: Current | None) -> Current:
    return journal.definitions() if current is None else current


def pick_run(
    journal: Journal, target: str | None, run: int | None, current: Current | None = None
) -> JobnetRun:
    if run is not None:
        found = journal.jobnet_run(run)
        if found is None:
            raise OperationError(
                f"no jobnet run {run}", code=Code.UNKNOWN_UNIT, hint="list runs with `ajs3 show`"
            )
        return found
    assert target is not None
    runs = journal.jobnet_runs(containing=target, limit=1)
    if not runs:
        _, defs = _current(journal, current)
        if target in defs.jobnets:
            raise OperationError(
                f"{target} has not run yet",
                code=Code.UNKNOWN_UNIT,
                hint=f"register it with `ajs3 entry {target}`",
            )
        raise OperationError(
            f"no jobnet {target!r}",
            code=Code.UNKNOWN_JOBNET,
            hint="see the defined jobnets with `ajs3 show`",
        )
    return runs[0]


def unit_row(journal: Journal, run: int, path: str) -> Any:
    """The unit run of ``path`` in jobnet run ``run`` (an index lookup), or None."""
    return journal.conn.execute(
        "SELECT * FROM unit_runs WHERE jobnet_run=? AND path=?", (run, path)
    ).fetchone()


def _unit_row(row: dict[str, Any], depth: int) -> dict[str, Any]:
    """A unit run as shown; statuses and kinds as stored, even ones this ajs3 does not
    know (a newer ajs3 wrote them)."""
    return {**row, "label": label_of(row["status"]), "depth": depth}


def show(datadir: Path, target: str | None, run: int | None, all_runs: bool) -> dict[str, Any]:
    """What `ajs3 show --json` prints, read from the journal of ``datadir``."""
    journal = Journal.open(datadir, readonly=True)
    try:
        return show_in(journal, target, run, all_runs)
    finally:
        journal.close()


def show_in(
    journal: Journal,
    target: str | None,
    run: int | None,
    all_runs: bool,
    current: Current | None = None,
) -> dict[str, Any]:
    """What `ajs3 show --json` prints, read from an open journal (the daemon's own for
    the `show` request, with its definitions in memory as ``current``)."""
    if target is None and run is None:
        version, defs = _current(journal, current)
        active = set(journal.active_jobnet_runs())
        runs = journal.jobnet_runs(limit=500 if all_runs else 50)

        def entry(r: JobnetRun) -> dict[str, Any]:
            root = journal.root_status(r)
            return {
                "run": r.id,
                "jobnet": r.jobnet,
                "scheduled_at": r.scheduled_at,
                "status": root or "?",
                "label": label_of(root) if root else "?",
                "active": r.id in active,
            }

        listing = [entry(r) for r in runs]
        jobnets = []
        now = time.time()
        suspended = suspend.every(journal)
        plan = planchanges.load(journal)
        for p, unit in sorted(defs.jobnets.items()):
            last = journal.jobnet_runs(jobnet=p, limit=1)
            upcoming = next_run(unit, now)
            jobnets.append(
                {
                    "jobnet": p,
                    "latest": entry(last[0]) if last else None,
                    "next_run": upcoming.due if upcoming else None,
                    "suspended": suspended[p].to_dict() if p in suspended else None,
                    "plan_changes": planchanges.upcoming(plan, p, now),
                }
            )
        return {
            "definitions_version": version,
            "jobnets": jobnets,
            "runs": listing if all_runs else [e for e in listing if e["active"]],
        }
    chosen = pick_run(journal, target, run, current)
    rows = journal.unit_rows(chosen.id)
    base = chosen.jobnet.rstrip("/").count("/")
    delays = delays_of(journal.conn, chosen.id)
    units = [
        {**_unit_row(u, u["path"].count("/") - base), "delays": delays.get(u["id"], [])}
        for u in rows
    ]
    return {
        "run": chosen.id,
        "jobnet": chosen.jobnet,
        "scheduled_at": chosen.scheduled_at,
        "units": units,
        "vars": runvars.sources(journal, chosen.id),
    }


def render_show(data: dict[str, Any]) -> str:
    if "units" not in data:
        lines = [f"definitions version {data['definitions_version']}"]
        for j in data["jobnets"]:
            latest = j["latest"]
            state = f"run {latest['run']}: {latest['label']}" if latest else "never run"
            nxt = f"next {_fmt_time(j['next_run'])}" if j.get("next_run") else ""
            if j.get("suspended"):
                held = j["suspended"]
                nxt = f"SUSPENDED since {_fmt_time(held['since'])} by {held['user']}"
            lines.append(f"  {j['jobnet']:<40} {state:<36} {nxt}")
            for c in j.get("plan_changes", []):
                lines.append("    plan: " + _plan_line(c))
        if data["runs"]:
            lines.append("runs:")
            for r in data["runs"]:
                lines.append(f"  {r['run']:>6}  {r['jobnet']:<40} {r['label']}")
        return "\n".join(lines)
    hosts = any(u.get("exec_host") for u in data["units"])  # docs/exechosts.md
    lines = [
        f"run {data['run']} of {data['jobnet']}",
        f"{'UNIT':<44} {'STATUS':<26} {'TRY':>3} {'EXIT':>4}  {'START':<14} {'END':<14}"
        + (" HOST" if hosts else ""),
    ]
    for u in data["units"]:
        name = "  " * u["depth"] + (u["path"].rsplit("/", 1)[-1] or "/")
        if u["depth"] == 0:
            name = u["path"]
        exit_code = "-" if u["exit_code"] is None else str(u["exit_code"])
        if u["signal"] is not None:
            exit_code = f"s{u['signal']}"
        label = u["label"] + "".join(f" [{d.replace('_', ' ')}]" for d in u.get("delays", []))
        lines.append(
            f"{name:<44} {label:<26} {u['attempt'] or '-':>3} {exit_code:>4}  "
            f"{_fmt_time(u['started_at']):<14} {_fmt_time(u['ended_at']):<14}"
            + (f" {u.get('exec_host') or '-'}" if hosts else "")
        )
    for v in data.get("vars", []):
        lines.append(f"value {v['name']}={v['value']}  (from {v['source'] or 'entry'})")
    return "\n".join(lines)


def _plan_line(c: dict[str, Any]) -> str:
    if c["due"] is None:
        what = f"extra run at {_fmt_time(c['at'])}"
    elif c["at"] is None:
        what = f"run of {_fmt_time(c['due'])} skipped"
    else:
        what = f"run of {_fmt_time(c['due'])} moved to {_fmt_time(c['at'])}"
    why = f": {c['reason']}" if c["reason"] else ""
    return f"{what} (by {c['user']}{why})"


def _about(run: int, unit: str, status: str) -> dict[str, Any]:
    """What an answer about one unit of a run starts with."""
    return {"run": run, "unit": unit, "status": status, "label": label_of(status)}


def why_offline(datadir: Path, run: int | None, unit: str) -> dict[str, Any]:
    journal = Journal.open(datadir, readonly=True)
    try:
        chosen = pick_run(journal, unit, run)
        for ur in journal.unit_rows(chosen.id):
            if ur["path"] == unit:
                return {
                    **_about(chosen.id, unit, ur["status"]),
                    "reason": ur["reason"],
                    "checks": [],
                    "note": "the logical host is not running; nothing will start",
                }
        raise OperationError(f"no unit {unit!r} in run {chosen.id}", code=Code.UNKNOWN_UNIT)
    finally:
        journal.close()


def render_why(data: dict[str, Any]) -> str:
    lines = [f"{data['unit']} (run {data['run']}): {data['label']}"]
    if data.get("reason"):
        lines.append(f"  last change: {data['reason']}")
    for c in data.get("checks", []):
        mark = "ok " if c["passed"] else "NO "
        lines.append(f"  {mark} {c['rule']:<26} {c['reason']}")
    if data.get("note"):
        lines.append(f"  note: {data['note']}")
    return "\n".join(lines)


#: The most status changes an `events` answer holds: the newest (a unit retried or
#: rerun without end has more, and ``truncated`` says so).
MAX_EVENTS = 500


def events(datadir: Path, run: int | None, unit: str) -> dict[str, Any]:
    journal = Journal.open(datadir, readonly=True)
    try:
        return events_in(journal, run, unit)
    finally:
        journal.close()


def events_in(journal: Journal, run: int | None, unit: str) -> dict[str, Any]:
    """A unit's status changes in a run (its latest without ``run``), oldest first:
    when, from what to what, which attempt and run id, the reason code and text, as
    the journal's ``events`` hold them; with the unit's status and execution host."""
    chosen = pick_run(journal, unit, run)
    row = unit_row(journal, chosen.id, unit)
    if row is None:
        raise OperationError(
            f"no unit {unit!r} in run {chosen.id}",
            code=Code.UNKNOWN_UNIT,
            hint=f"see the run's units with `ajs3 show --run {chosen.id}`",
        )
    found = journal.conn.execute(
        "SELECT at, epoch, attempt, run_id, old, new, code, reason FROM events"
        " WHERE unit_run=? ORDER BY id DESC LIMIT ?",
        (row["id"], MAX_EVENTS + 1),
    ).fetchall()
    changes = [
        {
            "at": e["at"],
            "epoch": e["epoch"],
            "attempt": e["attempt"],
            "run_id": e["run_id"],
            "old": e["old"],
            "new": e["new"],
            "label": label_of(e["new"]),
            "code": e["code"],
            "reason": e["reason"],
        }
        for e in reversed(found[:MAX_EVENTS])
    ]
    return {
        **_about(chosen.id, unit, row["status"]),
        "attempt": row["attempt"],
        "exec_host": row["exec_host"],
        "events": changes,
        "truncated": len(found) > MAX_EVENTS,
    }


def render_events(data: dict[str, Any]) -> str:
    where = f" on {data['exec_host']}" if data.get("exec_host") else ""
    lines = [f"{data['unit']} (run {data['run']}): {data['label']}{where}"]
    if data["truncated"]:
        lines.append(f"  (the newest {len(data['events'])} changes)")
    for e in data["events"]:
        code = f" [{e['code']}]" if e["code"] else ""
        lines.append(
            f"  {_fmt_time(e['at'])}  try {e['attempt'] or '-':>2}  {e['old']} -> {e['new']}"
            f"{code}  {e['reason']}"
        )
    return "\n".join(lines)


def wait_run(datadir: Path, run: int, timeout: float | None) -> dict[str, Any]:
    """Wait until a jobnet run's root unit has ended (polls the journal, read-only)."""
    end = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    journal = Journal.open(datadir, readonly=True)
    try:
        chosen = journal.jobnet_run(run)
        if chosen is None:
            raise OperationError(f"no jobnet run {run}", code=Code.UNKNOWN_UNIT)
        while True:
            status = journal.root_status(chosen) or "?"
            if status in FINAL:
                return {
                    "run": run,
                    "status": status,
                    "label": label_of(status),
                    "abnormal": status in ENDED_BADLY,
                }
            if end is not None and time.monotonic() > end:
                raise AjsError(
                    f"run {run} has not ended within {timeout:g} s (now {label_of(status)})",
                    code=Code.BAD_STATE,
                )
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)
    finally:
        journal.close()
