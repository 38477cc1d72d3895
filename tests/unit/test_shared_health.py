"""Account health shared by pools on one coordination store (the in-memory double): only an explicit
reset ends a quarantine, a reset survives a later change made before it was shared, a change made
with a new key ends the old key's quarantine, and the sharing loop outlives a surprise. The store's
rule itself is one table, ``RULE``, which the real script is checked against too
(``tests/e2e/test_coordination_redis.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from iflow2api.coordination import Coordinator, HealthRecord
from iflow2api.pool.cluster import Cluster
from iflow2api.pool.members import Member
from iflow2api.pool.router import Pool
from iflow2api.state.records import AccountHealth
from tests.memory_coordinator import MemoryCoordinator, MemoryStore, kept
from tests.unit.test_pool_leases import settled
from tests.unit.test_pool_router import make_pool, member

NOW = 1_000.0
OK = AccountHealth(since=NOW - 1)
OWN_REST = AccountHealth("cooling", NOW + 60, 1, "timed out", NOW - 5)
ASKED_REST = AccountHealth("cooling", NOW + 60, 1, "429", NOW - 5, upstream_asked=True)
SHORT_REST = AccountHealth("cooling", NOW + 5, 2, "timed out", NOW - 1)
ENDED_REST = AccountHealth("cooling", NOW - 1, 1, "timed out", NOW - 30)
BLOCKED = AccountHealth("quarantined", 0.0, 0, "blocked", NOW - 5, "fp-1", code="account_blocked")

#: (what the store holds, what is shared, reset, whether the store keeps what it holds)
RULE: list[tuple[AccountHealth, AccountHealth, bool, bool]] = [
    (BLOCKED, OK, False, True),  # a success never lifts a quarantine
    (BLOCKED, ASKED_REST, False, True),
    (BLOCKED, OK, True, False),  # a person's reset, a passing check, a new key do
    (BLOCKED, BLOCKED, False, False),
    (OWN_REST, OK, False, False),  # a success ends a rest of the gateway's own choosing
    (ASKED_REST, OK, False, True),  # not one the upstream asked for
    (ASKED_REST, OK, True, False),
    (OWN_REST, SHORT_REST, False, True),  # a rest is only extended
    (SHORT_REST, OWN_REST, False, False),
    (ENDED_REST, SHORT_REST, False, False),
    (OK, BLOCKED, False, False),
]


@pytest.mark.parametrize(("old", "new", "reset", "keeps"), RULE)
def test_the_memory_store_keeps_what_the_script_keeps(
    old: AccountHealth, new: AccountHealth, reset: bool, keeps: bool
) -> None:
    assert kept(old, new, NOW, reset=reset) is keeps


def pool_on(coordinator: Coordinator, *members: Member) -> tuple[Pool, Cluster]:
    """A pool of ``members`` whose health is shared through ``coordinator``, wired as the gateway
    wires it (the cluster still to be started)."""
    cluster = Cluster(coordinator, lease_ttl=30)
    return make_pool(members, clock=time.time, cluster=cluster), cluster


class Surprised(MemoryCoordinator):
    """Its first poll and its first share fail with an error nobody expects."""

    surprises: frozenset[str] = frozenset(("poll", "share"))

    def _surprise(self, what: str) -> None:
        if what in self.surprises:
            self.surprises = self.surprises - {what}
            raise RuntimeError(f"a bug in {what}")

    async def shared_health(self, account_ids: Sequence[str]) -> dict[str, HealthRecord]:
        self._surprise("poll")
        return await super().shared_health(account_ids)

    async def share_health(
        self, account_id: str, health: AccountHealth, *, reset: bool = False
    ) -> HealthRecord:
        self._surprise("share")
        return await super().share_health(account_id, health, reset=reset)


@contextlib.asynccontextmanager
async def two_pools(
    store: MemoryStore, *, second: type[MemoryCoordinator] = MemoryCoordinator
) -> AsyncIterator[tuple[Pool, Pool]]:
    one, one_cluster = pool_on(MemoryCoordinator(store, "one"), member("a"))
    two, two_cluster = pool_on(second(store, "two"), member("a"))
    one_cluster.start()
    two_cluster.start()
    try:
        yield one, two
    finally:
        await one_cluster.close()
        await two_cluster.close()


def a(pool: Pool) -> Member:
    found = pool.get("a")
    assert found is not None
    return found


@contextlib.asynccontextmanager
async def quarantined() -> AsyncIterator[tuple[MemoryStore, Pool, Pool]]:
    """Two pools on one store, once ``one`` has quarantined account ``a`` and ``two`` has heard."""
    store = MemoryStore()
    async with two_pools(store) as (one, two):
        one.quarantine(a(one), "blocked")
        await settled(lambda: a(two).health.state == "quarantined")
        yield store, one, two


def test_a_reset_on_one_instance_ends_the_quarantine_on_the_other() -> None:
    async def main() -> None:
        async with quarantined() as (_, one, two):
            two.succeeded(a(two))  # a success: nothing to share, and nothing lifted
            two.reset(a(two))
            await settled(lambda: a(one).health.state == "ok")

    asyncio.run(main())


def test_a_reset_then_a_rest_not_yet_shared_still_ends_the_quarantine() -> None:
    async def main() -> None:
        async with quarantined() as (store, one, two):
            store.down = True
            one.reset(a(one))
            one.cool_down(a(one), "timed out", seconds=60)  # replaces the reset in the outbox
            await asyncio.sleep(0.05)
            store.down = False
            await settled(lambda: a(two).health.state == "cooling")
            assert store.health["a"].state == "cooling"

    asyncio.run(main())


def test_a_change_made_with_a_new_key_ends_the_old_keys_quarantine() -> None:
    async def main() -> None:
        async with quarantined() as (store, one, two):
            two.set_members([member("a", key="sk-a-the-new-key-0123")])  # a new login on two
            assert a(two).current_health().state == "ok"
            two.cool_down(a(two), "timed out", seconds=60)
            await settled(lambda: store.health["a"].state == "cooling")
            await settled(lambda: a(one).health.state == "cooling")

    asyncio.run(main())


def test_the_sharing_loop_outlives_a_surprise() -> None:
    async def main() -> None:
        store = MemoryStore()
        async with two_pools(store, second=Surprised) as (one, two):
            # Two hears no event: only its polls, the first of which raises, can tell it.
            store.listeners = [(name, heard) for name, heard in store.listeners if name != "two"]
            one.quarantine(a(one), "blocked")
            await settled(lambda: a(two).health.state == "quarantined")
            # Its first share raises too: the change is kept, and shared at the next round.
            two.reset(a(two))
            await settled(lambda: a(one).health.state == "ok")

    asyncio.run(main())
