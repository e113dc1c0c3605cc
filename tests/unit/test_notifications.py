"""Notifications without a daemon: route settings and filters, back-off, the events a
status change raises, the outbox written in the transaction of its change (real
SQLite), and the sender's order, retries and at-least-once delivery."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ajs3.definitions.loader import load_text
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import AjsError, Code
from ajs3.journal.store import Journal
from ajs3.model import EventKind, ReasonCode, Status, UnitKind
from ajs3.notify import deliver as dl
from ajs3.notify import events as ev
from ajs3.notify import outbox
from ajs3.notify.hub import Notifications
from ajs3.notify.sender import Sender
from ajs3.notify_routes import Backoff, Route, RouteKind, parse_routes
from ajs3.settings import Settings, load_settings

CMD = {"name": "r", "kind": "command", "command": ["/bin/true"]}


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ajs3.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


# -- settings ---------------------------------------------------------------------------


def test_every_route_kind_is_read_with_its_defaults(tmp_path: Path) -> None:
    settings_file(
        tmp_path,
        """
notify:
  - {name: pager, kind: command, command: [/usr/local/bin/page, -q], user: ops,
     events: [unit_ended_abnormally, start_delay], statuses: [ended_abnormally],
     units: ['/prod/*'], timeout: 5, backoff: {first: 1, max: 60}}
  - {name: log, kind: syslog}
  - {name: mail, kind: mail, from: a@x.org, to: b@x.org, port: 2525, starttls: true}
