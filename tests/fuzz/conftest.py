"""Prints what the fuzzing tier tried: inputs per target, slowest input, peak memory."""

from __future__ import annotations

from typing import Any

from fuzzguard import STATS, TRACE_EVERY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STATS:
        return
    terminalreporter.section("fuzzing figures")
    for target, s in sorted(STATS.items()):
        terminalreporter.write_line(
            f"{target}: {s.inputs} inputs, slowest {s.slowest * 1000:.1f} ms (untraced; "
            f"CPU {s.slowest_cpu * 1000:.1f} ms, "
            f"without garbage collection {s.slowest_own * 1000:.1f} ms), "
            f"mean {s.total / max(s.timed, 1) * 1000:.2f} ms, "
            f"peak {s.peak / 2**20:.1f} MiB (1 input in {TRACE_EVERY} traced)"
        )
