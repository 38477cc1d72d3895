"""The usage the page shows: recent rows, and their summary kept for a moment.

The page polls ``GET /api/usage``; summing up hundreds of thousands of rows takes a while, so a
summary is served again for ``SUMMARY_SECONDS`` rather than computed anew on every poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from iflow2api.state.records import UsageRow
from iflow2api.state.store import StateStore
from iflow2api.usage import stats
from iflow2api.usage.recorder import UsageRecorder

#: Seconds a usage summary is served again rather than computed anew (the page polls it).
SUMMARY_SECONDS = 3.0


class UsageSummaries:
    def __init__(
        self, recorder: UsageRecorder, store: StateStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._recorder, self._store, self._clock = recorder, store, clock
        #: Recent summaries by range in days, with when they were made.
        self._recent: dict[int, tuple[float, dict[str, Any]]] = {}

    async def rows(self, days: int, now: float) -> list[UsageRow]:
        """Every row of the last ``days`` days, the ones still waiting to be written included."""
        await self._recorder.flush()
        return await self._store.usage(now - days * 86400)

    async def summary(self, days: int) -> dict[str, Any]:
        """``stats.summarize`` of the last ``days`` days, at most ``SUMMARY_SECONDS`` old."""
        now = self._clock()
        cached = self._recent.get(days)
        if cached is None or now - cached[0] > SUMMARY_SECONDS:
            rows = await self.rows(days, now)
            # Hundreds of thousands of rows take a while to sum up: off the event loop.
            summary = await asyncio.to_thread(stats.summarize, rows, now=now, days=days)
            cached = self._recent[days] = (now, summary)
        return cached[1]
