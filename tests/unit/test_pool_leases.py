"""Several pools on one coordination store (in memory): leases keep each account's limit across the
instances, waiters are woken by another instance's release, releases survive cancellation, the
store being down fails closed, and health changes reach every instance, a rest only extended."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from iflow2api.coordination import Coordinator
from iflow2api.errors import CoordinationUnavailable, UpstreamRateLimited
from iflow2api.instances import instance_name
from iflow2api.pool import leases as leases_module
from iflow2api.pool.cluster import Cluster
from iflow2api.pool.members import Member
from iflow2api.pool.router import Pool
from iflow2api.settings import load
from tests.memory_coordinator import MemoryCoordinator, MemoryStore
from tests.unit.test_pool_router import MODEL, POLICY, Directory, make_pool, member

TTL = 30.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


class Instance:
    """One gateway instance: its pool, wired to the shared store as the gateway wires it (a
    ``MemoryStore``, or a real coordinator)."""

    def __init__(
        self,
        store: MemoryStore | Coordinator,
        name: str,
        members: Callable[[], list[Member]],
        *,
        queue_timeout: float = 10.0,
        ttl: float = TTL,
    ) -> None:
        self.coordinator = MemoryCoordinator(store, name) if isinstance(store, MemoryStore) else store
        self.failures: list[str] = []
        self.cluster = Cluster(self.coordinator, lease_ttl=ttl, failed=self.failures.append)
        self.pool = Pool(
            strategy="round-robin",
            affinity=False,
            queue_size=100,
            queue_timeout=queue_timeout,
            policy=POLICY,
            directory=Directory(),
            leases=self.cluster.leases,
            shared_health=self.cluster.health,
        )
        self.pool.set_members(members())
        self.cluster.start()

    def member(self, member_id: str) -> Member:
        found = self.pool.get(member_id)
        assert found is not None
        return found


@contextlib.asynccontextmanager
async def instances(
    store: MemoryStore, count: int, *, accounts: str = "a", limit: int | None = 1, **options: Any
) -> AsyncIterator[tuple[MemoryStore, list[Instance]]]:
    """``count`` instances on ``store``, each with the same ``accounts`` (their limit ``limit``);
    closed after."""
    gateways = [
        Instance(store, f"i{n}", lambda: [member(a, limit=limit) for a in accounts], **options)
        for n in range(count)
    ]
    try:
        yield store, gateways
    finally:
        for gateway in gateways:
            await gateway.cluster.close()


async def settled(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``condition`` holds (a bound against hanging, not a speed check)."""
    for _ in range(round(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not settled in time")


def test_three_pools_never_exceed_the_accounts_limit_and_serve_every_request() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 3) as (store, gateways):
            in_flight = 0
            most = 0

            async def request(gateway: Instance) -> str:
                nonlocal in_flight, most
                got = await gateway.pool.acquire(MODEL)
                try:
                    in_flight += 1
                    most = max(most, in_flight)
                    await asyncio.sleep(0.01)
                    in_flight -= 1
                finally:
                    gateway.pool.release(got)
                return got.id

            served = await asyncio.gather(*(request(gateways[n % 3]) for n in range(12)))
            assert served == ["a"] * 12
            assert most == 1
            assert store.most_held == {"a": 1}
            await settled(lambda: not store.live("a"))

    run(main())


def test_an_account_without_a_limit_takes_no_lease() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 1, limit=None) as (store, (gateway,)):
            got = await gateway.pool.acquire(MODEL)
            assert store.most_held == {}
            gateway.pool.release(got)
            assert gateway.member("a").in_flight == 0

    run(main())


@pytest.mark.parametrize(
    ("events_lost", "backstop"),
    # Woken by the ``freed`` event alone (no backstop poll within the test), or by the poll alone.
    [(False, 3600.0), (True, 0.02)],
    ids=["freed event", "backstop poll"],
)
def test_a_waiter_is_woken_when_another_instance_gives_the_lease_back(
    monkeypatch: pytest.MonkeyPatch, events_lost: bool, backstop: float
) -> None:
    monkeypatch.setattr(leases_module, "BACKSTOP_SECONDS", backstop)

    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            held = await first.pool.acquire(MODEL)
            if events_lost:
                store.listeners.clear()
            waiting = asyncio.ensure_future(second.pool.acquire(MODEL))
            await settled(lambda: second.member("a").elsewhere == 1)
            assert not waiting.done() and second.pool.waiting == 1
            first.pool.release(held)
            got = await asyncio.wait_for(waiting, 5)
            assert got.id == "a" and len(store.live("a")) == 1
            second.pool.release(got)

    run(main())


