"""Account health shared by several gateway instances through a ``Coordinator``.

Every health change the pool makes (a rest, a quarantine, the ``ok`` of a success) goes into an
outbox that one task per instance publishes off the request path; what the store answers (the
health in force, merged there: a rest only extended, an ``ok`` ending only a rest of the gateway's
own choosing) is taken here too. Other instances' changes arrive as ``health`` events, and a poll
of every account's shared health each ``POLL_SECONDS`` catches what an event missed, so a rest
reaches every instance within about a second.

While an account's own change waits in the outbox or is being published, what others say of it
is not taken: it predates that change, and the store's answer to it is the one to follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from iflow2api.coordination import CoordinationDown, Coordinator, Event
from iflow2api.pool.leases import answer
from iflow2api.state.records import AccountHealth

if TYPE_CHECKING:
    from iflow2api.pool.router import Pool

log = logging.getLogger("iflow2api.pool")

#: How often every account's shared health is read, to catch an event lost on the way.
POLL_SECONDS = 1.0


def adopted(local: AccountHealth, shared: AccountHealth, now: float) -> AccountHealth | None:
    """The health to take from the store over ``local``, or None to keep ``local``.

    The store's is in force, except what would shorten a rest this instance is sure of (a shared
    rest that ends sooner, or an ``ok`` over a rest the upstream asked for: the store lost it, or
    has not merged it yet; it will, since it is published).

    >>> rest = AccountHealth("cooling", 130.0, 1, "429", 100.0, upstream_asked=True)
    >>> adopted(rest, AccountHealth(since=110.0), now=120.0) is None
    True
    >>> adopted(AccountHealth(), rest, now=120.0) == rest
    True
    """
    if shared == local:
        return None
    resting = local.state == "cooling" and local.until > now
    if resting and shared.state == "cooling" and shared.until < local.until:
        return None
    if resting and shared.state == "ok" and local.upstream_asked:
        return None
    return shared


class SharedHealth:
    #: The pool whose members' health is shared (``bind``, by the pool itself).
    _pool: Pool

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        failed: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._coordinator = coordinator
        self._failed = failed
        self._clock = clock
        self._outbox: dict[str, AccountHealth] = {}
        #: Accounts whose change is being published right now.
        self._sending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def bind(self, pool: Pool) -> None:
        self._pool = pool

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Publish what is still in the outbox (briefly: the store may be down), then stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._flush()

    # -- this instance's changes -----------------------------------------------------------------

    def publish(self, account_id: str, health: AccountHealth) -> None:
        """Hand a change to the other instances (returns at once; the latest per account wins)."""
        self._outbox[account_id] = health
        self._wake.set()

    async def _flush(self) -> None:
        while self._outbox:
            account_id, health = next(iter(self._outbox.items()))
            del self._outbox[account_id]
            self._sending.add(account_id)
            try:
                merged = await self._coordinator.share_health(account_id, health)
            except CoordinationDown as exc:
                self._failed("health")
                # Kept for the next round, unless a newer change took its place meanwhile.
                self._outbox.setdefault(account_id, health)
                log.warning("could not share the health of account %s: %s", account_id, exc)
                return
            finally:
                self._sending.discard(account_id)
            self._take(account_id, merged)

    # -- the others' changes ---------------------------------------------------------------------

    def heard(self, event: Event) -> None:
        if event.kind == "health" and event.health is not None:
            self._take(event.subject, event.health)

    async def poll(self) -> None:
        """Take every account's health in force from the store."""
        ids = [m.id for m in self._pool.members()]
        shared = await answer(self._coordinator.shared_health(ids), self._failed, "health") if ids else None
        for account_id, health in (shared or {}).items():
            self._take(account_id, health)

    def _take(self, account_id: str, shared: AccountHealth) -> None:
        if account_id in self._outbox or account_id in self._sending:
            return
        member = self._pool.get(account_id)
        if member is None:
            return
        health = adopted(member.health, shared, self._clock())
        if health is not None:
            self._pool.adopt_health(member, health)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            await self._flush()
            if loop.time() >= next_poll:
                await self.poll()
                next_poll = loop.time() + POLL_SECONDS
