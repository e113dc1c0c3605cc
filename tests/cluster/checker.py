#!/usr/bin/python3
"""The failover checker: from a ledger and a journal, prove nothing was lost or run twice.

    checker.py --ledger LH.ledger --journal journal.db [--lhost LH] [--final] [--json]
    checker.py --journal journal.db --dump        # the journal as JSON (Journal.to_json)

Library: `read_ledger(text)`, `read_journal(path)`, `check(ledger, journal, ...)`
returning a Report (problems + a summary). Exit status of the CLI: 0 clean, 1 problems.

The ledger is what the jobs themselves wrote outside every node (see workload.py for
its lines); the journal is the logical host's SQLite journal. Rules checked (docs/design.md
rules 1-5, issue 5):

  double-start         two `start` lines for one run id (a run ran twice)
  unrecorded-start     a job started that the journal never recorded (rule 1)
  attempt-mismatch     the ledger's attempt or epoch differs from the journal's
  rerun-not-allowed    a later attempt started without the policy allowing it
  rerun-same-epoch     a rerun that did not come after a failover/restart
  judge-check          a judge check with a wrong run id, a wrong verdict, a verdict
                       not followed, or an in-doubt judge job without its check
  unknown-not-held     a unit after an `unknown` one started before the release, or
                       the jobnet ended before it
  unknown-not-released an `unknown` unit left undecided (final check only)
  exit-code            a run the journal says ended has no exit code, or another one
                       than the job's own `end` line
  ran-not-recorded     the journal says a job ended but its `start`/`end` is missing
  lost                 an entered jobnet run is missing from the journal
  unfinished           a run still not ended (final check only)
  integrity            PRAGMA integrity_check is not ok
  epoch-order          epochs not increasing
  stale-epoch-write    a journal event of an older epoch written after a newer began
  stale-epoch-start    a job of an older epoch started after a newer epoch began
  zombie               a job of an older epoch on another node still wrote after a
                       newer epoch began (its node was not fenced); a job on an
                       execution host (unit_runs.exec_host) is exempt: it is meant to
                       outlive its owner and be re-adopted
  malformed            a ledger line that can not be read

Read the ledger *before* the journal (intent is journaled before launch, so every
start in an earlier ledger snapshot is in a later journal snapshot); pass the time the
ledger was read as `ledger_read_at` so that ends recorded after it are not expected.
Only the standard library: it also runs on the nodes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The engine's statuses and reason codes (ajs3.model: Status, FINAL, ReasonCode,
# IN_DOUBT), spelled out here because the checker runs with the standard library alone;
# test_checker.py checks that they agree. The checker reads the codes of the journal's
# events (events.code), never the wording of their messages.
FINAL = {
    "ended_normally",
    "ended_warning",
    "ended_abnormally",
    "killed",
    "failed_to_start",
    "not_executed",
    "interrupted",
}
ENDED_BY_EXIT = {"ended_normally", "ended_warning", "ended_abnormally"}
#: an attempt was recorded but its job never started (it starts again)
NEVER_STARTED = "never-started"
#: a run in doubt, decided by its job's recovery policy
IN_DOUBT = {
    "supervisor-died",
    "in-doubt-after-failover",
    "killed-by-warm-start",
    "start-record-held",
    "exec-host-lost",
}
RETRY = "retry"
#: an operator said how a run in doubt ended (release --as normal|abnormal)
DECIDED_BY_OPERATOR = "decided-by-operator"


# --------------------------------------------------------------------------- ledger


@dataclass
class Job:
    """A `start`, `end` or `check` line."""

    kind: str
    run_id: str
    value: int  # attempt (start/end) or verdict (check)
    epoch: int
    node: str
    unit: str
    jobnet_run: int
    time: float
    rc: int | None = None
    line: int = 0


@dataclass
class Ledger:
    starts: list[Job] = field(default_factory=list)
    ends: list[Job] = field(default_factory=list)
    checks: list[Job] = field(default_factory=list)
    entries: list[tuple[str, str, int, str, float]] = field(default_factory=list)
    releases: list[tuple[str, int, str, str, float]] = field(default_factory=list)
    failovers: list[tuple[str, str, str, float]] = field(default_factory=list)
    malformed: list[tuple[int, str]] = field(default_factory=list)


def read_ledger(text: str) -> Ledger:
    led = Ledger()
    for no, raw in enumerate(text.splitlines(), start=1):
        f = raw.split()
        if not f:
            continue
        try:
            if f[0] in ("start", "end", "check") and len(f) == (9 if f[0] == "end" else 8):
                job = Job(
                    f[0],
                    f[1],
                    int(f[2]),
                    int(f[3]),
                    f[4],
                    f[5],
                    int(f[6]),
                    float(f[7]),
                    int(f[8]) if f[0] == "end" else None,
                    no,
                )
                {"start": led.starts, "end": led.ends, "check": led.checks}[f[0]].append(job)
            elif f[0] == "entry" and len(f) == 6:
                led.entries.append((f[1], f[2], int(f[3]), f[4], float(f[5])))
            elif f[0] == "release" and len(f) == 6:
                led.releases.append((f[1], int(f[2]), f[3], f[4], float(f[5])))
            elif f[0] == "failover" and len(f) == 5:
                led.failovers.append((f[1], f[2], f[3], float(f[4])))
            else:
                led.malformed.append((no, raw))
        except ValueError:
            led.malformed.append((no, raw))
    return led


# --------------------------------------------------------------------------- journal


@dataclass
class Journal:
    integrity: str
    epochs: list[dict[str, Any]]
    runs: dict[int, dict[str, Any]]
    units: dict[int, dict[str, Any]]
    events: list[dict[str, Any]]
    #: def_version -> unit path -> {"kind", "on_failover", "after", "parent"}
    defs: dict[int, dict[str, dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Journal:
        return cls(
            data["integrity"],
            data["epochs"],
            {int(k): v for k, v in data["runs"].items()},
            {int(k): v for k, v in data["units"].items()},
            data["events"],
            {int(k): v for k, v in data["defs"].items()},
        )


def only_group(journal: Journal, group: str) -> Journal:
    """The part of ``journal`` that is the runs of the jobnets under ``group`` (a test's
    own jobnets, beside other tests' in one logical host's journal); epochs and
    definitions whole."""
    runs = {k: r for k, r in journal.runs.items() if r["jobnet"].startswith(group + "/")}
    units = {k: u for k, u in journal.units.items() if u["jobnet_run"] in runs}
    events = [e for e in journal.events if e["unit_run"] in units]
    return Journal(journal.integrity, journal.epochs, runs, units, events, journal.defs)


def _flatten(unit: dict[str, Any], parent: str, out: dict[str, dict[str, Any]]) -> None:
    out[unit["path"]] = {
        "kind": unit.get("kind"),
        "on_failover": unit.get("on_failover"),
        "after": list(unit.get("after") or []),
        "parent": parent,
        "name": unit.get("name"),
    }
    for child in unit.get("units") or []:
        _flatten(child, unit["path"], out)


def read_journal(path: str | Path, *, integrity: bool = True) -> Journal:
    """Read a journal without writing to it (a live one is fine: WAL readers don't block)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        with conn:  # one read transaction: a consistent snapshot
            conn.execute("BEGIN")
            ok = (
                ";".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
                if integrity
                else "not checked"
            )
            epochs = [dict(r) for r in conn.execute("SELECT * FROM epochs ORDER BY epoch")]
            runs = {
                r["id"]: dict(r)
                for r in conn.execute(
                    "SELECT id, jobnet, def_version, scheduled_at, registered_at, interrupted "
                    "FROM jobnet_runs"
                )
            }
            units = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM unit_runs")}
            events = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
            defs: dict[int, dict[str, dict[str, Any]]] = {}
            for r in conn.execute("SELECT version, content FROM definitions"):
                flat: dict[str, dict[str, Any]] = {}
                for root in json.loads(r["content"]).get("jobnets", {}).values():
                    _flatten(root, "", flat)
                defs[r["version"]] = flat
    finally:
        conn.close()
    return Journal(ok, epochs, runs, units, events, defs)


# --------------------------------------------------------------------------- checking


@dataclass
class Problem:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.subject}: {self.message}"