def test_a_request_full_elsewhere_tries_the_next_account() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2, accounts="ab") as (_, (first, second)):
            on_a = await first.pool.acquire(MODEL)
            assert on_a.id == "a"
            # The second instance's round-robin also starts at "a": refused there, it takes "b".
            on_b = await second.pool.acquire(MODEL)
            assert on_b.id == "b"
            assert second.member("a").in_flight == 0 and second.member("a").elsewhere == 1
            first.pool.release(on_a)
            second.pool.release(on_b)

    run(main())


def test_a_cancelled_request_gives_its_lease_back() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            streaming = asyncio.Event()

            async def request() -> None:
                got = await first.pool.acquire(MODEL)
                try:
                    streaming.set()
                    await asyncio.sleep(3600)
                finally:
                    first.pool.release(got)  # as the dispatcher's ``finally`` does

            task = asyncio.ensure_future(request())
            await streaming.wait()
            assert len(store.live("a")) == 1
            task.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await task
            await settled(lambda: not store.live("a"))
            assert len(store.given_back) == 1 and first.member("a").in_flight == 0
            got = await asyncio.wait_for(second.pool.acquire(MODEL), 5)
            second.pool.release(got)

    run(main())


def test_a_request_cancelled_while_its_lease_is_granted_gives_it_back() -> None:
    async def main() -> None:
        async with instances(MemoryStore(take_gate=asyncio.Event()), 1) as (store, (gateway,)):
            asking = asyncio.ensure_future(gateway.pool.acquire(MODEL))
            await settled(lambda: gateway.member("a").in_flight == 1)  # its slot taken, the lease asked
            asking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asking
            assert gateway.member("a").in_flight == 0
            assert store.take_gate is not None
            store.take_gate.set()  # the store grants it after all
            await settled(lambda: len(store.given_back) == 1)
            assert not store.live("a") and store.most_held == {"a": 1}

    run(main())


def test_a_request_cancelled_while_waiting_leaves_no_slot_or_lease() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            held = await first.pool.acquire(MODEL)
            waiting = asyncio.ensure_future(second.pool.acquire(MODEL))
            await settled(lambda: second.pool.waiting == 1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert second.pool.waiting == 0 and second.member("a").in_flight == 0
            first.pool.release(held)
            await settled(lambda: not store.live("a"))

    run(main())


def test_the_store_down_fails_closed_with_a_503_and_retry_after_then_recovers() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 1, queue_timeout=0.6) as (store, (gateway,)):
            store.down = True
            with pytest.raises(CoordinationUnavailable) as caught:
                await gateway.pool.acquire(MODEL)
            assert caught.value.status == 503
            assert (b"retry-after", b"10") in caught.value.headers()
            assert store.most_held == {} and gateway.member("a").in_flight == 0
            assert "lease" in gateway.failures
            store.down = False
            got = await gateway.pool.acquire(MODEL)
            assert got.id == "a" and len(store.live("a")) == 1
            gateway.pool.release(got)

    run(main())


def test_a_release_while_the_store_is_down_frees_the_slot_and_the_lease_expires() -> None:
    async def main() -> None:
        now = [1000.0]
        async with instances(MemoryStore(clock=lambda: now[0]), 1) as (store, (gateway,)):
            got = await gateway.pool.acquire(MODEL)
            store.down = True
            gateway.pool.release(got)
            await settled(lambda: gateway.member("a").in_flight == 0)
            assert "give_back" in gateway.failures
            store.down = False
            assert len(store.live("a")) == 1  # still held, until it expires
            now[0] += TTL + 1
            assert not store.live("a")

    run(main())


async def rate_limited(gateway: Instance, seconds: float) -> None:
    """A request of ``gateway`` met a 429 with ``Retry-After: seconds``."""
    got = await gateway.pool.acquire(MODEL)
    gateway.pool.failed(got, UpstreamRateLimited("slow down").asked_to_wait(seconds))
    gateway.pool.release(got)


def test_a_rest_the_upstream_asked_for_on_one_instance_keeps_the_others_off() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (_, (first, second)):
            await rate_limited(first, 30)
            await settled(lambda: second.member("a").health.state == "cooling")
            assert second.member("a").health.upstream_asked
            assert second.member("a").health.until == first.member("a").health.until
            assert second.pool.asked_rest(MODEL) is not None

    run(main())


def test_a_success_anywhere_ends_a_rest_of_the_gateways_own_choosing() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (_, (first, second)):
            first.pool.cool_down(first.member("a"), "timed out")
            await settled(lambda: second.member("a").health.state == "cooling")
            second.pool.succeeded(second.member("a"))
            await settled(lambda: first.member("a").health.state == "ok")

    run(main())


