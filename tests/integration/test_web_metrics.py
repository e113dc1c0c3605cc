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
        ended = dict(
            host.journal_query(
                "SELECT u.status, count(*) FROM unit_runs u JOIN jobnet_runs r "
                "ON u.jobnet_run = r.id AND u.path = r.jobnet "
                "WHERE u.status IN ('ended_normally', 'ended_abnormally') GROUP BY u.status"
            )
        )
        assert ended == {"ended_normally": 2, "ended_abnormally": 1}
        for status, n in ended.items():
            assert m[("ajs3_runs_ended", (("lhost", "wmet"), ("status", status)))] == n
        started = host.journal_query(
            "SELECT count(*) FROM unit_runs u JOIN jobnet_runs r ON u.jobnet_run = r.id "
            "AND u.path = r.jobnet WHERE u.started_at IS NOT NULL"
        )[0][0]
        assert m[("ajs3_runs_started", lh)] == started == 4
        running = host.journal_query(
            "SELECT count(*) FROM unit_runs WHERE kind = 'job' AND status = 'running'"
        )[0][0]
        assert m[("ajs3_jobs_running", lh)] == running == 1
        waiting = host.journal_query(
            "SELECT count(*) FROM unit_runs WHERE kind = 'job' "
            "AND status IN ('waiting', 'held', 'not_scheduled')"
        )[0][0]
        assert m[("ajs3_jobs_waiting", lh)] == waiting == 1
        epoch, mode = host.journal_query(
            "SELECT epoch, mode FROM epochs ORDER BY epoch DESC LIMIT 1"
        )[0]
        assert m[("ajs3_epoch", lh)] == epoch
        assert m[("ajs3_start_info", (("lhost", "wmet"), ("mode", mode)))] == 1
        assert m[("ajs3_scheduling_latency_seconds_count", lh)] == started
        assert (
            m[("ajs3_scheduling_latency_seconds_bucket", (("le", "+Inf"), ("lhost", "wmet")))]
            == started
        )
        assert m[("ajs3_journal_commit_seconds_count", lh)] > 0
        assert (
            m[("ajs3_notify_backlog", lh)]
            == host.journal_query(
                "SELECT count(*) FROM notify_deliveries WHERE delivered_at IS NULL"
            )[0][0]
        )
        assert m[("ajs3_purge_backlog", lh)] == 0

        host.run("kill", "/m/slow", "--run", str(slow))
        host.wait(slow)
        after = scrape(console)
        assert after[("ajs3_jobs_running", lh)] == 0
        assert after[("ajs3_runs_ended", (("lhost", "wmet"), ("status", "killed")))] == 1

        status, _, _ = console.request("GET", "/metrics", None)
        assert status == 401

        host.stop()
        down = scrape(console)
        assert down == {("ajs3_up", lh): 0}
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
