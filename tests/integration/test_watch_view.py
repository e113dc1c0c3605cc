"""`ajs3 show --watch`: the live terminal view shows what `ajs3 show` shows, refreshed;
through a pipe each refresh is printed after the previous one."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from lhost import LogicalHost, cli_env

from ajs3.cli.watch import render

DEFS = """
group: /w
jobnets:
  - name: good
    units:
      - name: a
        command: [/bin/true]
  - name: bad
    units:
      - name: a
        command: [/bin/false]
"""


def test_watch_prints_the_tree_and_a_run(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("wwatch")
    host.start()
    host.define(DEFS)
    good, bad = host.entry("/w/good"), host.entry("/w/bad")
    host.wait(good)
    host.wait(bad)
    argv = [
        sys.executable,
        "-m",
        "ajs3.cli.main",
        "show",
        "--watch",
        "--count",
        "2",
        "--interval",
        "0.1",
        *host.opts,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**cli_env(), "COLUMNS": "200"},
        timeout=120,
        check=True,
    )
    assert done.stdout.count("definitions version 1") == 2
    assert f"run {good}: Ended normally" in done.stdout
    assert f"run {bad}: Ended abnormally" in done.stdout
    one = subprocess.run(
        [*argv[:4], "/w/bad", *argv[4:]],
        capture_output=True,
        text=True,
        env={**cli_env(), "COLUMNS": "200"},
        timeout=120,
        check=True,
    )
    assert f"run {bad} of /w/bad" in one.stdout and "Ended abnormally" in one.stdout


def test_render_colours_by_status() -> None:
    from rich.console import Console

    data = {
        "definitions_version": 3,
        "jobnets": [
            {
                "jobnet": "/g/sub/n1",
                "latest": {"run": 7, "status": "ended_abnormally", "label": "Ended abnormally"},
                "next_run": None,
                "suspended": None,
            },
            {"jobnet": "/g/n2", "latest": None, "next_run": None, "suspended": {"user": "x"}},
        ],
        "runs": [{"run": 8, "jobnet": "/g/n2", "status": "running", "label": "Now running"}],
    }
    console = Console(record=True, width=100, color_system="truecolor", force_terminal=True)
    console.print(render(data))
    text = console.export_text(clear=False)
    assert "n1" in text and "run 7: Ended abnormally" in text and "SUSPENDED" in text
    assert "never run" in text and "Now running" in text
    assert "\x1b[1;31m" in console.export_text(styles=True)  # bold red for the failure
