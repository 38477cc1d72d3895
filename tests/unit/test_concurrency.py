from __future__ import annotations

import asyncio

import pytest

from iflow2api.concurrency import Gate, Gates
from iflow2api.errors import QueueFull


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_one_at_a_time_in_arrival_order() -> None:
    async def main() -> None:
        gate = Gate(limit=1, queue_size=10, timeout=5)
        order: list[int] = []

        async def worker(i: int) -> None:
            async with gate.slot():
                order.append(i)
                assert gate.in_flight == 1
                await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(i) for i in range(5)))
        assert order == [0, 1, 2, 3, 4]
        assert gate.in_flight == 0 and gate.waiting == 0

    run(main())


def test_full_queue_raises_with_retry_after() -> None:
    async def main() -> None:
        gate = Gate(limit=1, queue_size=1, timeout=5)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.waiting) == (1, 1)
        with pytest.raises(QueueFull) as caught:
            async with gate.slot():
                pass
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        release.set()
        await asyncio.gather(*holders)
        assert gate.in_flight == 0

    run(main())


def test_cancelled_waiter_leaves_the_line_and_leaks_no_slot() -> None:
    async def main() -> None:
        gate = Gate(limit=1, queue_size=5, timeout=5)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0)
        assert gate.waiting == 1
        waiter.cancel()
        await asyncio.sleep(0)
        assert gate.waiting == 0
        release.set()
        await holder
        assert gate.in_flight == 0
        async with gate.slot():
            assert gate.in_flight == 1

    run(main())


def test_queue_timeout() -> None:
    async def main() -> None:
        gate = Gate(limit=1, queue_size=5, timeout=0.05)
        async with gate.slot():
            with pytest.raises(QueueFull, match="Waited"):
                async with gate.slot():
                    pass
        assert gate.in_flight == 0 and gate.waiting == 0

    run(main())


def test_unlimited_means_no_gate() -> None:
    gates = Gates(queue_size=1, timeout=1)
    assert gates.get("a", None) is None and gates.get("a", 0) is None
    gate = gates.get("a", 2)
    assert gate is not None and gates.get("a", 2) is gate


def test_waiter_cancelled_as_the_slot_frees_leaves_the_gate_usable() -> None:
    """A disconnect and a release in the same loop turn must not break the line (a review find)."""

    async def main() -> None:
        gate = Gate(limit=1, queue_size=10, timeout=100)
        holding, go = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with gate.slot():
                holding.set()
                await go.wait()

        async def waiter() -> None:
            async with gate.slot():
                pass

        held = asyncio.create_task(holder())
        await holding.wait()
        queued = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        go.set()
        queued.cancel()
        await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await queued
        await held
        assert (gate.in_flight, gate.waiting) == (0, 0)
        async with asyncio.timeout(1), gate.slot():
            assert gate.in_flight == 1

    run(main())
