"""A logical host runs a jobnet end to end through the `ajs3` command."""

from __future__ import annotations

from typing import Any


def test_sample_jobnet_runs_with_judgment_and_recovery(lhost: Any) -> None:
    lhost.define("""
        group: /t
        jobnets:
          - name: net
            units:
              - name: a
                script: 'echo "$AJS3_RUN_ID $AJS3_ATTEMPT $AJS3_EPOCH"; exit 5'
                abnormal_threshold: 9
                warning_threshold: 4
              - name: j
                type: judge
                after: [a]
                condition: {op: eq, value: 5}
              - name: b
                after: [j]
                command: [/bin/false]
              - name: r
                after: [b]
                recovery: true
                command: [/bin/true]
    """)
    run = lhost.entry("/t/net")
    lhost.wait(run)
    units = lhost.units(run)
    assert units["/t/net"]["status"] == "ended_abnormally"
    assert units["/t/net/a"]["status"] == "ended_warning"
    assert units["/t/net/a"]["exit_code"] == 5
    assert units["/t/net/j"]["status"] == "ended_normally"
    assert units["/t/net/b"]["status"] == "ended_abnormally"
    assert units["/t/net/r"]["status"] == "ended_normally"
    out = lhost.run("log", "/t/net/a").stdout.split()
    assert out == [units["/t/net/a"]["run_id"], "1", "1"]
