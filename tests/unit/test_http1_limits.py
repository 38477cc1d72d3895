"""What the upstream HTTP client reads at most: a capped body, and compressed bodies inflated a step
at a time, so no answer, however small on the wire, fills memory or holds the event loop."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from iflow2api import settings
from iflow2api.upstream.connection import HIGH_WATER, INFLATE_STEP, MAX_BODY
from iflow2api.upstream.http1 import ConnectionPool
from iflow2api.upstream.wire import BodyTooLarge, BrokenResponse
from tests.unit.test_http1 import CHUNKED_HEAD, Conn, Handler, Server, fetch, idle_count, ok, read_all, run

MiB = 1024 * 1024
GZIP_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"


def zeros_gzipped(inflated: int, step: int = MiB) -> Iterator[bytes]:
    """A gzip stream of ``inflated`` zero bytes, made piece by piece (never held whole here)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(step)
    for _ in range(inflated // step):
        piece = packer.compress(block)
        if piece:
            yield piece
    yield packer.flush()


def as_chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


class Sender:
    """A handler that writes an answer until done or until the client hangs up; counts what went."""

    def __init__(self, head: bytes, body: Iterator[bytes]) -> None:
        self.head = head
        self.body = body
        self.sent = 0
        self.hung_up = False

    async def __call__(self, conn: Conn) -> None:
        await conn.request()
        try:
            await conn.send(self.head)
            for piece in self.body:
                await conn.send(piece)
                self.sent += len(piece)
            await conn.until_eof()
        except (ConnectionError, OSError):
            self.hung_up = True


async def read_capped(handler: Handler, max_body: int) -> BaseException:
    async with Server(handler) as server:
        pool = ConnectionPool(connect_timeout=1, max_body=max_body)
        with pytest.raises(BrokenResponse) as caught:
            # An answer refused within its first read fails as it is received, before any reading.
            # A generous head timeout: a hang guard, not a speed target (tracemalloc and a loaded
            # machine slow the sender's first bytes well past fetch's usual 2 s).
            await read_all(await fetch(pool, server.url(), head_timeout=15.0))
        assert idle_count(pool) == 0
        await pool.close()
        return caught.value


def test_the_default_cap() -> None:
    assert 64 * MiB == MAX_BODY
    assert ConnectionPool(connect_timeout=1)._max_body == MAX_BODY


def test_a_sized_body_beyond_the_cap_stops_the_reading() -> None:
    total = 64 * MiB
    sender = Sender(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total, (bytes(MiB) for _ in range(64)))
    error = run(read_capped(sender, 2 * MiB))
    assert isinstance(error, BodyTooLarge)
    assert "2097152 bytes" in str(error)
    assert sender.sent < total // 2  # the client hung up: it did not take the rest


def test_a_chunked_body_beyond_the_cap_stops_the_reading() -> None:
    sender = Sender(CHUNKED_HEAD, (as_chunk(bytes(MiB)) for _ in range(64)))
    assert isinstance(run(read_capped(sender, 2 * MiB)), BodyTooLarge)
    assert sender.sent < 32 * MiB


def test_a_body_up_to_the_cap_is_read() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> bytes:
        async with Server(Sender(ok(body), iter(()))) as server:
            pool = ConnectionPool(connect_timeout=1, max_body=len(body))
            try:
                return await read_all(await fetch(pool, server.url()))
            finally:
                await pool.close()

    assert run(main()) == body


def test_a_gzip_bomb_is_stopped_at_the_cap() -> None:
    # 256 MiB of zeros, about 250 KB on the wire: inflated whole, it would take as much memory.
    sender = Sender(GZIP_CHUNKED_HEAD, (as_chunk(piece) for piece in zeros_gzipped(256 * MiB)))
    tracemalloc.start()
    try:
        error = run(read_capped(sender, 4 * MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, BodyTooLarge)
    assert peak < 32 * MiB


def test_a_compressed_body_is_inflated_a_step_at_a_time_between_other_work() -> None:
    """No piece handed on is more than a step beyond the high-water mark, and the event loop runs
    other tasks while a highly compressed body is inflated (each step is a turn of the loop)."""
    inflated = 48 * MiB
    sender = Sender(GZIP_CHUNKED_HEAD, (as_chunk(piece) for piece in zeros_gzipped(inflated)))
    sender.body = iter([b"".join(sender.body) + b"0\r\n\r\n"])  # all of it in one write, ~50 KB

    async def main() -> tuple[list[int], list[int]]:
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        async with Server(sender) as server:
            pool = ConnectionPool(connect_timeout=1, max_body=inflated)
            response = await fetch(pool, server.url())
            ticker = asyncio.create_task(other_work())
            sizes: list[int] = []
            turns_seen: list[int] = []
            async for piece in response.iter_chunks():
                sizes.append(len(piece))
                turns_seen.append(turns)
            ticker.cancel()
            response.release()
            await pool.close()
            return sizes, turns_seen

    sizes, turns_seen = run(main())
    assert sum(sizes) == inflated
    assert max(sizes) <= HIGH_WATER + INFLATE_STEP
    assert len(sizes) >= inflated // (HIGH_WATER + INFLATE_STEP)
    # Between one piece and the next, the other task had its turn.
    assert all(later > earlier for earlier, later in itertools.pairwise(turns_seen))


def test_a_stepwise_inflated_body_is_whole_and_the_connection_kept() -> None:
    text = b"".join(b'{"index": %d, "delta": "token"}\n' % i for i in range(200_000))  # ~6 MiB
    packed = gzip.compress(text)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)

    async def handler(conn: Conn) -> None:
        for _ in range(2):
            await conn.request()
            await conn.send(head + packed)
        await conn.until_eof()

    async def main() -> list[bytes]:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1, max_body=len(text))
            bodies = [await read_all(await fetch(pool, server.url())) for _ in range(2)]
            assert server.connections == 1
            await pool.close()
            return bodies

    assert run(main()) == [text, text]