""",
    )
    s = load_settings(tmp_path, "lh1")
    pager, log, mail = s.notify
    assert pager.kind is RouteKind.COMMAND and pager.command == ("/usr/local/bin/page", "-q")
    assert pager.events == {"unit_ended_abnormally", "start_delay"} and pager.user == "ops"
    assert pager.units == ("/prod/*",) and pager.timeout == 5.0
    assert pager.backoff == Backoff(1.0, 60.0)
    assert (log.socket, log.format.value, log.facility) == ("/dev/log", "rfc5424", "daemon")
    assert log.events is None and log.statuses is None and log.units is None
    assert (mail.host, mail.port, mail.to, mail.starttls) == ("localhost", 2525, ("b@x.org",), True)


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({"name": "r", "kind": "sms"}, "notify[0] (route 'r'): kind"),
        ({"kind": "syslog"}, "notify[0]: name"),
        ({"name": "r", "kind": "command"}, "notify[0] (route 'r'): command"),
        ({**CMD, "command": ["true"]}, "notify[0] (route 'r'): command"),
        ({**CMD, "socket": "/dev/log"}, "notify[0] (route 'r'): socket"),
        ({**CMD, "events": ["unit_ended_badly"]}, "notify[0] (route 'r'): events"),
        ({**CMD, "statuses": ["broken"]}, "notify[0] (route 'r'): statuses"),
        ({**CMD, "units": "/a/*"}, "notify[0] (route 'r'): units"),
        ({**CMD, "timeout": 0}, "notify[0] (route 'r'): timeout"),
        ({**CMD, "backoff": {"first": 10, "max": 1}}, "notify[0] (route 'r'): backoff"),
        ({"name": "m", "kind": "mail", "from": "a@b"}, "notify[0] (route 'm'): to"),
        ({"name": "m", "kind": "mail", "to": "a@b"}, "notify[0] (route 'm'): from"),
        ({"name": "m", "kind": "mail", "from": "a", "to": ["x"]}, "notify[0] (route 'm'): to"),
        ({"name": "s", "kind": "syslog", "socket": "log"}, "notify[0] (route 's'): socket"),
        ({"name": "s", "kind": "syslog", "facility": "kern"}, "notify[0] (route 's'): facility"),
        ({"name": "s", "kind": "syslog", "format": "json"}, "notify[0] (route 's'): format"),
    ],
)
def test_a_bad_route_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, route: dict[str, Any], key: str
) -> None:
    path = tmp_path / "ajs3.yaml"
    with pytest.raises(AjsError) as info:
        parse_routes([route], path)
    assert info.value.code is Code.SETTINGS
    assert info.value.message.startswith(f"{path}: {key} must be"), info.value.message


def test_duplicate_route_names_and_root_without_permission_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AjsError, match=r"notify\[1\] .*name must be unique"):
        parse_routes([CMD, CMD], tmp_path / "ajs3.yaml")
    settings_file(
        tmp_path, "notify:\n  - {name: r, kind: command, command: [/bin/true], user: root}\n"
    )
    with pytest.raises(AjsError, match="user root needs allow_root_jobs") as info:
        load_settings(tmp_path, "lh1")
    assert info.value.code is Code.SETTINGS
    settings_file(tmp_path, "notify: {name: r}\n")
    with pytest.raises(AjsError, match="notify must be a list"):
        load_settings(tmp_path, "lh1")


# -- filters, back-off, events ------------------------------------------------------------


def test_filters_each_must_match_and_a_missing_field_does_not() -> None:
    route = Route(
        "r",
        RouteKind.SYSLOG,
        events=frozenset({"unit_ended_abnormally", "host_started"}),
        statuses=frozenset({"ended_abnormally"}),
        units=("/prod/*", "/batch/nightly"),
    )
    hit = {"kind": "unit_ended_abnormally", "status": "ended_abnormally", "unit": "/prod/a/j"}
    assert route.matches(hit)
    assert not route.matches({**hit, "kind": "unit_ended_warning"})
    assert not route.matches({**hit, "status": "killed"})
    assert not route.matches({**hit, "unit": "/test/a/j"})
    assert route.matches({**hit, "unit": "/batch/nightly"})
    assert not route.matches({**hit, "unit": "/batch/nightly/j"})
    assert not route.matches({"kind": "host_started"})  # no status, no unit
    assert Route("all", RouteKind.SYSLOG).matches({"kind": "host_started"})
    assert Route("u", RouteKind.SYSLOG, units=("/a*",)).matches({"kind": "x", "unit": "/ab"})


def test_backoff_doubles_up_to_its_bound() -> None:
    b = Backoff(first=2.0, max=30.0)
    assert [b.pause(n) for n in range(0, 7)] == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.pause(10_000) == 30.0


def test_the_events_of_status_changes_and_their_severity() -> None:
    job, net = UnitKind.JOB, UnitKind.JOBNET
    assert ev.status_event(job, Status.ENDED_ABNORMALLY, False) is EventKind.UNIT_ENDED_ABNORMALLY
    assert ev.status_event(job, Status.UNKNOWN, False) is EventKind.UNIT_UNKNOWN
    assert ev.status_event(job, Status.HELD, False) is EventKind.UNIT_HELD
    assert ev.status_event(job, Status.ENDED_NORMALLY, False) is None
    assert ev.status_event(job, Status.RUNNING, False) is None
    assert ev.status_event(net, Status.ENDED_NORMALLY, True) is EventKind.JOBNET_ENDED
    assert ev.status_event(net, Status.KILLED, True) is EventKind.JOBNET_ENDED
    assert ev.status_event(net, Status.RUNNING, True) is None
    assert ev.status_event(net, Status.HELD, True) is EventKind.UNIT_HELD
    assert ev.status_event(net, Status.ENDED_ABNORMALLY, False) is EventKind.UNIT_ENDED_ABNORMALLY
    assert ev.severity("unit_killed", "killed") is ev.Severity.ERR
    assert ev.severity("end_delay", "running") is ev.Severity.WARNING
    assert ev.severity("jobnet_ended", "ended_abnormally") is ev.Severity.ERR
    assert ev.severity("jobnet_ended", "ended_warning") is ev.Severity.WARNING
    assert ev.severity("jobnet_ended", "ended_normally") is ev.Severity.INFO
    assert ev.severity("unit_held", "held") is ev.Severity.INFO
    body = ev.make("test", {"unit": "/a/b", "exit_code": 0}, lhost="lh", node="n", epoch=3)
    assert re.fullmatch(r"[0-9a-f]{32}", body["event_id"])
    assert body["message"] == "[lh] test /a/b exit 0"


def test_syslog_lines_and_command_variables() -> None:
    body = ev.make(
        "unit_ended_abnormally",
        {"unit": "/a/j", "status": "ended_abnormally", "exit_code": 3, "run_id": "r1"},
        lhost="lh",
        node="node1",
        epoch=1,
    )
    line = dl.syslog_line(Route("s", RouteKind.SYSLOG), body).decode()
    assert re.fullmatch(
        r"<27>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z node1 ajs3 \d+ unit_ended_abnormally - "
        r"\[lh\] unit_ended_abnormally /a/j ended_abnormally exit 3 run id r1 event_id=\w{32}",
        line,
    ), line
    env = dl.variables({**body, "nested": {"x": 1}, "signal": None}, "pager")
    assert env["AJS3_EVENT_ID"] == body["event_id"] and env["AJS3_EXIT_CODE"] == "3"
    assert env["AJS3_ROUTE"] == "pager" and env["AJS3_KIND"] == "unit_ended_abnormally"
    assert "AJS3_NESTED" not in env and "AJS3_SIGNAL" not in env


# -- the outbox on a real journal ---------------------------------------------------------

DEFS = """
group: /t
jobnets:
  - name: n
    units:
      - {name: a, script: 'true'}
