"""A daemon whose epoch was superseded cannot record anything (docs/design.md rule 3)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def test_old_epoch_cannot_write_and_stops(lhost: Any) -> None:
    lhost.define("""
        jobnets:
          - name: net
            units:
              - name: a
                command: [/bin/true]
    """)
    before = lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0]
    # A newer owner started elsewhere (what a second node's daemon would write).
    conn = sqlite3.connect(str(lhost.datadir / "journal.db"))
    with conn:
        conn.execute(
            "INSERT INTO epochs(started_at, node, pid, mode) VALUES (?, 'other', 1, 'hot')",
            (time.time(),),
        )
    conn.close()
    done = lhost.run("entry", "/net", check=False)
    assert done.returncode == 1
    assert "AJS3-E3" in done.stderr
    assert lhost.journal_query("SELECT count(*) FROM jobnet_runs")[0][0] == before
    end = time.monotonic() + 10
    while time.monotonic() < end and lhost.run("service", "status", check=False).returncode != 3:
        time.sleep(0.1)
    assert lhost.run("service", "status", check=False).returncode == 3
    log = (lhost.datadir / "log" / "ajs3.log").read_text()
    assert "epoch superseded" in log
