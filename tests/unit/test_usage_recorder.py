from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from iflow2api.state.records import UsageRow
from iflow2api.state.store import StateStore
from iflow2api.usage.recorder import UsageRecorder

# 2024-05-01 23:59:00 UTC: a minute before a UTC day ends.
LATE = datetime(2024, 5, 1, 23, 59, tzinfo=UTC).timestamp()
START_OF_DAY = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
NEXT_DAY = datetime(2024, 5, 2, 0, 0, 30, tzinfo=UTC).timestamp()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def usage(at: float = LATE, key: str | None = "alice", prompt: int = 10, completion: int = 5) -> UsageRow:
    return UsageRow(
        at=at,
        key=key,
        account="acc",
        model="glm-4.7",
        dialect="chat",
        stream=False,
        status=200,
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=3,
    )


class FakeStore:
    """The usage part of a StateStore, in memory. Every call is noted when it is made (not when
    awaited), so a call that was never awaited is still seen."""

    def __init__(self, rows: Sequence[UsageRow] = ()) -> None:
        self.rows = list(rows)
        self.calls: list[str] = []
        self.batches: list[list[UsageRow]] = []
        self.prunes: list[float] = []
        self.usage_since: list[float] = []
        self.fail = False
        #: When set, add_usage and usage wait for it before answering.
        self.gate: asyncio.Event | None = None
        self.entered = 0

    def add_usage(self, rows: Sequence[UsageRow]) -> Awaitable[None]:
        self.calls.append("add_usage")
        batch = list(rows)

        async def write() -> None:
            self.entered += 1
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                raise OSError("disk full")
            self.batches.append(batch)
            self.rows.extend(batch)

        return write()

    def usage(self, since: float, until: float | None = None) -> Awaitable[list[UsageRow]]:
        self.calls.append("usage")
        self.usage_since.append(since)

        async def read() -> list[UsageRow]:
            snapshot = [row for row in self.rows if since <= row.at and (until is None or row.at < until)]
            if self.gate is not None:
                await self.gate.wait()
            return snapshot

        return read()

    def prune_usage(self, before: float) -> Awaitable[int]:
        self.calls.append("prune_usage")
        self.prunes.append(before)

        async def prune() -> int:
            if self.fail:
                raise OSError("disk full")
            kept = [row for row in self.rows if row.at >= before]
            removed = len(self.rows) - len(kept)
            self.rows = kept
            return removed

        return prune()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder_for(store: FakeStore, **options: Any) -> UsageRecorder:
    options.setdefault("retention_days", 30)
    return UsageRecorder(cast(StateStore, store), **options)


