"""``RedisCoordinator``: the ``Coordinator`` of several gateway instances, on one Redis.

Imported only when ``redis_url`` is set (it needs the ``cluster`` extra). Every key carries a hash
tag, the part in braces, so all keys of one account, client key or lock live in one slot and each
Lua script (``coordination.scripts``) runs on Redis Cluster too:

==============================  =======================================================  ==========
key                             what                                                      expires
==============================  =======================================================  ==========
``i2a:{a:<account>}:lease``     ZSET, member a lease id, score its expiry (ms, Redis     with its
                                ``TIME``); take/renew/give back/count are scripts        last lease
``i2a:{a:<account>}:epoch``     a random value set by the first take that finds none:    never
                                gone, the store lost its leases (``pool.leases``)
``i2a:{a:<account>}:health``    the health in force and its version (``wire``), merged    never
                                "extend only" by a script; ``ok`` is a record too         (replaced)
``i2a:{k:<key>}:revoked``       a flag: the client key is refused everywhere             never
``i2a:{k:<key>}:tokens:<day>``  tokens counted on the key for a UTC day (INCRBY)         2 days
``i2a:{k:<key>}:rpm``           ZSET, the last minute's admitted requests (sliding log)  1 minute
``i2a:{l:<name>}:lock``         a lock's holder token (SET NX PX; compare-and-delete)    its ttl
channel ``i2a:events``          ``{"kind", "subject", "instance"[, "record"]}`` JSON     --
==============================  =======================================================  ==========

Failures: connect and read time out after ``timeout`` (0.5 s); a broken connection (Redis
restarted) is retried once on a new one, a timeout never (the command may have run; the lease
and admission scripts are idempotent by their ids anyway). Two commands are not idempotent: a
lock's SET NX, which a retry after a lost reply finds taken, compares the holder with its own token;
the tokens' INCRBY goes over a second client that never retries (a lost reply loses the count,
rather than counting it twice). Anything else raises
``CoordinationDown`` at once and counts in ``failures`` under its group (``lease``, ``health``,
``key``, ``lock``, ``events``). The pool reconnects by itself when Redis is back.

    coordinator = RedisCoordinator("redis://127.0.0.1:6379/0", instance="gw-1")
    await coordinator.start()
    taken = await coordinator.take_lease("acc-1", limit=1, ttl=30)
    ...
    await coordinator.give_back("acc-1", taken.lease_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from iflow2api.coordination import Admission, CoordinationDown, Event, HealthRecord, Taken, scripts
from iflow2api.coordination.redis_events import CHANNEL, EventListener
from iflow2api.coordination.wire import (
    event_json,
    health_event_prefix,
    health_json,
    record_from,
    stored_record,
)
from iflow2api.state.records import AccountHealth

T = TypeVar("T")
Arg = str | int | float
#: One script call: its keys and its arguments.
Call = tuple[list[str], list[Arg]]

#: A day's token counter outlives its day by one, for a request that ends after midnight.
TOKENS_KEPT: Final = 2 * 86400


def _account(account_id: str, what: str) -> str:
    return f"i2a:{{a:{account_id}}}:{what}"


def _key(key_id: str, what: str) -> str:
    return f"i2a:{{k:{key_id}}}:{what}"


def _lock(name: str) -> str:
    return f"i2a:{{l:{name}}}:lock"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _day(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


class RedisCoordinator:
    def __init__(self, url: str, *, instance: str, timeout: float = 0.5) -> None:
        self.instance = instance
        self._timeout = timeout
        #: Calls that met a Redis that did not answer, per group; ``/metrics`` shows them.
        self.failures: dict[str, int] = dict.fromkeys(("lease", "health", "key", "lock", "events"), 0)
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # redis-py's default (10 retries with backoff) turns an outage into seconds per call.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
        )
        #: For commands that must not run twice (INCRBY): the same, without the retry.
        self._once = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        register = self._client.register_script
        self._take, self._renew, self._give_back = (
            register(scripts.TAKE),
            register(scripts.RENEW),
            register(scripts.GIVE_BACK),
        )
        self._held, self._share_health = register(scripts.HELD), register(scripts.SHARE_HEALTH)
        self._admit, self._unlock = register(scripts.ADMIT), register(scripts.UNLOCK)
        self._events = EventListener(self._client, instance, self.failures)
        self._listening: asyncio.Task[None] | None = None
        #: Work that outlives its caller (a give-back), held here so it is not garbage-collected.
        self._background: set[asyncio.Task[Any]] = set()

    # -- life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin listening (it keeps trying while Redis is away), then check Redis answers."""
        if self._listening is None:
            self._listening = asyncio.create_task(self._events.run(), name="coordination-events")
        await self._call("events", self._client.ping())
        # Events published right after start should reach us: give the subscription a moment.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events.subscribed.wait(), 1.0)

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        if self._background:
            # Give-backs and undos still running after a second: Redis is not answering, and
            # what they would release expires by itself.
            _, late = await asyncio.wait(self._background, timeout=1.0)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._client.aclose()
        await self._once.aclose()

    def on_event(self, listener: Callable[[Event], None]) -> None:
        self._events.listeners.append(listener)

    @property
    def listening(self) -> bool:
        """Subscribed to the events channel now."""
        return self._events.subscribed.is_set()

    # -- leases ----------------------------------------------------------------------------------
    async def take_lease(
        self, account_id: str, limit: int, ttl: float, *, epoch: str | None = None, retake: str | None = None
    ) -> Taken:
        """A take may land after its caller stopped waiting: the caller was cancelled (its client
        went away), or Redis read the script only after the timeout. A lease granted to nobody
        is given back then, instead of holding its slot until it expires."""
        lease_id = retake or f"{self.instance}:{secrets.token_hex(8)}"
        keys = [_account(account_id, "lease"), _account(account_id, "epoch")]
        args: list[Arg] = [
            limit,
            _ms(ttl),
            lease_id,
            epoch or "",
            "1" if retake else "0",
            secrets.token_hex(8),
        ]
        taking = asyncio.ensure_future(self._call("lease", self._take(keys, args)))
        try:
            granted, held, known, reset = await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(lambda _: self._in_background(self._undo(taking, account_id, lease_id)))
            raise
        except CoordinationDown:
            self._in_background(self._undo(taking, account_id, lease_id))
            raise
        return Taken(lease_id if granted else None, int(held), str(known), bool(reset))

    async def _undo(self, taking: asyncio.Future[list[Any]], account_id: str, lease_id: str) -> None:
        if taking.cancelled():
            return
        error = taking.exception()
        if error is None:
            if not taking.result()[0]:
                return
        elif isinstance(error.__cause__, RedisTimeoutError):
            # Sent but unanswered: it may still run. Giving back first would be too early.
            await asyncio.sleep(self._timeout)
        else:
            return  # refused: it never reached Redis
        with contextlib.suppress(CoordinationDown):
            await self.give_back(account_id, lease_id)

    async def renew_leases(self, leases: Sequence[tuple[str, str]], ttl: float) -> list[bool]:
        calls: list[Call] = [([_account(account, "lease")], [_ms(ttl), lease]) for account, lease in leases]
        return [bool(done) for done in await self._call("lease", self._many(self._renew, calls))]

    async def give_back(self, account_id: str, lease_id: str) -> None:
        """Runs to its end even when the caller is cancelled (a request's ``finally``)."""
        freed = event_json("freed", account_id, self.instance)
        keys, args = [_account(account_id, "lease")], [lease_id, CHANNEL, freed]
        await asyncio.shield(self._in_background(self._call("lease", self._give_back(keys, args))))

    async def leases_held(self, account_ids: Sequence[str]) -> dict[str, int]:
        calls: list[Call] = [([_account(account, "lease")], []) for account in account_ids]
        counts = await self._call("lease", self._many(self._held, calls))
        return {account: int(count) for account, count in zip(account_ids, counts, strict=True)}

    # -- health ----------------------------------------------------------------------------------
    async def share_health(
        self, account_id: str, health: AccountHealth, *, reset: bool = False
    ) -> HealthRecord:
        prefix = health_event_prefix(account_id, self.instance)
        keys = [_account(account_id, "health")]
        args: list[Arg] = [health_json(health), int(reset), CHANNEL, prefix]
        merged = await self._call("health", self._share_health(keys, args))
        return record_from(orjson.loads(merged))

    async def shared_health(self, account_ids: Sequence[str]) -> dict[str, HealthRecord]:
        if not account_ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for account in account_ids:
            pipe.get(_account(account, "health"))
        found = await self._call("health", pipe.execute())
        records = {
            account: stored_record(text) for account, text in zip(account_ids, found, strict=True) if text
        }
        return {account: record for account, record in records.items() if record is not None}

    # -- client keys -----------------------------------------------------------------------------
    async def admit_key(
        self, key_id: str, *, rpm: int | None, tokens_per_day: int | None, now: float
    ) -> Admission:
        keys = [_key(key_id, "revoked"), _key(key_id, f"tokens:{_day(now)}"), _key(key_id, "rpm")]
        to_midnight = 86400 - now % 86400
        args: list[Arg] = [
            -1 if rpm is None else rpm,
            -1 if tokens_per_day is None else tokens_per_day,
            to_midnight,
            secrets.token_hex(8),
        ]
        admitted, why, wait_ms = await self._call("key", self._admit(keys, args))
        if admitted:
            return Admission(True)
        return Admission(False, max(0.0, int(wait_ms) / 1000), why)

    async def add_key_tokens(self, key_id: str, tokens: int, now: float) -> None:
        if tokens <= 0:
            return
        counter = _key(key_id, f"tokens:{_day(now)}")
        pipe = self._once.pipeline(transaction=False)
        pipe.incrby(counter, tokens)
        pipe.expire(counter, TOKENS_KEPT)
        await self._call("key", pipe.execute())

    async def revoke_key(self, key_id: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(_key(key_id, "revoked"), "1")
        pipe.publish(CHANNEL, event_json("revoked", key_id, self.instance))
        await self._call("key", pipe.execute())

    # -- locks -----------------------------------------------------------------------------------
    async def lock(self, name: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        # GET: the holder, had the lock been taken before. Ours means a retry (the first try's
        # reply was lost): the lock is this caller's, not another's.
        setting = self._client.set(_lock(name), token, nx=True, px=_ms(ttl), get=True)
        holder = await self._call("lock", setting)
        return token if holder is None or holder == token else None

    async def unlock(self, name: str, token: str) -> None:
        await self._call("lock", self._unlock([_lock(name)], [token]))

    # -- plumbing --------------------------------------------------------------------------------
    def _in_background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        # Its caller may be gone: the failure is counted already, so it is read here, not logged
        # by asyncio as "never retrieved".
        if not task.cancelled():
            task.exception()

    async def _call(self, group: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except (RedisError, OSError) as error:
            self.failures[group] += 1
            raise CoordinationDown(f"Redis did not answer ({group}): {error!r}") from error

    async def _many(self, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
        """Run one script for several keys in one round trip (a pipeline, each call in its own
        slot). Redis forgets scripts when it restarts: then they are loaded and sent once more."""
        if not calls:
            return []
        try:
            return await self._pipelined(script, calls)
        except NoScriptError:
            await self._client.script_load(script.script)
            return await self._pipelined(script, calls)

    async def _pipelined(self, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute())
