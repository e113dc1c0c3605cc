"""The failover workload: jobnets with every recovery policy, and the ledger they write.

Every job appends a line at its start and at its end to a ledger outside every node
(<ledger dir>/<lhost>.ledger; in the lab /var/lib/ajs3-ledger, one directory of the
host mounted into all nodes): the external database a real job would update. The
judge policy's failover check appends its verdict. The driver (Driver) and the tests
append what an operator did (entries, releases, failovers). tests/cluster/checker.py
proves from these lines and the journals that nothing was lost or run twice.

Ledger lines (space separated; TIME is the host's wall clock, all nodes share it):

    start RUN_ID ATTEMPT EPOCH NODE UNIT JOBNET_RUN TIME        a job started
    end   RUN_ID ATTEMPT EPOCH NODE UNIT JOBNET_RUN TIME RC     it is about to exit RC
    check RUN_ID VERDICT EPOCH NODE UNIT JOBNET_RUN TIME        judge check's verdict
    entry LHOST JOBNET RUN NODE TIME                            `ajs3 entry` returned RUN
    release LHOST RUN UNIT AS TIME                              an operator decided
    failover LHOST VICTIM HOW TIME                              a test took a node down

Only the standard library: this module also runs where pytest is not installed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = "/fo/mix"  # the jobnet the driver enters, again and again
GROUP = "/fo"
DEFS_FILE = "failover-workload.yaml"

# One jobnet per recovery policy inside the root: a long job with the policy (likely
# to be running when the node dies) followed by a short one that must only run when
# the long one's end is known. Plus a burst of short jobs in parallel.
POLICIES = ("fail", "unknown", "rerun", "judge")


def ledger_path(ledger_dir: str | Path, lhost: str) -> str:
    return f"{ledger_dir}/{lhost}.ledger"


def _job_script(ledger: str, seconds: float, rc: int = 0, durable: bool = False) -> str:
    # $(date +%s.%N) is the host's clock (nodes share the kernel); one `echo >>` is one
    # O_APPEND write, so lines of concurrent jobs never interleave. Durable: each line
    # is fsynced before the job goes on (`sync FILE`), for a ledger on a disk that a
    # node's crash can leave without its page cache (the VM lab's shared volume).
    ident = "$AJS3_RUN_ID $AJS3_ATTEMPT $AJS3_EPOCH $(hostname) $AJS3_UNIT $AJS3_JOBNET_RUN"
    sync = ' && sync "$L"' if durable else ""
    return (
        f"L={shlex.quote(ledger)}\n"
        # a job that cannot write the ledger (run as the wrong user) fails loudly
        f'echo "start {ident} $(date +%s.%N)" >> "$L"{sync} || exit 97\n'
        f"sleep {seconds:g}\n"
        f'echo "end {ident} $(date +%s.%N) {rc}" >> "$L"{sync}\n'
        f"exit {rc}\n"
    )


def _check_script(ledger: str, durable: bool = False) -> str:
    # The judgment of the JP1 note: did the job's update reach the database? Here the
    # "database" is the ledger: an `end` line of this very run id means it was done.
    sync = ' && sync "$L"' if durable else ""
    return (
        f"L={shlex.quote(ledger)}\n"
        'if grep -q "^end $AJS3_RUN_ID " "$L"; then v=0; else v=1; fi\n'
        'echo "check $AJS3_RUN_ID $v $AJS3_EPOCH $(hostname) $AJS3_UNIT '
        f'$AJS3_JOBNET_RUN $(date +%s.%N)" >> "$L"{sync}\n'
        "exit $v\n"
    )


def definitions(
    lhost: str,
    ledger_dir: str | Path,
    long_s: float = 5.0,
    short_s: float = 0.2,
    burst: int = 3,
    durable: bool = False,
) -> dict[str, Any]:
    """The workload's definition file (as a dict; json is valid YAML). `durable`: the
    jobs fsync each ledger line (see _job_script)."""
    ledger = ledger_path(ledger_dir, lhost)
    nets: list[dict[str, Any]] = []
    for i, policy in enumerate(POLICIES):
        # Stagger the lengths a little so the jobs do not all end together.
        long_job: dict[str, Any] = {
            "name": "long",
            "script": _job_script(ledger, long_s + 0.5 * i, durable=durable),
            "on_failover": policy,
        }
        if policy == "judge":
            long_job["failover_check"] = ["/bin/sh", "-c", _check_script(ledger, durable)]
        # The successor keeps the default policy (fail) except under rerun, where the
        # whole chain is declared idempotent.
        after: dict[str, Any] = {
            "name": "after",
            "after": ["long"],
            "script": _job_script(ledger, short_s, durable=durable),
        }
        if policy == "rerun":
            after["on_failover"] = "rerun"
        nets.append({"name": policy, "type": "jobnet", "units": [long_job, after]})
    nets.append(
        {
            "name": "burst",
            "type": "jobnet",
            "units": [
                {
                    "name": f"s{k}",
                    "script": _job_script(ledger, short_s * (k + 1), durable=durable),
                    "on_failover": "rerun" if k % 2 else "fail",
                }
                for k in range(burst)
            ],
        }
    )
    return {"group": GROUP, "jobnets": [{"name": ROOT.rsplit("/", 1)[1], "units": nets}]}


def definitions_text(lhost: str, ledger_dir: str | Path, **kw: Any) -> str:
    return json.dumps(definitions(lhost, ledger_dir, **kw), indent=1) + "\n"


def append(ledger_dir: str | Path, lhost: str, *fields: object) -> None:
    """Append one line to a logical host's ledger (as the host: tests, driver)."""
    line = " ".join(str(f) for f in fields) + f" {time.time():.6f}\n"
    with open(ledger_path(ledger_dir, lhost), "a") as f:
        f.write(line)


