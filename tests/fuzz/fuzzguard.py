"""The guard every fuzzing target runs its inputs under: no hang, bounded memory.

A parser given a hostile input must end, and quickly; an input that takes longer than
HANG_SECONDS is a hang (it raises here, so hypothesis shrinks it to a small example).
Times and peak memory are recorded per target and printed at the end of the session
(tests/fuzz/conftest.py), so the figures the fuzzing tier reaches are in CI's output,
without a test that fails because the machine was busy. Use: `from fuzzguard import guarded`.
"""

from __future__ import annotations

import gc
import resource
import signal
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

#: An input that a parser has not finished after this long is a hang.
HANG_SECONDS = 10.0
#: The most memory (bytes, as tracemalloc counts Python allocations) one input may take.
MEMORY_LIMIT = 256 * 1024 * 1024
#: Tracing allocations makes a parser several times slower: one input in this many is
#: traced for its peak. Every input is also held to the process's resident size, which
#: costs nothing: an input that takes gigabytes (the stray `{` of issue 12 did) is caught
#: by that bound whether it is traced or not.
TRACE_EVERY = 10
RSS_LIMIT_KB = 1536 * 1024


class Hang(Exception):
    """A parser did not end within HANG_SECONDS on one input."""


@dataclass
class Stats:
    inputs: int = 0
    timed: int = 0
    slowest: float = 0.0
    #: the most CPU time (this thread's) one untraced input took: the parser's own
    #: work, which a busy machine does not inflate as it does the wall-clock time
    slowest_cpu: float = 0.0
    #: the most CPU time one untraced input took without the garbage collections run
    #: during it: a full collection scans every object of the whole test session (a
    #: second, late in CI's one process), which is the harness's cost, not the input's
    slowest_own: float = 0.0
    peak: int = 0
    total: float = 0.0


STATS: dict[str, Stats] = {}


class _Collector:
    """This thread's CPU time spent in garbage collections, summed (gc.callbacks)."""

    spent = 0.0
    began = 0.0

    @classmethod
    def on_phase(cls, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            cls.began = time.thread_time()
        else:
            cls.spent += time.thread_time() - cls.began


gc.callbacks.append(_Collector.on_phase)


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang(f"input not handled within {HANG_SECONDS} s")


@contextmanager
def guarded(target: str) -> Iterator[None]:
    """Run one input of ``target`` under the hang guard and record its time and memory."""
    stats = STATS.setdefault(target, Stats())
    # The 10th, 20th... input is traced for memory; the times reported are those of
    # the untraced ones (tracing slows an input several times over).
    trace = stats.inputs % TRACE_EVERY == TRACE_EVERY - 1
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    if trace:
        tracemalloc.start()
    t0, c0, g0 = time.perf_counter(), time.thread_time(), _Collector.spent
    peak = 0
    try:
        yield
    finally:
        elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
        collecting = _Collector.spent - g0
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        stats.inputs += 1
        if not trace:
            stats.timed += 1
            stats.total += elapsed
            stats.slowest = max(stats.slowest, elapsed)
            stats.slowest_cpu = max(stats.slowest_cpu, cpu)
            stats.slowest_own = max(stats.slowest_own, cpu - collecting)
        stats.peak = max(stats.peak, peak)
    if peak > MEMORY_LIMIT:
        raise AssertionError(f"{target}: one input took {peak / 2**20:.0f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if rss > RSS_LIMIT_KB:
        raise AssertionError(f"{target}: the test process grew to {rss // 1024} MiB")
