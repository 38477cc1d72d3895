"""``usage.summaries``: the page's usage rows and summary, a recent summary served again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from iflow2api.state import open_store
from iflow2api.state.records import UsageRow
from iflow2api.usage import summaries as summaries_module
from iflow2api.usage.recorder import UsageRecorder
from iflow2api.usage.summaries import UsageSummaries


def row(at: float) -> UsageRow:
    return UsageRow(
        at=at,
        key="alice",
        account="acc",
        model="glm-4.7",
        dialect="chat",
        stream=False,
        status=200,
        prompt_tokens=10,
        completion_tokens=5,
        reasoning_tokens=0,
    )


def test_rows_include_the_ones_not_yet_written(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = open_store(tmp_path)
        recorder = UsageRecorder(store, retention_days=30)
        now = time.time()
        recorder.record(row(now - 60))
        recorder.record(row(now - 3 * 86400))  # outside a one-day range
        rows = await UsageSummaries(recorder, store).rows(1, now)
        assert [r.at for r in rows] == [pytest.approx(now - 60)]
        await store.close()

    asyncio.run(scenario())


def test_a_summary_is_served_again_for_a_moment_then_made_anew(tmp_path: Path) -> None:
    clock = [time.time()]

    async def scenario() -> None:
        store = open_store(tmp_path)
        recorder = UsageRecorder(store, retention_days=30)
        summaries = UsageSummaries(recorder, store, clock=lambda: clock[0])
        recorder.record(row(clock[0] - 60))
        first = await summaries.summary(7)
        recorder.record(row(clock[0] - 30))
        assert await summaries.summary(7) is first  # the page's next poll: the same summary
        assert await summaries.summary(1) is not first  # another range has a summary of its own
        clock[0] += summaries_module.SUMMARY_SECONDS + 1
        fresh = await summaries.summary(7)
        assert fresh is not first
        assert fresh != first  # the second row counts now
        await store.close()

    asyncio.run(scenario())
