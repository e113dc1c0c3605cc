"""The layout of a logical host's data directory, spelled in one place.

    <datadir>/ajs3.yaml          settings (ajs3/settings.py)
    <datadir>/definitions/       definition files (YAML)
    <datadir>/journal.db         the journal (-wal, -shm beside it)
    <datadir>/jobs/<run-id>/     a run's output (stdout, stderr, failover_check.log),
                                 made at its first byte; started.json and status.json of
                                 runs started without record logs (an execution host's)
    <datadir>/claims/            the supervisor servers' claim logs (ADR 0033), record
                                 logs and voids (ADR 0039)
    <datadir>/log/               the daemon's structured logs

The C supervisor (ajs3/engine/supervise.c) writes the record files by the same names.
"""

from __future__ import annotations

from pathlib import Path

SETTINGS = "ajs3.yaml"
DEFINITIONS = "definitions"
JOURNAL = "journal.db"
JOBS = "jobs"
CLAIMS = "claims"
LOG = "log"

#: the files of one run's directory
STARTED = "started.json"
STATUS = "status.json"
STDOUT = "stdout"
STDERR = "stderr"
CHECK_LOG = "failover_check.log"


def jobs(datadir: Path) -> Path:
    return datadir / JOBS


def claims(datadir: Path) -> Path:
    """The claim logs of the supervisor servers (ADR 0033)."""
    return datadir / CLAIMS


def jobdir(datadir: Path, run_id: str) -> Path:
    return datadir / JOBS / run_id


def journal(datadir: Path) -> Path:
    return datadir / JOURNAL


def log(datadir: Path) -> Path:
    return datadir / LOG


def definitions(datadir: Path) -> Path:
    return datadir / DEFINITIONS


def settings(datadir: Path) -> Path:
    return datadir / SETTINGS
