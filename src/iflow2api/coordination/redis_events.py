"""The Redis coordinator's ear: one subscription to the events channel, kept alive.

``EventListener.run`` subscribes, hands every event of ANOTHER instance to the listeners (on the
event loop, one after the other; one that raises is logged and the rest still hear it), and when
the subscription breaks (Redis restarted, a reset, a server that stopped answering its pings) it
waits a little, longer each time up to a second, and subscribes again. Events published while it
was away are lost: pub/sub keeps nothing, so whoever waits on one also polls (the pool's backstop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from iflow2api.coordination import Event
from iflow2api.coordination.wire import event_from

log = logging.getLogger(__name__)

CHANNEL: Final = "i2a:events"
#: A quiet subscription is pinged this often; one silent for twice as long is taken for dead (a
#: server gone without closing the socket would otherwise never be noticed).
PING_EVERY: Final = 2.0
#: The wait before subscribing again grows from the first to the last.
BACKOFF: Final = (0.05, 1.0)


class EventListener:
    def __init__(self, client: aioredis.Redis, instance: str, failures: dict[str, int]) -> None:
        self._client = client
        self._instance = instance
        self._failures = failures
        self.listeners: list[Callable[[Event], None]] = []
        #: Set while subscribed (tests and start() wait on it).
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        delay = BACKOFF[0]
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as error:
                self._failures["events"] = self._failures.get("events", 0) + 1
                if self.subscribed.is_set():
                    log.warning("coordination events: subscription lost (%s); subscribing again", error)
                else:
                    log.debug("coordination events: cannot subscribe (%s); again in %.2f s", error, delay)
            if self.subscribed.is_set():
                # It was working: a new outage starts with the short wait again.
                self.subscribed.clear()
                delay = BACKOFF[0]
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self.subscribed.set()
            heard = pinged = loop.time()
            while True:
                message = await pubsub.get_message(timeout=PING_EVERY / 4)
                now = loop.time()
                if message is not None:
                    heard = now
                    if message["type"] == "message":
                        self._deliver(message["data"])
                elif now - heard > 2 * PING_EVERY:
                    raise ConnectionError("no answer to its pings")
                elif now - pinged > PING_EVERY:
                    pinged = now
                    await pubsub.ping()
        finally:
            # A broken connection may fail to close too; it is dropped either way.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, data: str | bytes) -> None:
        event = event_from(data)
        if event is None or event.instance == self._instance:
            return
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("coordination event listener failed on %s", event)
