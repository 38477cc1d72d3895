"""``RedisCoordinator`` against a real, private redis-server (``tests/redis_server.py``).

Several coordinator objects stand for several gateway instances: each has its own connections, so
what one does must hold for the others exactly as it would across processes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import redis

from iflow2api.coordination import CoordinationDown, Coordinator, Event, HealthRecord
from iflow2api.coordination.redis import RedisCoordinator
from iflow2api.pool.router import Pool
from iflow2api.state.records import AccountHealth
from tests.redis_server import RedisServer
from tests.unit.test_pool_router import member
from tests.unit.test_shared_health import NOW, RULE, pool_on

T = TypeVar("T")
#: Generous bounds for what must happen "within a second" or "not hang": they catch a hang or a
#: lost event, not slowness.
SOON = 3.0


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


@asynccontextmanager
async def instances(url: str, *names: str) -> AsyncIterator[list[RedisCoordinator]]:
    async with AsyncExitStack() as stack:
        started = []
        for name in names:
            coordinator = RedisCoordinator(url, instance=name)
            await coordinator.start()
            stack.push_async_callback(coordinator.close)
            started.append(coordinator)
        yield started


class Heard:
    """The events a coordinator's listener got; ``wait`` for one of a kind."""

    def __init__(self, coordinator: RedisCoordinator) -> None:
        self.events: list[Event] = []
        self._arrived = asyncio.Event()
        coordinator.on_event(self._hear)

    def _hear(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    async def wait(self, kind: str, subject: str, health: AccountHealth | None = None) -> Event:
        async with asyncio.timeout(SOON):
            while True:
                for event in self.events:
                    if (event.kind, event.subject) == (kind, subject) and health in (None, event.health):
                        return event
                self._arrived.clear()
                await self._arrived.wait()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds (what it waits for has no event to wait on)."""
    deadline = asyncio.get_running_loop().time() + SOON
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{check} never held"
        await asyncio.sleep(0.05)


def test_it_is_a_coordinator(redis_url: str) -> None:
    async def test() -> None:
        coordinator: Coordinator = RedisCoordinator(redis_url, instance="gw-1")  # mypy: the Protocol
        assert coordinator.instance == "gw-1"
        await coordinator.close()  # never started: nothing to stop, and no error

    run(test)


# -- leases --------------------------------------------------------------------------------------
def test_a_lease_is_taken_renewed_counted_and_given_back(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            taken = await one.take_lease("acc-1", 1, 30)
            assert taken.lease_id is not None and taken.held == 1
            assert await two.take_lease("acc-1", 1, 30) == type(taken)(None, 1, taken.epoch)
            assert await two.leases_held(["acc-1", "acc-2"]) == {"acc-1": 1, "acc-2": 0}
            assert await one.renew_leases([("acc-1", taken.lease_id), ("acc-1", "gone")], 30) == [True, False]
            await one.give_back("acc-1", taken.lease_id)
            await one.give_back("acc-1", taken.lease_id)  # idempotent
            assert await two.leases_held(["acc-1"]) == {"acc-1": 0}
            assert (await two.take_lease("acc-1", 1, 30)).lease_id is not None
            assert await one.leases_held([]) == {} and await one.renew_leases([], 30) == []

    run(test)


def test_after_redis_lost_its_data_a_take_knowing_the_old_epoch_is_refused_and_a_retake_is_not(
    redis_server: RedisServer, redis_url: str
) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            held = await one.take_lease("acc-1", 1, 30)
            old = held.epoch
            assert old and held.lease_id is not None and not held.reset
            redis_server.restart()  # empty, as without persistence or after a failover
            refused = await two.take_lease("acc-1", 1, 30, epoch=old)
            assert refused.lease_id is None and refused.reset and refused.epoch != old
            again = await one.take_lease("acc-1", 1, 30, epoch=old, retake=held.lease_id)
            assert again.lease_id == held.lease_id and not again.reset and again.epoch == refused.epoch
            full = await two.take_lease("acc-1", 1, 30, epoch=refused.epoch)
            assert full == type(full)(None, 1, refused.epoch)
            assert (await two.take_lease("acc-2", 1, 30)).lease_id is not None  # never seen: no reset

    run(test)


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrent_takes_grant_exactly_the_limit(redis_url: str, limit: int) -> None:
    async def test() -> None:
        async with instances(redis_url, "a", "b", "c") as group:
            takes = [group[n % 3].take_lease("acc-1", limit, 30) for n in range(50)]
            granted = [t for t in await asyncio.gather(*takes) if t.lease_id is not None]
            assert len(granted) == limit
            assert len({t.lease_id for t in granted}) == limit
            assert await group[0].leases_held(["acc-1"]) == {"acc-1": limit}

    run(test)


def test_an_expired_lease_is_reclaimed_and_a_renewed_one_is_not(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "dead", "alive", "other") as (dead, alive, other):
            assert (await dead.take_lease("acc-1", 1, 1.0)).lease_id is not None
            kept = await alive.take_lease("acc-2", 1, 1.0)
            assert kept.lease_id is not None
            assert (await other.take_lease("acc-1", 1, 1.0)).lease_id is None
            for _ in range(6):  # 1.2 s, past the ttl: only the renewals keep acc-2's lease
                await asyncio.sleep(0.2)
                assert await alive.renew_leases([("acc-2", kept.lease_id)], 1.0) == [True]
            assert (await other.take_lease("acc-2", 1, 30)).lease_id is None
            reclaimed = await other.take_lease("acc-1", 1, 30)
            assert reclaimed.lease_id is not None and reclaimed.held == 1
            assert await other.leases_held(["acc-1", "acc-2"]) == {"acc-1": 1, "acc-2": 1}

    run(test)


def test_giving_back_wakes_the_other_instances_only(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            mine, theirs = Heard(one), Heard(two)
            taken = await one.take_lease("acc-1", 1, 30)
            assert taken.lease_id is not None
            await one.give_back("acc-1", taken.lease_id)
            event = await theirs.wait("freed", "acc-1")
            assert event.instance == "one" and event.health is None
            await one.give_back("acc-1", taken.lease_id)  # nothing freed: nobody is woken again
            await two.revoke_key("key-9")  # an event after it, to know the channel has been read
            await mine.wait("revoked", "key-9")
            assert [e.kind for e in theirs.events] == ["freed"]
            assert all(e.instance != "one" for e in mine.events)

    run(test)


def pause_clients(url: str, ms: int) -> None:
    """Redis reads nothing from its clients for ``ms``, then runs what they sent meanwhile."""
    with redis.Redis.from_url(url) as raw:
        raw.execute_command("CLIENT", "PAUSE", ms, "ALL")


async def no_leases(c: RedisCoordinator) -> bool:
    return await c.leases_held(["acc-1", "acc-2"]) == {"acc-1": 0, "acc-2": 0}


def test_a_cancelled_caller_leaves_no_lease_behind(redis_url: str) -> None:
    """The client went away while its take (or give-back) was on the wire: Redis runs it after
    the caller is gone, and the lease is given back all the same."""

    async def test() -> None:
        one = RedisCoordinator(redis_url, instance="one", timeout=5)  # outwaits the pause
        try:
            kept = await one.take_lease("acc-2", 1, 30)
            assert kept.lease_id is not None
            pause_clients(redis_url, 1500)
            for call in (one.take_lease("acc-1", 1, 30), one.give_back("acc-2", kept.lease_id)):
                task = asyncio.ensure_future(call)
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await eventually(lambda: no_leases(one))
        finally:
            await one.close()

    run(test)


#: Keeps Redis busy for ARGV[1] ms: what it reads meanwhile runs afterwards, even from a client
#: that has given up and closed its connection.
BUSY = """
local function now() local t = redis.call('TIME') return t[1] * 1000 + t[2] / 1000 end
local until_ms = now() + tonumber(ARGV[1])
while now() < until_ms do end
return 1
"""


def test_a_take_that_lands_after_its_timeout_is_given_back(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one") as (one,):
            # A connection already open, so the take is sent, not stuck in a new one's handshake.
            warm = await one.take_lease("acc-2", 1, 30)
            await one.give_back("acc-2", str(warm.lease_id))
            with redis.Redis.from_url(redis_url) as raw:
                busy = threading.Thread(target=raw.eval, args=(BUSY, 0, 1000))
                busy.start()
                await asyncio.sleep(0.1)
                with pytest.raises(CoordinationDown):
                    await one.take_lease("acc-1", 1, 30)
                await asyncio.to_thread(busy.join)  # the take has run now, for nobody
            await eventually(lambda: no_leases(one))
            assert (await one.take_lease("acc-1", 1, 30)).lease_id is not None

    run(test)


# -- health --------------------------------------------------------------------------------------
def rest(seconds: float, *, asked: bool = False, reason: str = "rest") -> AccountHealth:
    now = time.time()
    return AccountHealth("cooling", now + seconds, 1, reason, now, upstream_asked=asked)


def test_a_rest_is_only_extended(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            heard = Heard(two)
            long = rest(30, reason="long")
            first = await one.share_health("acc-1", long)
            assert first.health == long
            event = await heard.wait("health", "acc-1")
            assert (event.health, event.version) == (long, first.version)
            assert await one.share_health("acc-1", rest(5, reason="short")) == first  # kept, same version
            assert await two.shared_health(["acc-1", "acc-2"]) == {"acc-1": first}
            longer = rest(60, reason="longer")
            second = await two.share_health("acc-1", longer)
            assert second.health == longer and second.version > first.version
            with redis.Redis.from_url(redis_url) as raw:
                assert raw.pttl("i2a:{a:acc-1}:health") == -1  # a record stays until replaced

    run(test)


def test_ok_ends_a_rest_of_our_choosing_not_one_the_upstream_asked_for(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            heard = Heard(two)
            ok = AccountHealth(since=time.time())
            await one.share_health("acc-1", rest(30))
            ended = await one.share_health("acc-1", ok)
            assert ended.health == ok
            assert await two.shared_health(["acc-1"]) == {"acc-1": ended}  # ok is a record too
            await heard.wait("health", "acc-1", ok)
            asked = rest(30, asked=True)
            await one.share_health("acc-2", asked)
            assert (await two.share_health("acc-2", ok)).health == asked
            assert (await one.shared_health(["acc-2"]))["acc-2"].health == asked

    run(test)


def test_only_a_reset_ends_a_quarantine(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            quarantine = AccountHealth(
                "quarantined", reason="blocked", since=time.time(), code="account_blocked"
            )
            blocked = await one.share_health("acc-1", quarantine)
            assert await one.share_health("acc-1", rest(300, asked=True)) == blocked
            # A success elsewhere (a request that began before the block) never lifts it.
            assert await two.share_health("acc-1", AccountHealth(since=time.time())) == blocked
            assert await two.shared_health(["acc-1"]) == {"acc-1": blocked}
            reset = AccountHealth(since=time.time())
            lifted = await two.share_health("acc-1", reset, reset=True)  # a person's reset
            assert lifted.health == reset and lifted.version > blocked.version
            assert await one.shared_health(["acc-1"]) == {"acc-1": lifted}
            ended = rest(-1)
            assert (await one.share_health("acc-2", ended)).health == ended
            await one.share_health("acc-3", rest(0.2))
            await asyncio.sleep(0.3)
            short = rest(1)
            assert (await one.share_health("acc-3", short)).health == short  # an ended rest is replaced

    run(test)


@pytest.mark.parametrize(("old", "new", "reset", "keeps"), RULE)
def test_the_script_keeps_what_the_memory_double_keeps(
    redis_url: str, old: AccountHealth, new: AccountHealth, reset: bool, keeps: bool
) -> None:
    """The double's rule (``tests/unit/test_shared_health.RULE``), its times moved to now."""

    shift = time.time() - NOW

    def now(health: AccountHealth) -> AccountHealth:
        return replace(health, until=health.until and health.until + shift, since=health.since + shift)

    async def test() -> None:
        async with instances(redis_url, "one") as (one,):
            held = await one.share_health("acc-1", now(old), reset=True)
            after = await one.share_health("acc-1", now(new), reset=reset)
            assert (after == held) is keeps
            assert after.health == (now(old) if keeps else now(new))

    run(test)


def test_versions_stay_newer_after_redis_restarts_empty(redis_server: RedisServer, redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one") as (one,):
            for _ in range(5):
                before = await one.share_health("acc-1", rest(30, asked=True), reset=True)
            redis_server.flush()
            after = await one.share_health("acc-1", AccountHealth(since=time.time()))
            assert after.version > before.version

    run(test)


# -- health across pools -------------------------------------------------------------------------
class HeldPolls(RedisCoordinator):
    """A coordinator whose next poll, once ``hold`` is set, reads the store and then waits for
    ``release`` before answering: an answer that arrives after newer events."""

    def __init__(self, url: str, *, instance: str) -> None:
        super().__init__(url, instance=instance)
        self.hold = False
        self.read = asyncio.Event()
        self.release = asyncio.Event()
        self.answered = asyncio.Event()

    async def shared_health(self, account_ids: Sequence[str]) -> dict[str, HealthRecord]:
        found = await super().shared_health(account_ids)
        if self.hold:
            self.hold = False
            self.read.set()
            await self.release.wait()
            self.answered.set()
        return found


@asynccontextmanager
async def pools(*coordinators: RedisCoordinator) -> AsyncIterator[list[Pool]]:
    """A pool of one account ``a`` per coordinator, its health shared as the gateway shares it."""
    async with AsyncExitStack() as stack:
        made = []
        for coordinator in coordinators:
            pool, cluster = pool_on(coordinator, member("a"))
            await coordinator.start()
            stack.push_async_callback(coordinator.close)
            cluster.start()
            stack.push_async_callback(cluster.close)
            made.append(pool)
        yield made


def health_of(pool: Pool) -> AccountHealth:
    return pool.members()[0].health


def in_state(pool: Pool, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return health_of(pool).state == state

    return check


def test_an_instance_that_missed_the_reset_event_catches_up_by_polling(redis_url: str) -> None:
    async def test() -> None:
        deaf = RedisCoordinator(redis_url, instance="deaf")
        async with pools(RedisCoordinator(redis_url, instance="one"), deaf) as (one, other):
            deaf._events.listeners.clear()  # it hears no event: only its polls tell it anything
            one.quarantine(one.members()[0], "blocked")
            await eventually(in_state(other, "quarantined"))
            one.reset(one.members()[0])
            await eventually(in_state(other, "ok"))

    run(test)


def test_a_poll_read_before_a_newer_event_does_not_undo_it(redis_url: str) -> None:
    async def test() -> None:
        slow = HeldPolls(redis_url, instance="slow")
        async with pools(RedisCoordinator(redis_url, instance="one"), slow) as (one, other):
            one.cool_down(one.members()[0], "timed out", seconds=300)
            await eventually(in_state(other, "cooling"))
            slow.hold = True
            await asyncio.wait_for(slow.read.wait(), SOON)  # the poll has read the rest...
            one.reset(one.members()[0])
            await eventually(in_state(other, "ok"))  # ...then the reset arrived as an event...
            slow.release.set()
            await asyncio.wait_for(slow.answered.wait(), SOON)
            await asyncio.sleep(0)  # ...and the poll's answer, older, has been handled by then
            assert health_of(other).state == "ok"

    run(test)


# -- client keys ---------------------------------------------------------------------------------
def test_admission_is_atomic_across_instances(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "a", "b") as group:
            now = time.time()
            asks = [group[n % 2].admit_key("key-1", rpm=5, tokens_per_day=None, now=now) for n in range(20)]
            answers = await asyncio.gather(*asks)
            assert sum(a.admitted for a in answers) == 5
            refused = [a for a in answers if not a.admitted]
            assert {a.refused_for for a in refused} == {"rpm"}
            assert all(0 < a.retry_after <= 60 for a in refused)
            other = await group[1].admit_key("key-2", rpm=5, tokens_per_day=None, now=now)
            assert other.admitted  # limits are per key

    run(test)


def test_tokens_per_day_count_per_utc_day(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "a", "b") as (a, b):
            noon = 86400 * 20_000 + 43200.0
            assert (await a.admit_key("key-1", rpm=None, tokens_per_day=100, now=noon)).admitted
            await a.add_key_tokens("key-1", 60, noon)
            await b.add_key_tokens("key-1", 40, noon + 10)
            refused = await b.admit_key("key-1", rpm=None, tokens_per_day=100, now=noon + 20)
            assert (refused.admitted, refused.refused_for) == (False, "tokens")
            assert refused.retry_after == pytest.approx(43200 - 20, abs=1)
            assert (await a.admit_key("key-1", rpm=None, tokens_per_day=100, now=noon + 43200)).admitted
            assert (await a.admit_key("key-1", rpm=None, tokens_per_day=None, now=noon)).admitted

    run(test)


def test_a_revoked_key_is_refused_by_every_instance(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            heard = Heard(two)
            assert (await two.admit_key("key-1", rpm=None, tokens_per_day=None, now=time.time())).admitted
            await one.revoke_key("key-1")
            assert (await heard.wait("revoked", "key-1")).instance == "one"
            refused = await two.admit_key("key-1", rpm=100, tokens_per_day=100, now=time.time())
            assert (refused.admitted, refused.refused_for) == (False, "revoked")

    run(test)


# -- locks ---------------------------------------------------------------------------------------
def test_a_lock_has_one_holder_and_only_its_token_releases_it(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "a", "b") as (a, b):
            tokens = await asyncio.gather(*(x.lock("refresh:acc-1", 30) for x in (a, b) * 5))
            held = [t for t in tokens if t is not None]
            assert len(held) == 1
            await b.unlock("refresh:acc-1", "not-the-token")
            assert await b.lock("refresh:acc-1", 30) is None
            await a.unlock("refresh:acc-1", held[0])
            again = await b.lock("refresh:acc-1", 0.3)
            assert again is not None
            await asyncio.sleep(0.4)
            assert await a.lock("refresh:acc-1", 30) is not None  # expired: the holder died
            await b.unlock("refresh:acc-1", again)  # too late: must not free a's lock
            assert await b.lock("refresh:acc-1", 30) is None

    run(test)


def test_every_key_carries_its_hash_tag(redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "a") as (a,):
            await a.take_lease("acc-1", 1, 30)
            await a.share_health("acc-1", rest(30))
            await a.admit_key("key-1", rpm=5, tokens_per_day=10, now=time.time())
            await a.add_key_tokens("key-1", 3, time.time())
            await a.revoke_key("key-1")
            await a.lock("refresh:acc-1", 30)
        with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
            keys = set(raw.keys("*"))
            assert {k.split("}")[0] + "}" for k in keys} == {
                "i2a:{a:acc-1}",
                "i2a:{k:key-1}",
                "i2a:{l:refresh:acc-1}",
            }
            assert all(raw.pttl(k) > 0 for k in keys if not k.endswith((":revoked", ":health", ":epoch")))

    run(test)


# -- when Redis fails ----------------------------------------------------------------------------
def every_call(c: RedisCoordinator) -> list[Awaitable[object]]:
    return [
        c.take_lease("acc-1", 1, 30),
        c.renew_leases([("acc-1", "x")], 30),
        c.give_back("acc-1", "x"),
        c.leases_held(["acc-1"]),
        c.share_health("acc-1", rest(5)),
        c.shared_health(["acc-1"]),
        c.admit_key("key-1", rpm=5, tokens_per_day=None, now=time.time()),
        c.add_key_tokens("key-1", 5, time.time()),
        c.revoke_key("key-2"),
        c.lock("refresh:acc-1", 30),
        c.unlock("refresh:acc-1", "x"),
    ]


def test_redis_stopped_fails_fast_and_started_again_works(redis_server: RedisServer, redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one", "two") as (one, two):
            heard = Heard(two)
            taken = await one.take_lease("acc-1", 1, 30)
            redis_server.stop()
            for call in every_call(one):
                with pytest.raises(CoordinationDown):
                    await asyncio.wait_for(call, SOON)  # a hang fails here, not at the test's timeout
            assert one.failures["lease"] == 4 and one.failures["key"] == 3 and one.failures["lock"] == 2
            redis_server.start()  # empty: leases and scripts are gone, as after a real restart
            assert (await one.take_lease("acc-1", 1, 30)).lease_id is not None
            assert await one.leases_held(["acc-1"]) == {"acc-1": 1}
            assert await one.renew_leases([("acc-1", str(taken.lease_id))], 30) == [False]
            await eventually(lambda: listening(two))
            await one.revoke_key("key-1")
            assert (await heard.wait("revoked", "key-1")).instance == "one"
            assert two.failures["events"] >= 1

    run(test)


def test_a_frozen_redis_times_out_instead_of_hanging(redis_server: RedisServer, redis_url: str) -> None:
    async def test() -> None:
        async with instances(redis_url, "one") as (one,):
            redis_server.pause()
            try:
                with pytest.raises(CoordinationDown):
                    await asyncio.wait_for(one.take_lease("acc-1", 1, 30), SOON)
                with pytest.raises(CoordinationDown):
                    await asyncio.wait_for(one.admit_key("k", rpm=1, tokens_per_day=None, now=0), SOON)
            finally:
                redis_server.resume()
            await eventually(lambda: _answers(one))

    run(test)


async def listening(coordinator: RedisCoordinator) -> bool:
    return coordinator.listening


async def _answers(coordinator: RedisCoordinator) -> bool:
    try:
        return (await coordinator.leases_held(["acc-9"])) == {"acc-9": 0}
    except CoordinationDown:
        return False


def test_start_raises_when_redis_is_not_there(redis_server: RedisServer, redis_url: str) -> None:
    async def test() -> None:
        coordinator = RedisCoordinator(redis_url, instance="late")
        redis_server.stop()
        try:
            with pytest.raises(CoordinationDown):
                await asyncio.wait_for(coordinator.start(), SOON)
            redis_server.start()
            await eventually(lambda: listening(coordinator))  # it kept trying
        finally:
            await coordinator.close()

    run(test)
