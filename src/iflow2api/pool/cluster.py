"""This instance's part among several gateway instances: its account leases and shared health.

Built by the gateway only when ``redis_url`` is set, and handed to the pool (``Pool(leases=...,
shared_health=...)``); one process alone has none of it, and its pool awaits nothing more.

>>> # Cluster(coordinator, lease_ttl=30.0) -> Pool(..., leases=c.leases, shared_health=c.health)
"""

from __future__ import annotations

from collections.abc import Callable

from iflow2api.coordination import Coordinator, Event
from iflow2api.pool.leases import Leases
from iflow2api.pool.shared_health import SharedHealth


def _ignore(_operation: str) -> None:
    return None


class Cluster:
    def __init__(
        self, coordinator: Coordinator, *, lease_ttl: float, failed: Callable[[str], None] = _ignore
    ) -> None:
        self.coordinator = coordinator
        self.leases = Leases(coordinator, ttl=lease_ttl, failed=failed)
        self.health = SharedHealth(coordinator, failed=failed)
        coordinator.on_event(self._heard)

    def _heard(self, event: Event) -> None:
        if event.kind == "freed":
            self.leases.heard(event)
        elif event.kind == "health":
            self.health.heard(event)

    def start(self) -> None:
        """Begin renewing leases, publishing and polling health (the pool is bound by then)."""
        self.leases.start()
        self.health.start()

    async def close(self) -> None:
        await self.health.close()
        await self.leases.close()