async def eventually(condition: Callable[[], bool]) -> None:
    """Let the loop run until the background writer has made ``condition`` true (a second at most)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


def test_record_is_synchronous_and_never_touches_the_store() -> None:
    store = FakeStore()
    recorder = recorder_for(store)
    assert not inspect.iscoroutinefunction(UsageRecorder.record)
    # No event loop runs here: record() could not await anything even if it tried.
    for i in range(1000):
        recorder.record(usage(at=LATE + i / 1000))
    assert store.calls == []
    assert recorder.pending == 1000


def test_flush_writes_batches_in_record_order() -> None:
    async def main() -> None:
        store = FakeStore()
        recorder = recorder_for(store)
        first, second, third = (usage(at=LATE + i) for i in range(3))
        recorder.record(first)
        recorder.record(second)
        await recorder.flush()
        assert recorder.pending == 0
        recorder.record(third)
        await recorder.flush()
        await recorder.flush()  # nothing pending: no empty write
        assert store.batches == [[first, second], [third]]
        assert store.calls == ["add_usage", "add_usage"]

    run(main())


def test_background_writer_flushes_every_interval_and_prunes_at_start() -> None:
    async def main() -> None:
        store = FakeStore()
        clock = Clock(LATE)
        recorder = recorder_for(store, retention_days=30, flush_interval=0.005, clock=clock)
        recorder.start()
        row = usage()
        recorder.record(row)
        await eventually(lambda: store.rows == [row])
        assert store.prunes == [LATE - 30 * 86_400]
        await recorder.stop()

    run(main())


def test_prunes_hourly_by_the_clock() -> None:
    async def main() -> None:
        store = FakeStore()
        clock = Clock(LATE)
        recorder = recorder_for(store, retention_days=2.5, flush_interval=0.001, clock=clock)
        recorder.start()
        await eventually(lambda: len(store.prunes) == 1)
        clock.now = LATE + 3_599
        await asyncio.sleep(0.02)
        assert len(store.prunes) == 1
        clock.now = LATE + 3_600
        await eventually(lambda: len(store.prunes) == 2)
        assert store.prunes == [LATE - 2.5 * 86_400, LATE + 3_600 - 2.5 * 86_400]
        await recorder.stop()

    run(main())


@pytest.mark.parametrize("retention_days", [0, -1])
def test_no_pruning_when_retention_is_not_positive(retention_days: float) -> None:
    async def main() -> None:
        store = FakeStore()
        recorder = recorder_for(store, retention_days=retention_days, flush_interval=0.001)
        recorder.start()
        recorder.record(usage())
        await eventually(lambda: len(store.rows) == 1)
        await recorder.prune()
        await recorder.stop()
        assert "prune_usage" not in store.calls

    run(main())


def test_failed_prune_is_logged_and_the_writer_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = FakeStore()
        store.fail = True
        recorder = recorder_for(store, flush_interval=0.001)
        recorder.start()
        await eventually(lambda: len(store.prunes) == 1)
        store.fail = False
        recorder.record(usage())
        await eventually(lambda: len(store.rows) == 1)
        await recorder.stop()

    with caplog.at_level(logging.WARNING, logger="iflow2api.usage"):
        run(main())
    assert [r.getMessage() for r in caplog.records] == [
        "usage: could not prune old rows, will retry in an hour: disk full"
    ]


def test_store_failure_puts_the_batch_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = FakeStore()
        store.fail = True
        recorder = recorder_for(store)
        first, second = usage(at=LATE), usage(at=LATE + 1)
        recorder.record(first)
        await recorder.flush()
        assert recorder.pending == 1
        recorder.record(second)
        await recorder.flush()
        assert recorder.pending == 2
        store.fail = False
        await recorder.flush()
        assert store.batches == [[first, second]]
        assert recorder.pending == 0

    with caplog.at_level(logging.WARNING, logger="iflow2api.usage"):
        run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["usage: could not write 1 rows, will retry: disk full"]


def test_overflow_drops_the_oldest_and_warns_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = FakeStore()
        recorder = recorder_for(store, max_pending=3)
        rows = [usage(at=LATE + i) for i in range(9)]
        for row in rows[:5]:
            recorder.record(row)
        assert recorder.pending == 3
        assert recorder.dropped == 2
        await recorder.flush()
        assert store.batches == [rows[2:5]]
        for row in rows[5:]:
            recorder.record(row)
        assert recorder.dropped == 3

    with caplog.at_level(logging.WARNING, logger="iflow2api.usage"):
        run(main())
    assert [r.getMessage() for r in caplog.records] == [
        "usage: more than 3 rows are waiting for the store; dropping the oldest until it catches up"
    ] * 2


def test_a_failed_batch_goes_back_first_and_the_line_stays_bounded() -> None:
    async def main() -> None:
        store = FakeStore()
        store.fail = True
        store.gate = asyncio.Event()
        recorder = recorder_for(store, max_pending=3)
        rows = [usage(at=LATE + i) for i in range(5)]
        recorder.record(rows[0])
        recorder.record(rows[1])
        flushing = asyncio.create_task(recorder.flush())
        await eventually(lambda: store.entered == 1)
        recorder.record(rows[2])
        recorder.record(rows[3])
        store.gate.set()
        await flushing
        # rows 0 and 1 came back in front of 2 and 3; one had to go to stay within 3: the oldest.
        assert recorder.pending == 3
        assert recorder.dropped == 1
        store.fail = False
        await recorder.flush()
        assert store.rows == rows[1:4]

    run(main())


def test_stop_writes_the_rest_without_waiting_for_the_interval() -> None:
    async def main() -> None:
        store = FakeStore()
        recorder = recorder_for(store, flush_interval=60)
        recorder.start()
        row = usage()
        recorder.record(row)
        async with asyncio.timeout(1):
            await recorder.stop()
        assert store.rows == [row]
        assert recorder.pending == 0

    run(main())


def test_stop_during_a_write_neither_loses_nor_repeats_rows() -> None:
    async def main() -> None:
        store = FakeStore()
        store.gate = asyncio.Event()
        recorder = recorder_for(store, retention_days=0, flush_interval=0.001)
        recorder.start()
        first, second = usage(at=LATE), usage(at=LATE + 1)
        recorder.record(first)
        await eventually(lambda: store.entered == 1)
        stopping = asyncio.create_task(recorder.stop())
        await asyncio.sleep(0.005)
        recorder.record(second)
        store.gate.set()
        await stopping
        assert store.rows == [first, second]

    run(main())


def test_todays_totals_count_prompt_plus_completion_per_key() -> None:
    clock = Clock(LATE)
    recorder = recorder_for(FakeStore(), clock=clock)
    recorder.record(usage(key="alice", prompt=10, completion=5))
    recorder.record(usage(key="alice", prompt=1, completion=2))
    recorder.record(usage(key="bob", prompt=7, completion=0))
    recorder.record(usage(key=None, prompt=100, completion=100))
    recorder.record(usage(at=START_OF_DAY - 1, key="alice", prompt=1000))  # arrived yesterday
    assert (recorder.requests_today("alice"), recorder.tokens_today("alice")) == (2, 18)
    assert (recorder.requests_today("bob"), recorder.tokens_today("bob")) == (1, 7)
    assert (recorder.requests_today("carol"), recorder.tokens_today("carol")) == (0, 0)


def test_todays_totals_roll_over_at_utc_midnight() -> None:
    clock = Clock(LATE)
    recorder = recorder_for(FakeStore(), clock=clock)
    recorder.record(usage(key="alice"))
    assert recorder.tokens_today("alice") == 15
    clock.now = NEXT_DAY
    assert (recorder.requests_today("alice"), recorder.tokens_today("alice")) == (0, 0)
    # A request that arrived before midnight and finished after it belongs to yesterday.
    recorder.record(usage(at=LATE, key="alice"))
    recorder.record(usage(at=NEXT_DAY, key="alice", prompt=4, completion=4))
    assert (recorder.requests_today("alice"), recorder.tokens_today("alice")) == (1, 8)


def test_load_today_seeds_from_the_store_and_counts_pending_rows_once() -> None:
    async def main() -> None:
        stored = [
            usage(at=START_OF_DAY - 10, key="alice", prompt=500),  # yesterday
            usage(at=START_OF_DAY, key="alice", prompt=1, completion=1),
            usage(at=LATE - 60, key="bob", prompt=2, completion=2),
        ]
        store = FakeStore(stored)
        store.gate = asyncio.Event()
        recorder = recorder_for(store, clock=Clock(LATE))
        recorder.record(usage(key="alice", prompt=10, completion=0))  # pending, not yet stored
        loading = asyncio.create_task(recorder.load_today())
        await eventually(lambda: "usage" in store.calls)
        recorder.record(usage(key="alice", prompt=20, completion=0))  # arrives while loading
        store.gate.set()
        await loading
        assert store.usage_since == [START_OF_DAY]
        assert (recorder.requests_today("alice"), recorder.tokens_today("alice")) == (3, 32)
        assert (recorder.requests_today("bob"), recorder.tokens_today("bob")) == (1, 4)
        store.gate = None
        await recorder.flush()
        await recorder.load_today()
        assert (recorder.requests_today("alice"), recorder.tokens_today("alice")) == (3, 32)

    run(main())
