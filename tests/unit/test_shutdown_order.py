"""The gateway stops its parts in an order that keeps each one's last calls working: whatever may
still call the coordinator (the refreshers, the last requests' key tokens) before the leases go
back; the leases before the coordinator closes; the coordinator before the state store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from iflow2api.app import Gateway
from iflow2api.clustering import Shared
from iflow2api.settings import load
from tests.memory_coordinator import MemoryCoordinator, MemoryStore
from tests.unit.test_draining import Lifespan


class ClosingCoordinator(MemoryCoordinator):
    """The memory double, telling what reached it after it closed (a real client would fail)."""

    def __init__(self, store: MemoryStore, instance: str, steps: list[str]) -> None:
        super().__init__(store, instance)
        self.steps = steps
        self.closed = False
        self.late: list[str] = []

    async def close(self) -> None:
        self.closed = True
        self.steps.append("coordinator")
        await super().close()

    async def add_key_tokens(self, key_id: str, tokens: int, now: float) -> None:
        # A round trip: the stop goes on meanwhile, as it would with Redis.
        await asyncio.sleep(0.05)
        if self.closed:
            self.late.append(f"add_key_tokens {key_id}")
        else:
            self.steps.append("key tokens counted")
        await super().add_key_tokens(key_id, tokens, now)


def noted(
    steps: list[str], step: str, stop: Callable[[], Awaitable[None]]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def stopped() -> None:
        await stop()
        steps.append(step)

    return stopped


async def stop_order(tmp_path: Path) -> tuple[list[str], list[str]]:
    settings = load(
        env={"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")},
        config_path=None,
    )
    steps: list[str] = []
    coordinator = ClosingCoordinator(MemoryStore(), "gw-a", steps)
    gateway = Gateway(settings, coordinator=coordinator)
    shared = gateway.shared
    assert isinstance(shared, Shared)
    gateway.refresher.stop = noted(steps, "login refresher", gateway.refresher.stop)  # type: ignore[method-assign]
    gateway.accounts.stop = noted(steps, "account refreshers", gateway.accounts.stop)  # type: ignore[method-assign]
    shared.cluster.close = noted(steps, "leases", shared.cluster.close)  # type: ignore[method-assign]
    gateway.store.close = noted(steps, "store", gateway.store.close)  # type: ignore[method-assign]
    lifespan = Lifespan(gateway)
    await lifespan.start()
    # The last request's tokens, counted as it ended, just before the stop (Gateway.__call__).
    assert shared.key_limits is not None
    gateway.background.spawn(shared.key_limits.add_tokens("key-1", 12))
    await lifespan.stop()
    return steps, coordinator.late


def test_the_coordinator_closes_after_everything_that_may_call_it(tmp_path: Path) -> None:
    steps, late = asyncio.run(stop_order(tmp_path))
    assert late == []
    assert steps == [
        "login refresher",
        "account refreshers",
        "key tokens counted",
        "leases",
        "coordinator",
        "store",
    ]
