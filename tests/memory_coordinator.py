"""An in-memory ``Coordinator`` for the pool's unit tests: several "instances" in one process share
one ``MemoryStore``, as gateway processes share Redis. A test double for the pool's logic only (the
real store and its Lua are tested against a real Redis); ``down`` makes every call fail as an
unreachable store does."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from iflow2api.coordination import Admission, CoordinationDown, Event, HealthRecord, Taken
from iflow2api.state.records import AccountHealth


@dataclass
class MemoryStore:
    #: account id -> {lease id: expiry}
    leases: dict[str, dict[str, float]] = field(default_factory=dict)
    #: account id -> its epoch (``scripts.TAKE``): set by the first take that finds none.
    epochs: dict[str, str] = field(default_factory=dict)
    health: dict[str, AccountHealth] = field(default_factory=dict)
    #: account id -> the version of its health record (``SHARE_HEALTH``'s rule)
    versions: dict[str, int] = field(default_factory=dict)
    listeners: list[tuple[str, Callable[[Event], None]]] = field(default_factory=list)
    down: bool = False
    clock: Callable[[], float] = time.time
    #: The most leases any account held at once (what a ban would follow from).
    most_held: dict[str, int] = field(default_factory=dict)
    #: While set and not open, ``take_lease`` waits for it (a slow round trip).
    take_gate: asyncio.Event | None = None
    #: Every ``give_back`` made, (account id, lease id).
    given_back: list[tuple[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def live(self, account_id: str) -> dict[str, float]:
        now = self.clock()
        leases = self.leases.setdefault(account_id, {})
        for lease, expiry in list(leases.items()):
            if expiry <= now:
                del leases[lease]
        return leases

    def lose(self) -> None:
        """Lose every lease and epoch, as Redis restarted without persistence does."""
        self.leases.clear()
        self.epochs.clear()

    def emit(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        for instance, listener in self.listeners:
            if instance != event.instance:
                loop.call_soon(listener, event)


def kept(old: AccountHealth | None, new: AccountHealth, now: float, *, reset: bool) -> bool:
    """The store's rule (``scripts.SHARE_HEALTH``): whether ``old`` stays over ``new``. Rests are
    only extended, a quarantine outlasts rests and successes, an ``ok`` ends a rest of the gateway's
    own choosing, and a reset replaces anything."""
    if old is None or reset:
        return False
    if old.state == "quarantined":
        return new.state != "quarantined"
    old_rest = old.state == "cooling" and old.until > now
    if new.state == "cooling" and old_rest:
        return old.until >= new.until
    return new.state == "ok" and old_rest and old.upstream_asked


class MemoryCoordinator:
    def __init__(self, store: MemoryStore, instance: str) -> None:
        self.store = store
        self.instance = instance

    def _check(self) -> None:
        if self.store.down:
            raise CoordinationDown("the memory store is down")

    async def start(self) -> None:
        self._check()

    async def close(self) -> None:
        self.store.listeners = [(i, f) for i, f in self.store.listeners if i != self.instance]

    def on_event(self, listener: Callable[[Event], None]) -> None:
        self.store.listeners.append((self.instance, listener))

    async def take_lease(
        self, account_id: str, limit: int, ttl: float, *, epoch: str | None = None, retake: str | None = None
    ) -> Taken:
        """As ``scripts.TAKE``: the epoch first (a reset refuses), then the limit."""
        await asyncio.sleep(0)  # a round trip: others run meanwhile
        if self.store.take_gate is not None:
            await self.store.take_gate.wait()
        self._check()
        current = self.store.epochs.setdefault(account_id, f"epoch-{next(self.store._ids)}")
        leases = self.store.live(account_id)
        if retake is None and epoch and epoch != current:
            return Taken(None, len(leases), current, reset=True)
        if retake not in leases and len(leases) >= limit:
            return Taken(None, len(leases), current)
        lease = retake or f"{self.instance}-{next(self.store._ids)}"
        leases[lease] = self.store.clock() + ttl
        most = self.store.most_held
        most[account_id] = max(most.get(account_id, 0), len(leases))
        return Taken(lease, len(leases), current)

    async def renew_leases(self, leases: Sequence[tuple[str, str]], ttl: float) -> list[bool]:
        self._check()
        alive: list[bool] = []
        for account_id, lease in leases:
            live = self.store.live(account_id)
            alive.append(lease in live)
            if lease in live:
                live[lease] = self.store.clock() + ttl
        return alive

    async def give_back(self, account_id: str, lease_id: str) -> None:
        await asyncio.sleep(0)
        self._check()
        self.store.given_back.append((account_id, lease_id))
        if self.store.live(account_id).pop(lease_id, None) is not None:
            self.store.emit(Event("freed", account_id, self.instance))

    async def leases_held(self, account_ids: Sequence[str]) -> dict[str, int]:
        self._check()
        return {account_id: len(self.store.live(account_id)) for account_id in account_ids}

    async def share_health(
        self, account_id: str, health: AccountHealth, *, reset: bool = False
    ) -> HealthRecord:
        await asyncio.sleep(0)
        self._check()
        now, store = self.store.clock(), self.store
        if kept(store.health.get(account_id), health, now, reset=reset):
            return HealthRecord(store.health[account_id], store.versions[account_id])
        # As the script: one more than before, never less than the clock in microseconds.
        version = max(store.versions.get(account_id, 0) + 1, int(now * 1_000_000))
        store.health[account_id], store.versions[account_id] = health, version
        store.emit(Event("health", account_id, self.instance, health, version))
        return HealthRecord(health, version)

    async def shared_health(self, account_ids: Sequence[str]) -> dict[str, HealthRecord]:
        self._check()
        store = self.store
        return {a: HealthRecord(store.health[a], store.versions[a]) for a in account_ids if a in store.health}

    async def admit_key(
        self, key_id: str, *, rpm: int | None, tokens_per_day: int | None, now: float
    ) -> Admission:
        self._check()
        return Admission(True)

    async def add_key_tokens(self, key_id: str, tokens: int, now: float) -> None:
        self._check()

    async def revoke_key(self, key_id: str) -> None:
        self._check()

    async def lock(self, name: str, ttl: float) -> str | None:
        self._check()
        return None

    async def unlock(self, name: str, token: str) -> None:
        self._check()
