"""`/metrics` of `ajs3 web` scraped from a real daemon: its values are the journal's,
labelled with the logical host; a token is needed unless metrics_open says not; and
the console serves over TLS when given a certificate."""

from __future__ import annotations

import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lhost import LogicalHost, wait_for
from prometheus_client.parser import text_string_to_metric_families
from webserve import OPERATOR, SETTINGS, WebConsole
from webspec import check_answer

DEFS = """
group: /m
jobnets:
  - name: ok
    units:
      - name: a
        command: [/bin/true]
  - name: bad
    units:
      - name: a
        command: [/bin/false]
  - name: slow
    units:
      - name: s
        command: [/bin/sleep, '600']
      - name: after
        command: [/bin/true]
        after: [s]
"""


def scrape(
    console: WebConsole, token: str | None = OPERATOR
) -> dict[tuple[str, tuple[Any, ...]], float]:
    status, text, ctype = console.request("GET", "/metrics", token)
    check_answer("GET", "/metrics", status, text, ctype)
    assert status == 200, text
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


FINALS = (
    "'ended_normally', 'ended_warning', 'ended_abnormally', 'killed', 'failed_to_start', "
    "'unknown', 'not_executed', 'interrupted'"
)


def journal_counts(host: LogicalHost, epoch: int) -> tuple[dict[str, int], dict[Any, int], int]:
    """What the journal's events of ``epoch`` say: units started by kind, ended by
    (kind, status), and jobnet runs whose root started for the first time."""
    started = dict(
        host.journal_query(
            "SELECT u.kind, count(*) FROM events e JOIN unit_runs u ON u.id = e.unit_run "
            "WHERE e.epoch = ? AND e.new = 'running' AND e.old != 'running' GROUP BY u.kind",
            (epoch,),
        )
    )
    ended = {
        (k, s): n
        for k, s, n in host.journal_query(
            "SELECT u.kind, e.new, count(*) FROM events e JOIN unit_runs u ON u.id = e.unit_run "
            f"WHERE e.epoch = ? AND e.new IN ({FINALS}) AND e.old NOT IN ({FINALS}) "
            "GROUP BY u.kind, e.new",
            (epoch,),
        )
    }
    roots = host.journal_query(
        "SELECT count(*) FROM events e JOIN unit_runs u ON u.id = e.unit_run "
        "JOIN jobnet_runs r ON r.id = u.jobnet_run AND r.jobnet = u.path "
        f"WHERE e.epoch = ? AND e.new = 'running' AND e.old NOT IN ({FINALS}, 'running')",
        (epoch,),
    )[0][0]
    return started, ended, roots


def check_against_journal(host: LogicalHost, m: dict[Any, float], lhost: str) -> None:
    lh = (("lhost", lhost),)
    epoch, mode = host.journal_query("SELECT epoch, mode FROM epochs ORDER BY epoch DESC LIMIT 1")[
        0
    ]
    assert m[("ajs3_epoch", lh)] == epoch
    assert m[("ajs3_start_info", (("lhost", lhost), ("mode", mode)))] == 1
    started, ended, roots = journal_counts(host, epoch)
    got_started = {
        dict(labels)["kind"]: v
        for (name, labels), v in m.items()
        if name == "ajs3_unit_runs_started_total"
    }
    assert got_started == started
    got_ended = {
        (dict(labels)["kind"], dict(labels)["status"]): v
        for (name, labels), v in m.items()
        if name == "ajs3_unit_runs_ended_total"
    }
    assert got_ended == ended
    assert m[("ajs3_scheduling_latency_seconds_count", lh)] == roots
    assert (
        m[("ajs3_scheduling_latency_seconds_bucket", (("le", "+Inf"), ("lhost", lhost)))] == roots
    )
    live = {
        (k, s): n
        for k, s, n in host.journal_query(
            f"SELECT kind, status, count(*) FROM unit_runs WHERE status NOT IN ({FINALS}) "
            "GROUP BY kind, status"
        )
    }
    got_live = {
        (dict(labels)["kind"], dict(labels)["status"]): v
        for (name, labels), v in m.items()
        if name == "ajs3_units"
    }
    assert got_live == live
    running = host.journal_query(
        "SELECT count(*) FROM unit_runs WHERE kind != 'jobnet' AND status = 'running'"
    )[0][0]
    waiting = host.journal_query(
        "SELECT count(*) FROM unit_runs WHERE kind != 'jobnet' "
        "AND status IN ('waiting', 'held', 'not_scheduled')"
    )[0][0]
    assert (m[("ajs3_jobs_running", lh)], m[("ajs3_jobs_waiting", lh)]) == (running, waiting)
    assert (
        m[("ajs3_notify_backlog", lh)]
        == host.journal_query("SELECT count(*) FROM notify_deliveries WHERE delivered_at IS NULL")[
            0
        ][0]
    )
    assert m[("ajs3_purge_backlog", lh)] == host.journal_query("SELECT count(*) FROM purging")[0][0]
    assert m[("ajs3_journal_commit_seconds_count", lh)] > 0


