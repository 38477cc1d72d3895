"""Per-account concurrency: a slot limit with a bounded, first-come-first-served waiting line.

iFlow serves one request at a time per account and answers a second one with a 449 (protocol §8).
Rather than pass that failure on, requests beyond the limit wait here; only when the line itself is
full does the client get a 429, with a ``Retry-After`` estimated from how long requests take.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from iflow2api.errors import QueueFull


class Gate:
    __slots__ = ("_average_seconds", "_in_flight", "_waiters", "limit", "queue_size", "timeout")

    def __init__(self, limit: int, queue_size: int, timeout: float) -> None:
        self.limit = limit
        self.queue_size = queue_size
        self.timeout = timeout
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._average_seconds = 1.0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _retry_after(self) -> float:
        return self._average_seconds * (len(self._waiters) + 1) / max(self.limit, 1)

    async def _acquire(self) -> None:
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            return
        if len(self._waiters) >= self.queue_size:
            raise QueueFull(
                f"Too many requests are waiting for this upstream account ({self.queue_size} queued, "
                f"{self.limit} at a time). Retry later.",
                retry_after=self._retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us just as we gave up: pass it on rather than leak it.
                self._release()
            else:
                waiter.cancel()
                # _release may already have dropped it, in the same loop turn.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise QueueFull(
                    f"Waited {self.timeout:g} s for this upstream account to be free. Retry later.",
                    retry_after=self._retry_after(),
                ) from None
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter; in_flight is unchanged
                return
        self._in_flight -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        started = time.monotonic()
        try:
            yield
        finally:
            self._average_seconds = 0.8 * self._average_seconds + 0.2 * (time.monotonic() - started)
            self._release()


class Gates:
    """One gate per account; ``limit=None`` means unlimited (no gate at all, no cost)."""

    def __init__(self, queue_size: int, timeout: float) -> None:
        self.queue_size = queue_size
        self.timeout = timeout
        self._gates: dict[str, Gate] = {}

    def get(self, account_key: str, limit: int | None) -> Gate | None:
        if not limit:
            return None
        gate = self._gates.get(account_key)
        if gate is None or gate.limit != limit:
            gate = self._gates[account_key] = Gate(limit, self.queue_size, self.timeout)
        return gate