# --------------------------------------------------------------------------- the driver

Exec = Callable[[str, Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass
class Driver:
    """Keeps entering the workload's root jobnet on every logical host, through the
    `ajs3` command on whichever node runs it.

    locate(lhost) -> node or None (None: not running anywhere right now);
    run(node, argv) -> CompletedProcess. One thread; entries every `period` seconds
    per logical host while at most `max_active` of its runs are unfinished."""

    lhosts: Sequence[str]
    ledger_dir: Path  # as the host sees it
    locate: Callable[[str], str | None]
    run: Exec
    period: float = 3.0
    ajs3: str = "ajs3"
    entered: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _where: dict[str, str | None] = field(default_factory=dict)

    def enter(self, lhost: str) -> int | None:
        node = self._where.get(lhost)
        if node is None:
            try:
                node = self.locate(lhost)
            except Exception as exc:  # the cluster is changing under us
                self.failures.append(f"locate {lhost}: {exc}")
                node = None
            self._where[lhost] = node
            if node is None:
                return None
        try:
            proc = self.run(node, [self.ajs3, "entry", "-h", lhost, "--json", ROOT])
        except Exception as exc:
            proc = None
            err = str(exc)
        else:
            err = proc.stderr.strip()
        if proc is None or proc.returncode != 0:
            self.failures.append(f"entry on {lhost}@{node}: {err[:200]}")
            self._where[lhost] = None  # look again next time
            return None
        run = int(json.loads(proc.stdout)["run"])
        append(self.ledger_dir, lhost, "entry", lhost, ROOT, run, node)
        self.entered.setdefault(lhost, []).append(run)
        return run

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            if not self._paused.is_set():
                for lh in self.lhosts:
                    if self._stop.is_set():
                        break
                    self.enter(lh)
            self._stop.wait(max(0.2, self.period - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="workload-driver", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._where.clear()
        self._paused.clear()

    def forget_locations(self) -> None:
        self._where.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)