def test_the_metrics_are_the_journals(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("wmet")
    host.write_settings(SETTINGS)
    host.start()
    host.define(DEFS)
    for net in ("/m/ok", "/m/ok", "/m/bad"):
        host.wait(host.entry(net))
    slow = host.entry("/m/slow")
    wait_for(lambda: host.units(slow)["/m/slow/s"]["status"] == "running", 60)
    console = WebConsole(host)
    try:
        m = scrape(console)
        lh = (("lhost", "wmet"),)
        assert m[("ajs3_up", lh)] == 1
        assert m[("ajs3_jobs_running", lh)] == 1 and m[("ajs3_jobs_waiting", lh)] == 1
        assert (
            m[
                (
                    "ajs3_unit_runs_ended_total",
                    (("kind", "jobnet"), ("lhost", "wmet"), ("status", "ended_abnormally")),
                )
            ]
            == 1
        )
        assert m[("ajs3_scheduling_latency_seconds_count", lh)] == 4
        check_against_journal(host, m, "wmet")

        host.run("kill", "/m/slow", "--run", str(slow))
        host.wait(slow)
        host.run("rerun", "/m/bad")
        ends = (
            "SELECT count(*) FROM events e JOIN unit_runs u ON u.id = e.unit_run "
            "WHERE u.path = '/m/bad' AND e.new = 'ended_abnormally'"
        )
        wait_for(lambda: host.journal_query(ends) == [(2,)], 60, "the rerun's end")
        after = scrape(console)
        assert after[("ajs3_jobs_running", lh)] == 0
        check_against_journal(host, after, "wmet")

        status, _, _ = console.request("GET", "/metrics", None)
        assert status == 401

        # a restart is a new epoch: counters start again, the gauges are the journal's
        host.stop()
        assert scrape(console) == {("ajs3_up", lh): 0}
        host.start()
        again = scrape(console)
        assert again[("ajs3_epoch", lh)] == m[("ajs3_epoch", lh)] + 1
        check_against_journal(host, again, "wmet")
    finally:
        console.stop()


def test_metrics_open_and_tls(make_lhost: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    host: LogicalHost = make_lhost("wtls")
    host.write_settings(SETTINGS + f"  metrics_open: true\n  tls_cert: {cert}\n  tls_key: {key}\n")
    host.start()
    console = WebConsole(host)
    try:
        assert console.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(console.url + "/metrics", context=context, timeout=60) as r:
            assert r.status == 200 and b'ajs3_up{lhost="wtls"} 1.0' in r.read()
        req = urllib.request.Request(console.url + "/api/v1/whoami")
        try:
            urllib.request.urlopen(req, context=context, timeout=60)
            raise AssertionError("the API answered without a token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        req.add_header("Authorization", f"Bearer {OPERATOR}")
        with urllib.request.urlopen(req, context=context, timeout=60) as r:
            assert r.status == 200
        try:  # plain HTTP to the TLS port is no way in
            urllib.request.urlopen(console.url.replace("https", "http") + "/metrics", timeout=30)
            raise AssertionError("plain HTTP answered")
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
    finally:
        console.stop()
