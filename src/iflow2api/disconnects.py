"""Noticing that a client went away, so its upstream request can be cancelled; and stopping.

ASGI reports a disconnect only to whoever awaits ``receive()``, which takes a task per request.
Most non-streaming requests finish in a few milliseconds, so that task is started only for the
ones still running after ``after`` seconds: one shared sweeper looks every ``after`` seconds and
starts watchers for those, and a request that finishes in time pays for a dict entry, nothing more.

The same register serves a graceful stop, drained the way uvicorn, nginx or envoy drain:
``drain(grace)`` refuses new requests and gives the open ones ``grace`` seconds to finish; then
``shut_down()`` cancels every watched request still open, which then fails with ``ShuttingDown``
(a ``GatewayError``), so each client gets an error in its own error shape (an error event, in a stream)
instead of a stream cut off when the server gives up waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from iflow2api.errors import ShuttingDown

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

log = logging.getLogger("iflow2api.stop")


class ClientGone(Exception):
    """The client disconnected; nobody is left to answer."""


class _Watched:
    __slots__ = ("finished", "gone", "receive", "since", "stopping", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any], receive: Receive, finished: Callable[[], bool]) -> None:
        self.task = task
        self.receive = receive
        self.finished = finished
        self.since = time.monotonic()
        self.watcher: asyncio.Task[None] | None = None
        self.gone = False
        self.stopping = False

    async def watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                # Once the final response message is on its way there is nothing left to cancel.
                if not self.finished():
                    self.gone = True
                    self.task.cancel()
                return


class DisconnectWatch:
    def __init__(self, after: float = 0.05) -> None:
        self.after = after
        self._watched: dict[asyncio.Task[Any], _Watched] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        #: A stop has begun: requests arriving now are refused (``ShuttingDown``).
        self.draining = False
        self._grace: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def drain(self, grace: float) -> None:
        """Refuse new requests from now on; end those still open after ``grace`` seconds."""
        if self.draining:
            return
        self.draining = True
        log.info("shutting down: open requests have %g s to finish (a second signal ends them now)", grace)
        self._grace = asyncio.get_running_loop().call_later(grace, self.shut_down)

    def shut_down(self) -> None:
        """End every watched request now with ``ShuttingDown``, and any that starts from now on."""
        self.draining = self._closing = True
        if self._grace is not None:
            self._grace.cancel()
        open_ones = [
            watched
            for watched in self._watched.values()
            if not watched.gone and not watched.stopping and not watched.finished()
        ]
        if open_ones:
            log.info("shutting down: ending %d open request(s), each with an error", len(open_ones))
        for watched in open_ones:
            watched.stopping = True
            watched.task.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.after)
            threshold = time.monotonic() - self.after
            for watched in self._watched.values():
                if watched.watcher is None and watched.since <= threshold:
                    watched.watcher = asyncio.ensure_future(watched.watch())

    @contextlib.contextmanager
    def watching(self, receive: Receive, finished: Callable[[], bool]) -> Iterator[None]:
        """Within this block, the current task is cancelled if its client disconnects.

        The cancellation surfaces as ``ClientGone``, or as ``ShuttingDown`` after ``shut_down()``.
        Only this task is ever cancelled, and only while it is suspended inside the block.
        """
        if self._closing:
            raise shutting_down()
        task = asyncio.current_task()
        assert task is not None
        watched = self._watched[task] = _Watched(task, receive, finished)
        try:
            yield
        except asyncio.CancelledError:
            if watched.gone:
                task.uncancel()
                raise ClientGone from None
            if watched.stopping:
                task.uncancel()
                raise shutting_down() from None
            raise
        finally:
            del self._watched[task]
            if watched.watcher is not None:
                watched.watcher.cancel()


def shutting_down() -> ShuttingDown:
    """The error for a request the stop ends or refuses; the client may retry elsewhere or later."""
    # ``connection: close``, so that a client on a kept-alive connection opens a new one (to the
    # next instance, behind a balancer) rather than retrying on this one.
    return ShuttingDown(
        "The gateway is shutting down; send the request again in a moment.",
        headers=[(b"connection", b"close")],
    )