@dataclass
class Report:
    lhost: str
    problems: list[Problem]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        head = (
            f"{self.lhost}: {'OK' if self.ok else f'{len(self.problems)} PROBLEM(S)'} "
            f"{json.dumps(self.summary, sort_keys=True)}"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def _code(ev: dict[str, Any]) -> str:
    return str(ev.get("code") or "")  # '' in journals written before schema version 2


def _in_doubt(ev: dict[str, Any]) -> bool:
    return ev["old"] == "running" and _code(ev) in IN_DOUBT


def _in_doubt_rerun(ev: dict[str, Any]) -> bool:
    """A run in doubt that its policy (rerun, or judge's check) sent to run again."""
    return _in_doubt(ev) and ev["new"] == "waiting"


def check(
    ledger: Ledger,
    journal: Journal,
    *,
    lhost: str = "",
    final: bool = False,
    ledger_read_at: float | None = None,
) -> Report:
    """Every rule of the module docstring; final=True once the workload has drained."""
    P: list[Problem] = []

    def bad(rule: str, subject: str, message: str) -> None:
        P.append(Problem(rule, subject, message))

    read_at = ledger_read_at if ledger_read_at is not None else time.time()

    for no, raw in ledger.malformed:
        bad("malformed", f"ledger line {no}", repr(raw[:200]))
    if journal.integrity != "ok":
        bad("integrity", "journal", journal.integrity[:300])

    # ---- journal indexes
    epochs = {e["epoch"]: e for e in journal.epochs}
    order = sorted(epochs)
    for a, b in itertools.pairwise(order):
        if not epochs[b]["started_at"] > epochs[a]["started_at"]:
            bad("epoch-order", f"epoch {b}", f"began no later than epoch {a}")

    def next_epoch_start(e: int) -> float | None:
        later = [epochs[x]["started_at"] for x in order if x > e]
        return min(later) if later else None

    run_of: dict[str, tuple[int, int]] = {}  # run id -> (unit_run id, attempt)
    events_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ev in journal.events:
        events_of[ev["unit_run"]].append(ev)
        if ev["run_id"]:
            run_of.setdefault(ev["run_id"], (ev["unit_run"], ev["attempt"]))
        e = ev["epoch"]
        if e not in epochs:
            bad("stale-epoch-write", f"event {ev['id']}", f"epoch {e} is not in the epochs table")
            continue
        nxt = next_epoch_start(e)
        if nxt is not None and ev["at"] >= nxt:
            bad(
                "stale-epoch-write",
                f"event {ev['id']}",
                f"written at {ev['at']:.3f} by epoch {e}, after a newer epoch began at "
                f"{nxt:.3f} ({ev['old']} -> {ev['new']}, {ev['reason']!r})",
            )
    for uid, u in journal.units.items():
        if u["run_id"]:
            run_of.setdefault(u["run_id"], (uid, u["attempt"]))

    def unit_def(uid: int) -> dict[str, Any]:
        u = journal.units[uid]
        run = journal.runs.get(u["jobnet_run"], {})
        return journal.defs.get(run.get("def_version", -1), {}).get(u["path"], {})

    def subject(uid: int, run_id: str = "") -> str:
        u = journal.units[uid]
        return f"run {u['jobnet_run']} {u['path']}" + (f" ({run_id})" if run_id else "")

    def on_exec_host(rid: str, node: str) -> bool:
        """Whether the journal says run id ``rid`` ran on execution host ``node``."""
        return rid in run_of and journal.units[run_of[rid][0]].get("exec_host") == node

    # ---- ledger lines per run id
    starts: dict[str, list[Job]] = defaultdict(list)
    for s in ledger.starts:
        starts[s.run_id].append(s)
    ends: dict[str, list[Job]] = defaultdict(list)
    for e_ in ledger.ends:
        ends[e_.run_id].append(e_)
    checks: dict[str, list[Job]] = defaultdict(list)
    for c in ledger.checks:
        checks[c.run_id].append(c)

    # ---- double runs, runs the journal never recorded, epochs of the jobs
    for rid, ss in starts.items():
        if len(ss) > 1:
            where = ", ".join(f"{s.node} epoch {s.epoch} line {s.line}" for s in ss)
            bad("double-start", f"{ss[0].unit} ({rid})", f"started {len(ss)} times: {where}")
        s = ss[0]
        if rid not in run_of:
            bad(
                "unrecorded-start",
                f"{s.unit} ({rid})",
                f"started on {s.node} (line {s.line}) but the journal has no such run",
            )
            continue
        uid, attempt = run_of[rid]
        if journal.units[uid]["path"] != s.unit or attempt != s.value:
            bad(
                "attempt-mismatch",
                subject(uid, rid),
                f"the job says {s.unit} attempt {s.value}, the journal "
                f"{journal.units[uid]['path']} attempt {attempt}",
            )
        for s in ss:
            ep = epochs.get(s.epoch)
            if ep is None:
                bad("attempt-mismatch", subject(uid, rid), f"epoch {s.epoch} unknown")
                continue
            if ep["node"] != s.node and not on_exec_host(rid, s.node):
                bad(
                    "attempt-mismatch",
                    subject(uid, rid),
                    f"started on {s.node} under epoch {s.epoch}, which is {ep['node']}'s",
                )
            nxt = next_epoch_start(s.epoch)
            if nxt is not None and s.time >= nxt:
                bad(
                    "stale-epoch-start",
                    subject(uid, rid),
                    f"started by epoch {s.epoch} on {s.node} at {s.time:.3f}, after a newer "
                    f"epoch began at {nxt:.3f}",
                )

    # Lines of an old epoch written after a newer one began are fine only when every
    # epoch since ran on the same node (a local daemon restart re-adopts its jobs); else
    # the writer's node was still alive after a failover: not fenced.
    # A job on an execution host outlives its owner's node by design (issue 16): the new
    # owner re-adopts it, and what keeps a former owner out is the execution host's epoch
    # fence, shown by stale-epoch-start above.
    for line in [*ledger.ends, *ledger.checks]:
        if line.kind == "check":
            continue  # a check runs in the new epoch by design; its epoch is checked below
        if on_exec_host(line.run_id, line.node):
            continue
        later = [x for x in order if x > line.epoch and epochs[x]["started_at"] <= line.time]
        if any(epochs[x]["node"] != line.node for x in later):
            bad(
                "zombie",
                f"{line.unit} ({line.run_id})",
                f"{line.kind} line {line.line} of epoch {line.epoch} from {line.node} at "
                f"{line.time:.3f}, after epoch {later[-1]} began on "
                f"{epochs[later[-1]]['node']}",
            )

    # ---- per job: attempts, policies, exit codes
    attempts_started: dict[int, dict[int, Job]] = defaultdict(dict)
    for rid, ss in starts.items():
        if rid in run_of:
            uid, attempt = run_of[rid]
            attempts_started[uid][attempt] = ss[0]
    # run ids of each unit run per attempt
    rid_of: dict[tuple[int, int], str] = {}
    for rid, (uid, attempt) in run_of.items():
        rid_of[(uid, attempt)] = rid

    stats: Counter[str] = Counter()
    in_doubt: Counter[str] = Counter()
    for uid, u in journal.units.items():
        if u["kind"] != "job":
            continue
        stats[u["status"]] += 1
        d = unit_def(uid)
        policy = d.get("on_failover", "fail")
        evs = events_of.get(uid, [])
        for ev in evs:
            if _in_doubt(ev):
                in_doubt[f"{policy}->{ev['new']}"] += 1
        reruns = {ev["attempt"]: ev for ev in evs if _in_doubt_rerun(ev)}
        retries = sum(1 for ev in evs if _code(ev) == RETRY and ev["new"] == "waiting")
        started = attempts_started.get(uid, {})
        for attempt in sorted(started):
            if attempt <= 1:
                continue
            s = started[attempt]
            prev = reruns.get(attempt - 1)
            if prev is None:
                if retries:
                    continue
                # Rule 1's other side: an attempt recorded but never started (its node
                # died before the supervisor recorded a start) is started again, and
                # that is fine only if the earlier attempt really left no trace.
                never = any(
                    ev["attempt"] == attempt - 1 and _code(ev) == NEVER_STARTED for ev in evs
                )
                if never and (attempt - 1) not in started:
                    continue
                if never:
                    bad(
                        "double-start",
                        subject(uid, s.run_id),
                        f"attempt {attempt - 1} was declared never started, but its job "
                        f"wrote a start line on {started[attempt - 1].node}",
                    )
                    continue
                bad(
                    "rerun-not-allowed",
                    subject(uid, s.run_id),
                    f"attempt {attempt} started on {s.node} but nothing allowed attempt "
                    f"{attempt - 1} to run again (policy {policy})",
                )
                continue
            if policy not in ("rerun", "judge"):
                bad(
                    "rerun-not-allowed",
                    subject(uid, s.run_id),
                    f"policy {policy} yet the journal reran it: {prev['reason']!r}",
                )
            before = started.get(attempt - 1)
            if before is not None and not s.epoch > before.epoch:
                bad(
                    "rerun-same-epoch",
                    subject(uid, s.run_id),
                    f"attempt {attempt} in epoch {s.epoch}, attempt {attempt - 1} in "
                    f"epoch {before.epoch}: a rerun only follows a failover or restart",
                )
        # judge: every in-doubt decision has its check, with this run id and its verdict
        for ev in evs:
            if policy != "judge" or not _in_doubt(ev):
                continue
            rid = ev["run_id"] or rid_of.get((uid, ev["attempt"]), "")
            cs = checks.get(rid, [])
            if not cs:
                bad(
                    "judge-check",
                    subject(uid, rid),
                    f"the journal says {ev['reason']!r} but no check ran with run id {rid}",
                )
                continue
            want = {0: "ended_normally", 1: "waiting"}.get(cs[-1].value, "ended_abnormally")
            if ev["new"] != want:
                bad(
                    "judge-check",
                    subject(uid, rid),
                    f"check said {cs[-1].value}, the journal made it {ev['new']}",
                )
            if (
                cs[-1].value == 0
                and (uid, ev["attempt"] + 1) in rid_of
                and rid_of[(uid, ev["attempt"] + 1)] in starts
            ):
                bad("judge-check", subject(uid, rid), "check said done, yet it ran again")
            if cs[-1].value == 1 and final and ev["attempt"] + 1 not in started:
                bad("judge-check", subject(uid, rid), "check said rerun, but it never ran again")
        # exit codes (unless a check or an operator decided how it ended)
        last = _code(evs[-1]) if evs else ""
        if u["status"] in ENDED_BY_EXIT and last not in IN_DOUBT | {DECIDED_BY_OPERATOR}:
            if u["exit_code"] is None and u["signal"] is None:
                bad(
                    "exit-code",
                    subject(uid, u["run_id"] or ""),
                    f"{u['status']} without an exit code ({u['reason']!r})",
                )
            elif u["run_id"] and (u["ended_at"] or 0) < read_at - 0.5:
                if u["run_id"] not in starts:
                    bad(
                        "ran-not-recorded",
                        subject(uid, u["run_id"]),
                        f"the journal says {u['status']} (exit {u['exit_code']}), the job never "
                        "wrote its start",
                    )
                es = ends.get(u["run_id"], [])
                if u["signal"] is None and not es:
                    bad(
                        "ran-not-recorded",
                        subject(uid, u["run_id"]),
                        f"the journal says it exited {u['exit_code']}, the job never wrote its end",
                    )
                elif es and u["signal"] is None and es[-1].rc != u["exit_code"]:
                    bad(
                        "exit-code",
                        subject(uid, u["run_id"]),
                        f"the job ended with {es[-1].rc}, the journal says {u['exit_code']}",
                    )
        if final and u["status"] not in FINAL:
            bad(
                "unfinished" if u["status"] != "unknown" else "unknown-not-released",
                subject(uid, u["run_id"] or ""),
                f"still {u['status']} ({u['reason']!r})",
            )

    # checks whose run id names no judge job in doubt
    for rid, cs in checks.items():
        if rid not in run_of:
            bad(
                "judge-check",
                f"{cs[0].unit} ({rid})",
                "a check ran for a run id the journal does not know",
            )
            continue
        uid, _ = run_of[rid]
        if unit_def(uid).get("on_failover") != "judge" or not any(
            _in_doubt(ev) and ev["run_id"] == rid for ev in events_of.get(uid, [])
        ):
            bad("judge-check", subject(uid, rid), "a check ran but the journal did not use it")
        for c in cs:
            truth = any(e_.time < c.time for e_ in ends.get(rid, []))
            if (c.value == 0) != truth:
                bad(
                    "judge-check",
                    subject(uid, rid),
                    f"verdict {c.value} but the job {'did' if truth else 'did not'} write its end",
                )

    # ---- unknown: nothing after it before the release; the jobnet waited
    releases = {(r[1], r[2]): r[4] for r in ledger.releases}
    for uid, u in journal.units.items():
        evs = events_of.get(uid, [])
        if not any(ev["new"] == "unknown" for ev in evs):
            continue
        released = releases.get((u["jobnet_run"], u["path"]))
        d = unit_def(uid)
        run_defs = journal.defs.get(journal.runs[u["jobnet_run"]]["def_version"], {})
        succ = {
            p
            for p, x in run_defs.items()
            if x["parent"] == d.get("parent") and d.get("name") in x["after"]
        }
        for vid, v in journal.units.items():
            if v["jobnet_run"] != u["jobnet_run"] or v["path"] not in succ:
                continue
            for (xuid, _), rid in rid_of.items():
                if xuid != vid or rid not in starts:
                    continue
                t = starts[rid][0].time
                if released is None or t < released:
                    bad(
                        "unknown-not-held",
                        subject(vid, rid),
                        f"started at {t:.3f} while {u['path']} was unknown "
                        f"(released {'never' if released is None else f'at {released:.3f}'})",
                    )
        root = next(
            (
                r
                for r in journal.units.values()
                if r["jobnet_run"] == u["jobnet_run"]
                and r["path"] == journal.runs[u["jobnet_run"]]["jobnet"]
            ),
            None,
        )
        if (
            root
            and root["status"] in FINAL
            and (released is None or (root["ended_at"] or 0) < released)
        ):
            bad(
                "unknown-not-held",
                subject(root["id"]),
                f"the jobnet ended while {u['path']} was unknown",
            )

    # ---- nothing vanished
    for lh, _jobnet, run, node, t in ledger.entries:
        if lhost and lh != lhost:
            continue
        if run not in journal.runs:
            bad("lost", f"run {run}", f"entered on {node} at {t:.3f}, not in the journal")
    roots = {
        r["id"]: r
        for r in journal.units.values()
        if r["path"] == journal.runs.get(r["jobnet_run"], {}).get("jobnet")
    }
    for run in journal.runs:
        if not any(r["jobnet_run"] == run for r in roots.values()):
            bad("lost", f"run {run}", "registered but its root unit is missing")
    if final:
        for r in roots.values():
            if r["status"] not in FINAL:
                bad("unfinished", subject(r["id"]), f"jobnet still {r['status']}")

    summary = {
        "epochs": len(epochs),
        "jobnet_runs": len(journal.runs),
        "jobs": dict(sorted(stats.items())),
        "in_doubt": dict(sorted(in_doubt.items())),
        "starts": len(ledger.starts),
        "checks": len(ledger.checks),
        "releases": len(ledger.releases),
        "integrity": journal.integrity,
    }
    return Report(lhost, P, summary)


def check_files(ledger: Path, journal: Path, *, lhost: str = "", final: bool = False) -> Report:
    t = time.time()
    led = read_ledger(ledger.read_text() if ledger.exists() else "")
    return check(led, read_journal(journal), lhost=lhost, final=final, ledger_read_at=t)


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ledger", type=Path)
    p.add_argument(
        "--journal",
        type=Path,
        required=True,
        help="journal.db, or a JSON dump of one (Journal.to_json)",
    )
    p.add_argument("--lhost", default="")
    p.add_argument(
        "--final", action="store_true", help="the workload has drained: every run must have ended"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--dump",
        action="store_true",
        help="print the journal as JSON (for a checker elsewhere) and exit",
    )
    a = p.parse_args(list(argv) if argv is not None else None)
    if a.dump:
        json.dump(read_journal(a.journal).to_json(), sys.stdout)
        return 0
    if a.ledger is None:
        p.error("--ledger is required")
    if a.journal.suffix == ".json":
        t = time.time()
        rep = check(
            read_ledger(a.ledger.read_text()),
            Journal.from_json(json.loads(a.journal.read_text())),
            lhost=a.lhost,
            final=a.final,
            ledger_read_at=t,
        )
    else:
        rep = check_files(a.ledger, a.journal, lhost=a.lhost, final=a.final)
    if a.json:
        print(
            json.dumps(
                {
                    "ok": rep.ok,
                    "summary": rep.summary,
                    "problems": [asdict(x) for x in rep.problems],
                },
                indent=1,
            )
        )
    else:
        print(rep.text())
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