"""


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path)
    j.begin_epoch("test", 1, "hot")
    yield j
    j.close()


def test_an_event_exists_if_and_only_if_its_status_change_does(
    journal: Journal, tmp_path: Path
) -> None:
    s = Settings(lhost="lh", datadir=tmp_path, notify=(Route("all", RouteKind.SYSLOG),))
    box = outbox.Outbox(journal, s.notify, "lh", "node")
    box.attach()
    sched = Scheduler(journal, s)
    sched.apply_definitions(load_text(DEFS, "t.yaml"), ["t.yaml"])
    run = sched.register("/t/n")
    ur = sched.runs[run].urs["/t/n/a"]
    with pytest.raises(RuntimeError), journal.transaction():
        journal.set_status(ur, Status.HELD, ReasonCode.HELD_BY_OPERATOR, "by hand")
        raise RuntimeError("rolled back")
    assert journal.conn.execute("SELECT count(*) FROM notify_events").fetchone()[0] == 0
    ur.status = Status.NOT_SCHEDULED  # as stored: the change was rolled back
    journal.set_status(ur, Status.HELD, ReasonCode.HELD_BY_OPERATOR, "by hand")
    (body,) = [p.body for p in outbox.pending(journal.conn, "all")]
    assert (body["kind"], body["unit"], body["run"], body["reason"]) == (
        "unit_held",
        "/t/n/a",
        run,
        "by hand",
    )
    assert outbox.pending(journal.conn, "other") == []


# -- the sender ---------------------------------------------------------------------------


def test_the_sender_retries_in_order_and_delivers_each_event_once(
    journal: Journal, tmp_path: Path
) -> None:
    route = Route("flaky", RouteKind.SYSLOG, backoff=Backoff(0.05, 0.2))
    s = Settings(lhost="lh", datadir=tmp_path, notify=(route,))
    box = outbox.Outbox(journal, s.notify, "lh", "node")
    written = [box.write(EventKind.TEST, {"n": n}) for n in range(20)]
    ids = [b["event_id"] for b in written if b]
    got: list[str] = []
    tries = {"n": 0}
    lock = threading.Lock()

    def send(r: Route, body: dict[str, Any], _: Settings) -> None:
        with lock:
            tries["n"] += 1
            if tries["n"] % 3 == 0:  # every third try fails
                raise dl.DeliveryFailed("down")
            got.append(body["event_id"])

    sender = Sender(journal.path, s, structlog.get_logger(), send)
    sender.start()
    try:
        end = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        sender.stop()
    assert got == ids  # in order, each once, although 1 try in 3 failed
    assert outbox.counts(journal.conn) == {}
    tried = journal.conn.execute("SELECT sum(tries) FROM notify_deliveries").fetchone()[0]
    assert tried == tries["n"] and tried > 20
    state = sender.status(journal.conn)["flaky"]
    assert (state["pending"], state["delivered"], state["failures"]) == (0, 20, 0)
    assert state["last_error"] == "down"  # the last one stays shown, with its time


def test_notifications_test_names_a_known_route(journal: Journal, tmp_path: Path) -> None:
    s = Settings(lhost="lh", datadir=tmp_path, notify=(Route("r", RouteKind.SYSLOG),))
    hub = Notifications(journal, s, structlog.get_logger())
    with pytest.raises(AjsError) as info:
        hub.test("nope", "root")
    assert info.value.code is Code.UNKNOWN_ROUTE and "known: r" in info.value.message
    sent = hub.test("r", "root")
    assert [p.body["event_id"] for p in outbox.pending(journal.conn, "r")] == [sent["event_id"]]