def test_a_shorter_rest_later_does_not_cut_a_longer_one_short() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            await rate_limited(first, 60)
            long_end = first.member("a").health.until
            await settled(lambda: second.member("a").health.until == long_end)
            second.pool.cool_down(second.member("a"), "a failure of its own", seconds=5)
            # The store keeps the longer rest, and both instances follow it.
            await settled(
                lambda: store.health["a"].until == long_end and second.member("a").health.until == long_end
            )
            assert first.member("a").health.until == long_end

    run(main())


def test_the_store_down_keeps_a_health_change_until_it_can_be_shared() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            store.down = True
            first.pool.cool_down(first.member("a"), "timed out", seconds=120)
            await settled(lambda: "health" in first.failures)
            store.down = False
            await settled(lambda: second.member("a").health.state == "cooling")

    run(main())


def test_a_lease_lost_while_its_request_ran_releases_nothing_else() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 1, limit=2) as (store, (gateway,)):
            first = await gateway.pool.acquire(MODEL)
            store.leases["a"].clear()  # expired while the store was out of reach
            gateway.cluster.leases._forget("a", next(iter(gateway.cluster.leases.held["a"])))
            second = await gateway.pool.acquire(MODEL)
            gateway.pool.release(first)
            await settled(lambda: gateway.member("a").in_flight == 1)
            assert len(store.live("a")) == 1  # the second request's lease is still held
            gateway.pool.release(second)
            await settled(lambda: not store.live("a"))

    run(main())


def test_every_lease_held_is_renewed() -> None:
    async def main() -> None:
        now = [1000.0]
        # Renewed every 20 ms.
        async with instances(MemoryStore(clock=lambda: now[0]), 1, accounts="ab", ttl=0.06) as (
            store,
            (gateway,),
        ):
            got = [await gateway.pool.acquire(MODEL), await gateway.pool.acquire(MODEL)]
            before = {a: dict(store.live(a)) for a in ("a", "b")}
            now[0] += 0.05
            await settled(lambda: all(store.live(a) != before[a] for a in ("a", "b")))
            for account in got:
                gateway.pool.release(account)

    run(main())


def test_a_lease_the_store_forgot_is_taken_again_at_the_next_renewal() -> None:
    async def main() -> None:
        # Renewed every 20 ms.
        async with instances(MemoryStore(), 1, ttl=0.06) as (store, (gateway,)):
            got = await gateway.pool.acquire(MODEL)
            (before,) = gateway.cluster.leases.held["a"]
            store.leases.clear()  # Redis restarted, empty
            await settled(lambda: list(store.live("a")) == [before])  # taken again, under its id
            assert gateway.cluster.leases.held["a"] == [before]
            gateway.pool.release(got)
            await settled(lambda: not store.live("a"))

    run(main())


def test_without_a_coordinator_the_pool_takes_no_lease_and_awaits_nothing_more() -> None:
    pool = make_pool([member("a")])
    # No running loop is needed to take a free slot: nothing is awaited on that path.
    coro = pool.acquire(MODEL)
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    taken: Member = done.value.value
    assert taken.id == "a" and taken.in_flight == 1
    pool.release(taken)
    assert taken.in_flight == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"IFLOW2API_INSTANCE_NAME": "gw-1"}, "gw-1"),
        ({}, "HOST-PID"),
    ],
)
def test_each_instance_is_named_apart(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    settings = load(env={"IFLOW2API_DATA_DIR": str(tmp_path), **env}, config_path=None)
    name = expected.replace("HOST", socket.gethostname()).replace("PID", str(os.getpid()))
    assert instance_name(settings.instance_name) == name


def test_after_the_store_lost_its_leases_no_account_gets_a_second_request_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leases_module, "BACKSTOP_SECONDS", 0.02)

    async def main() -> None:
        async with instances(MemoryStore(), 2, ttl=1.0) as (store, (holder, other)):
            held = await holder.pool.acquire(MODEL)
            (lease,) = holder.cluster.leases.held["a"]
            await settled(lambda: "a" in other.cluster.leases.epochs)  # learned by its backstop
            store.lose()  # Redis restarted without persistence
            asking = asyncio.ensure_future(other.pool.acquire(MODEL))
            await settled(lambda: list(store.live("a")) == [lease])  # the holder took it again
            await settled(lambda: not other.cluster.leases.in_grace, seconds=10)
            await settled(lambda: other.member("a").elsewhere == 1)
            assert not asking.done()
            assert store.most_held == {"a": 1}
            holder.pool.release(held)
            got = await asyncio.wait_for(asking, 5)
            assert got.id == "a" and store.most_held == {"a": 1}
            other.pool.release(got)

    run(main())


