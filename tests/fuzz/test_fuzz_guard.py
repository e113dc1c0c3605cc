"""The guard itself: a hang is caught and reported, a quick input is recorded."""

from __future__ import annotations

import time

import fuzzguard
import pytest
from fuzzguard import STATS, Hang, guarded


def test_a_quick_input_is_counted() -> None:
    with guarded("guard-self"):
        sum(range(1000))
    assert STATS["guard-self"].inputs >= 1


def test_an_input_that_never_ends_is_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzzguard, "HANG_SECONDS", 0.2)
    with pytest.raises(Hang), guarded("guard-hang"):
        while True:
            time.sleep(0.01)
