"""``cli.workers.Restarts``: a worker that keeps crashing is started again ever more slowly, then given up."""

from __future__ import annotations

import pytest

from iflow2api.cli import workers
from iflow2api.cli.workers import GIVE_UP, LAST_PAUSE, QUICK, Restarts


def test_quick_crashes_double_the_pause_and_the_last_one_in_a_row_gives_up() -> None:
    restarts = Restarts()
    pauses = [restarts.after_crash(0.1) for _ in range(GIVE_UP)]
    assert pauses[:-1] == [0.5 * 2**n for n in range(GIVE_UP - 1)]
    assert pauses[-1] is None


def test_a_worker_that_served_a_while_starts_a_new_streak() -> None:
    restarts = Restarts()
    for _ in range(GIVE_UP - 1):
        restarts.after_crash(0.1)
    assert restarts.after_crash(QUICK + 1) == 0.5  # not given up: it had served
    assert restarts.after_crash(0.1) == 1.0


def test_the_pause_never_exceeds_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "GIVE_UP", 100)  # crash on and on, to see the pauses' ceiling
    restarts = Restarts()
    pauses = [restarts.after_crash(0.1) for _ in range(12)]
    assert pauses[-1] == LAST_PAUSE and max(p or 0 for p in pauses) == LAST_PAUSE
