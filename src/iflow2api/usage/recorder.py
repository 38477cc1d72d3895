"""Write-behind usage recording: the request path hands a row over and never waits on the store.

``record()`` only appends to a bounded in-memory line and bumps today's per-key totals; a background
task moves the line into the store every ``flush_interval`` seconds and prunes old rows hourly. The
totals let the gateway enforce per-key daily limits without asking the store on every request.

A store outage costs nothing on the request path: failed batches go back in line (oldest dropped
first once ``max_pending`` is reached) and are retried on the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from iflow2api.state.records import UsageRow
from iflow2api.state.store import StateStore

log = logging.getLogger("iflow2api.usage")

DAY_SECONDS = 86_400
PRUNE_INTERVAL = 3_600.0


def utc_day(at: float) -> int:
    """Days since the epoch, in UTC (POSIX time has no leap seconds, so this is exact).

    >>> utc_day(86_399.9), utc_day(86_400.0)
    (0, 1)
    """
    return int(at // DAY_SECONDS)


class _DayTotals:
    __slots__ = ("requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.tokens = 0


class UsageRecorder:
    """Collects ``UsageRow``s off the request path and writes them to a ``StateStore`` in batches.

    Lifecycle: ``await load_today()`` and ``start()`` at startup (inside the running loop),
    ``await stop()`` at shutdown; ``record()`` from anywhere on the loop in between (and before).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        retention_days: float,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._store = store
        self._retention_seconds = retention_days * DAY_SECONDS
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._clock = clock
        self._pending: deque[UsageRow] = deque()
        self._overflowing = False
        self._dropped = 0
        self._failures_in_a_row = 0
        # Held while a batch is out of the line and not yet known to be stored, so batches land in
        # order and load_today() never sees a batch that is neither pending nor stored.
        self._write_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._day = utc_day(clock())
        self._today: dict[str, _DayTotals] = {}

    # -- the request path ---------------------------------------------------------------------------
    def record(self, row: UsageRow) -> None:
        """Queue ``row`` for the store; never blocks, never awaits, never touches the store.

        A row with a key that arrived today (UTC) also counts in that key's totals for today.
        """
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self._note_dropped(1)
        self._pending.append(row)
        self.count(row)

    def count(self, row: UsageRow) -> None:
        """Only count ``row`` in its key's totals for today (with recording off, limits still hold)."""
        if row.key is not None and utc_day(row.at) == self._current_day():
            totals = self._today.get(row.key)
            if totals is None:
                totals = self._today[row.key] = _DayTotals()
            totals.requests += 1
            totals.tokens += row.prompt_tokens + row.completion_tokens

    def tokens_today(self, key_name: str) -> int:
        """Prompt + completion tokens used by ``key_name`` since the start of the UTC day."""
        self._current_day()
        totals = self._today.get(key_name)
        return totals.tokens if totals else 0

    def requests_today(self, key_name: str) -> int:
        """Requests made with ``key_name`` since the start of the UTC day."""
        self._current_day()
        totals = self._today.get(key_name)
        return totals.requests if totals else 0

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._pending)

    @property
    def dropped(self) -> int:
        """Rows thrown away since start because the line was full (the store was down or slow)."""
        return self._dropped

    def _current_day(self) -> int:
        day = utc_day(self._clock())
        if day != self._day:
            self._day = day
            self._today = {}
        return day

    def _note_dropped(self, count: int) -> None:
        self._dropped += count
        if not self._overflowing:
            # Once per episode: a store that is down for an hour would otherwise log a line per request.
            self._overflowing = True
            log.warning(
                "usage: more than %d rows are waiting for the store; dropping the oldest until it catches up",
                self._max_pending,
            )

    # -- startup ------------------------------------------------------------------------------------
    async def load_today(self) -> None:
        """Seed today's per-key totals from the store (rows since the start of the UTC day).

        Rows recorded but not yet written are counted too, so this may be called after requests
        have started arriving. Store errors propagate: the caller decides whether to start anyway.
        """
        async with self._write_lock:
            day = self._current_day()
            stored = await self._store.usage(since=day * DAY_SECONDS)
            today: dict[str, _DayTotals] = {}
            # No batch can be in flight while the lock is held: every row is stored or pending.
            for row in (*stored, *self._pending):
                if row.key is None or utc_day(row.at) != day:
                    continue
                totals = today.get(row.key)
                if totals is None:
                    totals = today[row.key] = _DayTotals()
                totals.requests += 1
                totals.tokens += row.prompt_tokens + row.completion_tokens
            if self._current_day() == day:
                self._today = today

    # -- the background writer ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer; call from inside the running event loop."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("UsageRecorder is already started")
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-recorder")

    async def stop(self) -> None:
        """Stop the background writer and write whatever is still pending.

        The writer is woken rather than cancelled mid-write, so a batch the store is busy writing
        is neither lost nor written twice.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            try:
                await asyncio.wait([task])
            finally:
                if not task.done():  # stop() itself was cancelled
                    task.cancel()
            if not task.cancelled() and (failure := task.exception()) is not None:
                log.error("usage: the background writer had stopped early", exc_info=failure)
        await self.flush()

    async def flush(self) -> None:
        """Write everything pending now. A store error is logged and the rows go back in line."""
        async with self._write_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, deque()
            try:
                await self._store.add_usage(list(batch))
            except Exception as exc:
                # A cancelled write (BaseException) is not put back: it may have landed already.
                self._requeue(batch)
                self._failures_in_a_row += 1
                if self._failures_in_a_row == 1:
                    log.warning("usage: could not write %d rows, will retry: %s", len(batch), exc)
                else:
                    log.debug("usage: write failed again (%d in a row): %s", self._failures_in_a_row, exc)
                return
            if self._failures_in_a_row:
                log.info("usage: writes recovered after %d failures", self._failures_in_a_row)
                self._failures_in_a_row = 0
            # The line has room again: a later overflow is a new episode and deserves its own warning.
            self._overflowing = False

    def _requeue(self, batch: deque[UsageRow]) -> None:
        # The failed batch is older than anything recorded since, so it goes first, and the oldest
        # rows are the ones to drop when the line is full.
        batch.extend(self._pending)
        overflow = len(batch) - self._max_pending
        for _ in range(max(overflow, 0)):
            batch.popleft()
        self._pending = batch
        if overflow > 0:
            self._note_dropped(overflow)

    async def prune(self) -> None:
        """Delete rows older than the retention period (nothing when ``retention_days <= 0``)."""
        if self._retention_seconds <= 0:
            return
        try:
            removed = await self._store.prune_usage(before=self._clock() - self._retention_seconds)
        except Exception as exc:
            log.warning("usage: could not prune old rows, will retry in an hour: %s", exc)
            return
        if removed:
            log.info(
                "usage: pruned %d rows older than %g days", removed, self._retention_seconds / DAY_SECONDS
            )

    async def _run(self) -> None:
        next_prune = self._clock()
        while not self._stopping.is_set():
            if self._clock() >= next_prune:
                next_prune = self._clock() + PRUNE_INTERVAL
                await self.prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._flush_interval)
            await self.flush()
