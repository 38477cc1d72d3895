"""The gateway among several instances (``redis_url``): its coordinator, the parts built on it,
and the order they start and stop in.

One process alone has none of this (``shared_parts`` gives ``Alone``) and awaits nothing more for it. With
several, ``Shared`` owns the coordinator and what speaks through it for the gateway as a whole:
the client keys' shared limits (``keylimits.SharedLimits``) and the pool's leases and shared health
(``pool.cluster.Cluster``). The refreshers lock through the same coordinator but belong to the
account book; the gateway stops them before ``Shared.close`` (see ``app.Gateway``'s shutdown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from iflow2api.coordination import CoordinationDown, Coordinator
from iflow2api.instances import instance_name
from iflow2api.keylimits import SharedLimits
from iflow2api.pool.cluster import Cluster
from iflow2api.settings import Settings
from iflow2api.usage.metrics import Metrics

log = logging.getLogger("iflow2api")


def coordinator_for(settings: Settings, instance: str) -> Coordinator | None:
    """The coordination store of several instances (``redis_url``); None for one alone."""
    if not settings.redis_url:
        return None
    # Imported here only: one process alone needs neither this module nor the redis package.
    from iflow2api.coordination.redis import RedisCoordinator

    return RedisCoordinator(settings.redis_url, instance=instance)


def name_of(settings: Settings, coordinator: Coordinator | None) -> str:
    """This instance's one name: a coordinator handed in already has it, else the setting's."""
    return coordinator.instance if coordinator is not None else instance_name(settings.instance_name)


def metrics_for(settings: Settings, instance: str, *, coordinated: bool) -> Metrics:
    """``/metrics`` labelled with ``instance`` only when a person named it or it has peers: one
    process alone scrapes as it did before there were several (a dashboard's queries unchanged)."""
    labelled = coordinated or bool(settings.instance_name)
    return Metrics(instance=instance if labelled else "", coordinated=coordinated)


class Alone:
    """One process alone: nothing shared, nothing to join or close."""

    key_limits: None = None
    leases: None = None
    health: None = None

    async def join(self) -> None:
        return None

    def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def shared_parts(
    coordinator: Coordinator | None, settings: Settings, metrics: Metrics, *, on_revoked: Callable[[], None]
) -> Shared | Alone:
    """The parts shared with the other instances, or ``Alone`` without a coordinator."""
    if coordinator is None:
        return Alone()
    return Shared(coordinator, settings, metrics, on_revoked=on_revoked)


class Shared:
    """The parts of the gateway that several instances share, on one coordinator."""

    def __init__(
        self,
        coordinator: Coordinator,
        settings: Settings,
        metrics: Metrics,
        *,
        on_revoked: Callable[[], None],
    ) -> None:
        self.coordinator = coordinator
        #: The client keys' limits, counted with the other instances.
        self.key_limits = SharedLimits(
            coordinator, on_revoked=on_revoked, failed_open=metrics.key_limits_failed_open
        )
        self.cluster = Cluster(coordinator, lease_ttl=settings.lease_ttl, failed=metrics.coordination_failed)
        #: The pool's: one lease per request in flight, and account health heard from the others.
        self.leases, self.health = self.cluster.leases, self.cluster.health

    async def join(self) -> None:
        """Connect to the other instances. Down now, the gateway starts all the same (its
        requests wait for leases, then get a 503) and joins when it is back."""
        try:
            await self.coordinator.start()
        except CoordinationDown as exc:
            log.error("the coordination store (redis_url) does not answer; retrying meanwhile: %s", exc)
        else:
            log.info("instance %s joined the other instances (redis_url)", self.coordinator.instance)

    def start(self) -> None:
        """Renew leases, publish and poll health (once the pool holds its accounts)."""
        self.cluster.start()

    async def close(self) -> None:
        """The leases back, then the coordinator: call it once nothing else may use the coordinator
        (the requests ended, the refreshers stopped, the last key tokens counted)."""
        await self.cluster.close()
        await self.coordinator.close()