def test_a_new_store_grants_at_once_without_a_grace() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2) as (store, (first, second)):
            got = await asyncio.wait_for(first.pool.acquire(MODEL), 5)
            assert not first.cluster.leases.in_grace and store.epochs["a"]
            first.pool.release(got)
            got = await asyncio.wait_for(second.pool.acquire(MODEL), 5)
            assert second.cluster.leases.epochs["a"] == store.epochs["a"]
            second.pool.release(got)

    run(main())


def test_with_the_store_down_each_request_gets_its_503_together_not_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leases_module, "DOWN_WAIT", 1.0)
    monkeypatch.setattr(leases_module, "RETRY_SECONDS", 0.05)

    async def main() -> None:
        # One account, one request at a time; the line's own wait far longer than DOWN_WAIT.
        async with instances(MemoryStore(), 1, queue_timeout=60.0) as (store, (gateway,)):
            store.down = True
            loop = asyncio.get_running_loop()
            ended: list[float] = []

            async def request() -> BaseException:
                try:
                    await gateway.pool.acquire(MODEL)
                except Exception as exc:
                    ended.append(loop.time())
                    return exc
                raise AssertionError("granted without a store")

            errors = await asyncio.gather(*(request() for _ in range(6)))
            assert all(isinstance(e, CoordinationUnavailable) for e in errors), errors
            # One after another, they would end DOWN_WAIT apart each.
            assert max(ended) - min(ended) < leases_module.DOWN_WAIT
            assert gateway.failures.count("lease") >= 6  # every one asked the store itself

    run(main())


def test_requests_refused_elsewhere_keep_their_places_in_the_line() -> None:
    async def main() -> None:
        async with instances(MemoryStore(), 2, limit=2) as (_, (first, second)):
            held = [await second.pool.acquire(MODEL), await second.pool.acquire(MODEL)]
            served: list[int] = []

            async def request(n: int) -> None:
                got = await first.pool.acquire(MODEL)
                served.append(n)
                await asyncio.sleep(0.01)
                first.pool.release(got)

            # The first two both find a local slot free, ask at once, and are both refused.
            tasks = [asyncio.ensure_future(request(0)), asyncio.ensure_future(request(1))]
            await settled(lambda: first.pool.waiting == 2)
            tasks.append(asyncio.ensure_future(request(2)))
            await settled(lambda: first.pool.waiting == 3)
            second.pool.release(held[0])  # one slot for the three, in turn
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert served == [0, 1, 2]
            second.pool.release(held[1])

    run(main())


def test_the_lease_loops_outlive_a_surprise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases_module, "BACKSTOP_SECONDS", 0.02)

    async def main() -> None:
        async with instances(MemoryStore(), 1, ttl=0.06) as (store, (gateway,)):
            coordinator = gateway.coordinator
            renew, held = coordinator.renew_leases, coordinator.leases_held
            calls = {"renew": 0, "held": 0}

            async def renew_once_broken(leases: Any, ttl: float) -> list[bool]:
                calls["renew"] += 1
                if calls["renew"] == 1:
                    raise RuntimeError("a surprise")
                return await renew(leases, ttl)

            async def held_once_broken(accounts: Any) -> dict[str, int]:
                calls["held"] += 1
                if calls["held"] == 1:
                    raise RuntimeError("a surprise")
                return await held(accounts)

            monkeypatch.setattr(coordinator, "renew_leases", renew_once_broken)
            monkeypatch.setattr(coordinator, "leases_held", held_once_broken)
            got = await gateway.pool.acquire(MODEL)
            await settled(lambda: calls["renew"] >= 3 and calls["held"] >= 3)
            assert list(store.live("a")) == gateway.cluster.leases.held["a"]  # renewed all along
            gateway.pool.release(got)

    run(main())


def test_give_backs_still_running_at_shutdown_are_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases_module, "GIVE_BACK_SECONDS", 0.05)

    async def main() -> None:
        store = MemoryStore()
        gateway = Instance(store, "i0", lambda: [member("a", limit=1)])
        leases = gateway.cluster.leases
        hanging = asyncio.ensure_future(asyncio.sleep(3600))
        leases._tasks.add(hanging)  # a give-back that outlived its timeout
        await asyncio.wait_for(gateway.cluster.close(), 5)
        assert hanging.cancelled()

    run(main())
