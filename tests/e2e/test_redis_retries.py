"""``RedisCoordinator``'s one retry on a broken connection, where a command must not run twice.

A proxy between the coordinator and a real redis-server passes a chosen command on to Redis and
then breaks the connection before Redis's reply comes back: the command ran, its caller never heard.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis

from iflow2api.coordination import CoordinationDown
from iflow2api.coordination.redis import RedisCoordinator, _key, _lock


class LosingProxy:
    """Forwards to Redis; the first request containing ``lose`` reaches Redis, its reply does not."""

    def __init__(self, port: int, lose: bytes) -> None:
        self._port, self._lose = port, lose
        self.lost = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._port)
        replies = asyncio.ensure_future(self._pump(up_reader, writer))
        try:
            while data := await reader.read(65536):
                losing = self.lost == 0 and self._lose in data
                if losing:
                    self.lost += 1
                    replies.cancel()  # what Redis answers from now on is never passed on
                up_writer.write(data)
                await up_writer.drain()
                if losing:
                    await asyncio.sleep(0.1)  # Redis runs it; then the line breaks
                    break
        finally:
            replies.cancel()
            for each in (writer, up_writer):
                each.close()
                with contextlib.suppress(ConnectionError):
                    await each.wait_closed()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_a_retried_lock_finds_its_own_token_and_takes_the_lock(redis_url: str) -> None:
    async def scenario() -> str | None:
        proxy = LosingProxy(_port(redis_url), b"lock-under-test")
        coordinator = RedisCoordinator(await proxy.start(), instance="a")
        try:
            taken = await coordinator.lock("lock-under-test", 30)
            assert proxy.lost == 1
            return taken
        finally:
            await coordinator.close()
            await proxy.close()

    taken = asyncio.run(scenario())
    holder = redis.Redis.from_url(redis_url, decode_responses=True).get(_lock("lock-under-test"))
    assert holder is not None  # the first SET ran, and its reply was lost
    assert taken == holder  # the retry saw our own token: the lock is ours, not "held by another"


def test_a_lost_incrby_reply_is_not_counted_twice(redis_url: str) -> None:
    async def scenario() -> None:
        proxy = LosingProxy(_port(redis_url), b"INCRBY")
        coordinator = RedisCoordinator(await proxy.start(), instance="a")
        try:
            with pytest.raises(CoordinationDown):  # not retried: reported, and the count kept once
                await coordinator.add_key_tokens("key-1", 100, now=1_800_000_000.0)
            assert proxy.lost == 1
        finally:
            await coordinator.close()
            await proxy.close()

    asyncio.run(scenario())
    counted = redis.Redis.from_url(redis_url, decode_responses=True).get(_key("key-1", "tokens:20270115"))
    assert counted == "100"
