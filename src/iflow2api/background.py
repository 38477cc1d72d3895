"""Work started off the request path: state store writes, model-list warm-ups, stopping refreshers.

Each task is kept referenced until it ends (asyncio holds only weak references to tasks), its
failure is logged rather than lost, and at shutdown the gateway waits a moment for what is still
running, so the last cooldowns and memories reach the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("iflow2api")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background work failed: %s", task.exception())

    async def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the work under way, then cancel what is left."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(list(self._tasks), timeout=seconds)
        for task in late:
            task.cancel()
