"""A chain's units wait behind their predecessors without being looked at again at every
step (ADR 0038); what changes upstream still reaches every one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chain(flag: Path) -> str:
    # j3 fails until the flag file exists; j1 sleeps so that the rest of the chain has
    # been found waiting (and passed by) before anything upstream ends.
    units = [
        "  - name: j1\n    script: 'sleep 0.3'",
        "  - name: j2\n    after: [j1]\n    command: [/bin/true]",
        f"  - name: j3\n    after: [j2]\n    script: 'test -e {flag}'",
    ]
    units += [
        f"  - name: j{k}\n    after: [j{k - 1}]\n    command: [/bin/true]" for k in range(4, 9)
    ]
    units.append("  - name: rec\n    after: [j8]\n    recovery: true\n    command: [/bin/true]")
    units.append("  - name: any\n    type: or\n    after: [j8, j2]")
    units.append("  - name: last\n    after: [any]\n    command: [/bin/true]")
    body = "\n".join("      " + line for text in units for line in text.splitlines())
    return f"group: /c\njobnets:\n  - name: net\n    units:\n{body}\n"


def test_a_failure_reaches_the_end_of_a_chain_and_a_rerun_runs_it_again(
    lhost: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    lhost.define(chain(flag))
    run = lhost.entry("/c/net")
    lhost.wait(run)
    units = lhost.units(run)
    status = {p.rsplit("/", 1)[-1]: u["status"] for p, u in units.items()}
    assert status["net"] == "ended_abnormally"
    assert status["j1"] == status["j2"] == "ended_normally"
    assert status["j3"] == "ended_abnormally"
    # blocked one after the other down the chain, in one evaluation or several
    assert [status[f"j{k}"] for k in range(4, 9)] == ["not_executed"] * 5
    assert status["rec"] == "not_executed"  # j8 never ran, so neither did its recovery
    # an OR unit: j2 ended normally, so it ran, and so did its successor
    assert status["any"] == status["last"] == "ended_normally"

    flag.touch()
    lhost.run("rerun", "/c/net", "--run", str(run), "--from", "/c/net/j3")
    lhost.wait(run)
    units = lhost.units(run)
    status = {p.rsplit("/", 1)[-1]: u["status"] for p, u in units.items()}
    assert status["net"] == "ended_normally", status
    assert all(status[f"j{k}"] == "ended_normally" for k in range(1, 9)), status
    assert status["rec"] == "not_executed"  # nothing above it ended abnormally
