"""The memory behind ``previous_response_id``: bounded by count and by bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from iflow2api.errors import InvalidRequest
from iflow2api.services.response_memory import ResponseMemory


def history(n: int, size: int) -> list[dict[str, Any]]:
    """A history of about ``size`` bytes as JSON."""
    return [{"role": "user", "content": f"{n}:" + "x" * (size - 40)}]


def test_the_oldest_go_once_the_bytes_run_over() -> None:
    saved: list[str] = []
    memory = ResponseMemory(100, max_bytes=1000, save=lambda rid, _h: saved.append(rid))
    for n in range(6):
        memory.put(f"resp_{n}", history(n, 300))
        assert memory.bytes <= 1000
    assert memory.bytes == sum(len(orjson.dumps(history(n, 300))) for n in (3, 4, 5))
    assert asyncio.run(memory.get("resp_5")) == history(5, 300)
    with pytest.raises(InvalidRequest, match="responses_store_max_bytes") as forgotten:
        asyncio.run(memory.get("resp_2"))
    assert forgotten.value.code == "previous_response_not_found"
    assert saved == [f"resp_{n}" for n in range(6)]


def test_one_history_larger_than_the_bound_is_neither_kept_nor_saved() -> None:
    saved: list[str] = []
    memory = ResponseMemory(100, max_bytes=1000, save=lambda rid, _h: saved.append(rid))
    memory.put("resp_small", history(0, 300))
    memory.put("resp_huge", history(1, 5000))
    assert saved == ["resp_small"]
    assert asyncio.run(memory.get("resp_small")) == history(0, 300)
    with pytest.raises(InvalidRequest):
        asyncio.run(memory.get("resp_huge"))


def test_what_the_store_gives_back_counts_too() -> None:
    async def load(rid: str) -> list[dict[str, Any]] | None:
        return history(int(rid[-1]), 400)

    memory = ResponseMemory(100, max_bytes=1000, load=load)
    for n in range(5):
        asyncio.run(memory.get(f"resp_{n}"))
        assert memory.bytes <= 1000


def test_count_bound_still_holds() -> None:
    memory = ResponseMemory(2, max_bytes=0)  # 0: no byte bound
    for n in range(4):
        memory.put(f"resp_{n}", history(n, 100))
    assert memory.bytes == 2 * len(orjson.dumps(history(0, 100)))