def test_corrupt_data_found_in_a_later_step_is_a_broken_response() -> None:
    packed = bytearray(gzip.compress(bytes(range(256)) * 40_000))  # ~10 MiB inflated
    packed[-6] ^= 0xFF  # the trailer's checksum: found only once everything is inflated
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)
    error = run(read_capped(Sender(head + bytes(packed), iter(())), 64 * MiB))
    assert not isinstance(error, BodyTooLarge)


def test_an_answer_over_the_cap_that_arrives_in_one_read_is_refused_too() -> None:
    sender = Sender(ok(b"x" * 3000), iter(()))
    assert isinstance(run(read_capped(sender, 1000)), BodyTooLarge)


def test_finish_drops_a_compressed_rest_and_keeps_the_connection() -> None:
    text = bytes(range(256)) * 16384  # 4 MiB: many steps
    packed = gzip.compress(text)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(head + packed[: len(packed) // 2])
        await asyncio.sleep(0.1)  # the rest comes later, while the client holds the first half
        await conn.send(packed[len(packed) // 2 :])
        await conn.until_eof()

    async def main() -> int:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            async for _ in response.iter_chunks():
                break  # the first piece only; the rest waits, compressed
            await response.finish(2)
            response.release()
            kept = idle_count(pool)
            await pool.close()
            return kept

    assert run(main()) == 1


def test_the_setting_defaults_to_the_clients_cap_and_must_be_positive() -> None:
    assert settings.load(env={}, flags={}, config_path=None).max_upstream_body == MAX_BODY
    loaded = settings.load(env={"IFLOW2API_MAX_UPSTREAM_BODY": "1048576"}, flags={}, config_path=None)
    assert loaded.max_upstream_body == MiB
    with pytest.raises(settings.SettingsError, match="max_upstream_body"):
        settings.load(env={"IFLOW2API_MAX_UPSTREAM_BODY": "0"}, flags={}, config_path=None)
