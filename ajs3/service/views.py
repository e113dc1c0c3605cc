"""Read-only views of a logical host's journal: what `ajs3 show` and `ajs3 log` print.

They read the journal directly (SQLite WAL readers never block the daemon), so they
also work while the logical host is stopped; the daemon answers its `show` and `log`
requests (for viewers, who may not read the journal) with the same functions over its
own open journal (:func:`show_in`, :func:`log_path_in`, :func:`read_log`).
"""

from __future__ import annotations

import base64
import errno
import os
import stat
import time
from pathlib import Path
from typing import Any

from ajs3 import datadir as dd
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


def _pick_run(
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
    chosen = _pick_run(journal, target, run, current)
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
        chosen = _pick_run(journal, unit, run)
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
    chosen = _pick_run(journal, unit, run)
    row = journal.conn.execute(
        "SELECT id, status, attempt, exec_host FROM unit_runs WHERE jobnet_run=? AND path=?",
        (chosen.id, unit),
    ).fetchone()
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


def log_path(datadir: Path, key: str, run: int | None, stderr: bool) -> Path:
    journal = Journal.open(datadir, readonly=True)
    try:
        return log_path_in(journal, datadir, key, run, stderr)
    finally:
        journal.close()


def log_path_in(journal: Journal, datadir: Path, key: str, run: int | None, stderr: bool) -> Path:
    """The output file of a unit (``key`` a unit path, in run ``run`` or its latest)
    or of a run id."""
    run_id = key
    if key.startswith("/"):
        chosen = _pick_run(journal, key, run)
        ur = next((u for u in journal.unit_rows(chosen.id) if u["path"] == key), None)
        if ur is None or not ur["run_id"]:
            raise OperationError(f"{key} has not run in run {chosen.id}", code=Code.UNKNOWN_UNIT)
        run_id = str(ur["run_id"])
    elif journal.find_run_id(key) is None:
        raise OperationError(
            f"no run with id {key}",
            code=Code.UNKNOWN_UNIT,
            hint="run ids are shown by `ajs3 show --json`",
        )
    path = dd.jobdir(datadir, run_id) / (dd.STDERR if stderr else dd.STDOUT)
    if not path.exists():
        raise AjsError(f"no output file {path}", code=Code.UNKNOWN_UNIT)
    return path


#: The most output a `log` request returns: its last bytes, up to this many.
LOG_LIMIT = 1024 * 1024


def read_log(path: Path, limit: int = LOG_LIMIT) -> dict[str, Any]:
    """The last ``limit`` bytes of an output file, for the `log` request: base64 in
    ``data``, with the file's size and whether the start was cut.

    The daemon (root) reads a file in a job's directory, which the job's user may
    write: the last component is not followed if it is a link, and only a regular
    file is read (no FIFO to block on, no device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise AjsError(
            f"cannot open output file {path}: {exc.strerror}",
            code=Code.UNSAFE_PATH if exc.errno == errno.ELOOP else Code.UNKNOWN_UNIT,
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AjsError(f"output file {path} is not a regular file", code=Code.UNSAFE_PATH)
        start = max(0, st.st_size - limit)
        data = os.pread(fd, st.st_size - start, start)
    finally:
        os.close(fd)
    return {
        "path": str(path),
        "size": start + len(data),
        "offset": start,
        "truncated": start > 0,
        "data": base64.b64encode(data).decode("ascii"),
    }
