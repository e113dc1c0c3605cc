"""The journal's schema and its migrations, one list entry per version."""

from __future__ import annotations

SCHEMA_VERSION = 8

#: MIGRATIONS[n] brings a journal from version n to n + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE epochs (
        epoch INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        node TEXT NOT NULL,
        pid INTEGER NOT NULL,
        mode TEXT NOT NULL
    );
    CREATE TABLE definitions (
        version INTEGER PRIMARY KEY,
        applied_at REAL NOT NULL,
        content TEXT NOT NULL,
        sources TEXT NOT NULL
    );
    CREATE TABLE jobnet_runs (
        id INTEGER PRIMARY KEY,
        jobnet TEXT NOT NULL,
        def_version INTEGER NOT NULL REFERENCES definitions(version),
        scheduled_at REAL NOT NULL,
        registered_at REAL NOT NULL,
        interrupted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobnet_runs_jobnet ON jobnet_runs(jobnet, id);
    CREATE TABLE unit_runs (
        id INTEGER PRIMARY KEY,
        jobnet_run INTEGER NOT NULL REFERENCES jobnet_runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        run_id TEXT,
        exit_code INTEGER,
        signal INTEGER,
        verdict INTEGER,
        started_at REAL,
        ended_at REAL,
        not_before REAL,
        pid INTEGER,
        pid_start INTEGER,
        pgid INTEGER,
        epoch INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        UNIQUE (jobnet_run, path)
    );
    CREATE INDEX unit_runs_status ON unit_runs(status);
    CREATE INDEX unit_runs_run_id ON unit_runs(run_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        epoch INTEGER NOT NULL,
        unit_run INTEGER NOT NULL REFERENCES unit_runs(id) ON DELETE CASCADE,
        run_id TEXT,
        attempt INTEGER NOT NULL,
        old TEXT NOT NULL,
        new TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX events_unit_run ON events(unit_run);
    """,
    # 2: a stable reason code on every status event (ajs3.model.ReasonCode); events
    # written before it have ''.
    """
    ALTER TABLE events ADD COLUMN code TEXT NOT NULL DEFAULT '';
    """,
    # 3: who did what through the control socket (ajs3.journal.audit); the key of an
    # idempotent request (entry) finds its first answer again.
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        epoch INTEGER,
        uid INTEGER NOT NULL,
        user TEXT NOT NULL,
        op TEXT NOT NULL,
        args TEXT NOT NULL,
        code TEXT NOT NULL,
        result TEXT NOT NULL,
        request_key TEXT
    );
    CREATE INDEX audit_key ON audit(uid, op, request_key) WHERE request_key IS NOT NULL;
    """,
    # 4: what operators do to the plan and hand to runs (ajs3.engine.runvars, suspend,
    # planchanges): a run's values, suspended jobnets, changes of single scheduled runs.
    """
    CREATE TABLE run_vars (
        jobnet_run INTEGER NOT NULL REFERENCES jobnet_runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        source TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (jobnet_run, name)
    );
    CREATE TABLE suspended (
        jobnet TEXT PRIMARY KEY,
        since REAL NOT NULL,
        user TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE plan_changes (
        id INTEGER PRIMARY KEY,
        jobnet TEXT NOT NULL,
        kind TEXT NOT NULL,
        due REAL,
        at REAL,
        made_at REAL NOT NULL,
        user TEXT NOT NULL,
        reason TEXT NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX plan_changes_jobnet ON plan_changes(jobnet)
    """,
    # 5: notifications (ajs3.notify): the outbox of events, written in the transaction
    # of the change that causes them, with one delivery row per route that wants the
    # event; and the delays (start, end) raised once per unit run (ajs3.engine.delays).
    """
    CREATE TABLE notify_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE notify_deliveries (
        event INTEGER NOT NULL REFERENCES notify_events(id) ON DELETE CASCADE,
        route TEXT NOT NULL,
        delivered_at REAL,
        tries INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (event, route)
    );
    CREATE INDEX notify_pending ON notify_deliveries(route, event) WHERE delivered_at IS NULL;
    CREATE TABLE unit_delays (
        unit_run INTEGER NOT NULL REFERENCES unit_runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (unit_run, kind)
    );
    """,
    # 6: the jobnet runs the retention purge (ajs3.journal.purge) has taken: their files
    # are being removed; the rows go once the files are gone, so a purge cut short
    # (kill -9) is finished by the next one and never leaves a row without its files
    # unmarked.
    """
    CREATE TABLE purging (
        jobnet_run INTEGER PRIMARY KEY REFERENCES jobnet_runs(id) ON DELETE CASCADE,
        since REAL NOT NULL
    );
    """,
    # 7: file watches (ajs3.engine.watches, ADR 0023): each watch that began, with what it
    # looks for (a changed spec starts over) and how many times it fired; and the files
    # it has taken into account (identity: path, inode, size, mtime), written in the
    # transaction of the run or unit end each event causes, so that a restart or a
    # failover fires once for what arrived unwatched and never again for what fired.
    """
    CREATE TABLE watches (
        watch TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        since REAL NOT NULL,
        fired INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE watch_files (
        watch TEXT NOT NULL,
        path TEXT NOT NULL,
        inode INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        fired INTEGER NOT NULL,
        run INTEGER,
        at REAL NOT NULL,
        PRIMARY KEY (watch, path)
    );
    """,
    # 8: the execution host a job's attempt was sent to, chosen in the commit of its
    # start (ajs3/exechost), so that a new owner finds it there after a failover.
    """
    ALTER TABLE unit_runs ADD COLUMN exec_host TEXT;
    """,
]
