"""Account health shared by several gateway instances through a ``Coordinator``.

Every health change the pool makes (a rest, a quarantine, the ``ok`` of a success or of a reset)
goes into an outbox that one task per instance publishes off the request path; what the store
answers (the record in force, merged there: a rest only extended, a quarantine ended only by a
reset, an ``ok`` ending only a rest of the gateway's own choosing) is taken here too. Other
instances' changes arrive as ``health`` events, and a poll of every account's record each
``POLL_SECONDS`` catches what an event missed, so a change reaches every instance within about a
second.

Each record carries a version the store raised: a record is taken only when it is newer than the
last one taken for its account, so a poll answer read before an event never undoes it when it
arrives after. A poll that finds no record for an account changes nothing (the store holds none:
nothing was shared yet, or Redis restarted empty; the next change here writes one).

While an account's own change waits in the outbox or is being published, what others say of it
is not taken: it predates that change, and the store's answer to it is the one to follow.

A change made with a new key (the last record taken is a quarantine for another key than the
account's now) is shared as a reset: the new key ended that quarantine here, and must end it in
the store too, or the store would keep it over every change made with the new key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, TypeVar

from iflow2api.coordination import CoordinationDown, Coordinator, Event, HealthRecord
from iflow2api.pool.members import key_fingerprint
from iflow2api.state.records import AccountHealth

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from iflow2api.pool.router import Pool

log = logging.getLogger("iflow2api.pool")
T = TypeVar("T")

#: How often every account's shared health is read, to catch an event lost on the way.
POLL_SECONDS = 1.0


async def answer(work: Awaitable[T], failed: Callable[[str], None], operation: str) -> T | None:
    """What the store answered to ``work``, or None when it did not (counted as ``operation``):
    for the background polls, which simply try again next round."""
    try:
        return await work
    except CoordinationDown:
        failed(operation)
        return None


class SharedHealth:
    #: The pool whose members' health is shared (``bind``, by the pool itself).
    _pool: Pool

    def __init__(self, coordinator: Coordinator, *, failed: Callable[[str], None]) -> None:
        self._coordinator = coordinator
        self._failed = failed
        #: Changes not yet shared, per account: the latest health, and whether any change since
        #: the last one shared was a reset (a reset then a rest must still end a quarantine).
        self._outbox: dict[str, tuple[AccountHealth, bool]] = {}
        #: Accounts whose change is being published right now.
        self._sending: set[str] = set()
        #: The last record taken from the store, per account.
        self._taken: dict[str, HealthRecord] = {}
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

    def publish(self, account_id: str, health: AccountHealth, *, reset: bool = False) -> None:
        """Hand a change to the other instances (returns at once; the latest per account wins).
        ``reset``: a person's reset or a passing check, which alone ends a quarantine."""
        pending = self._outbox.get(account_id)
        self._outbox[account_id] = (health, reset or (pending is not None and pending[1]))
        self._wake.set()

    async def _flush(self) -> None:
        while self._outbox:
            account_id, (health, reset) = next(iter(self._outbox.items()))
            del self._outbox[account_id]
            self._sending.add(account_id)
            try:
                reset = reset or self._new_key(account_id)
                merged = await self._coordinator.share_health(account_id, health, reset=reset)
            except BaseException as exc:
                # Kept for the next round (or for close(), when cancelled mid-way), under a newer
                # change that took its place meanwhile, if any.
                newer = self._outbox.get(account_id)
                self._outbox[account_id] = (health, reset) if newer is None else (newer[0], newer[1] or reset)
                if not isinstance(exc, CoordinationDown):
                    raise
                self._failed("health")
                log.warning("could not share the health of account %s: %s", account_id, exc)
                return
            finally:
                self._sending.discard(account_id)
            # The store's answer follows this change: it is the newest record, whatever came before.
            self._take(account_id, merged, answered=True)

    def _new_key(self, account_id: str) -> bool:
        """The last record taken is a quarantine for another key than the account has now."""
        taken, member = self._taken.get(account_id), self._pool.get(account_id)
        if taken is None or member is None or taken.health.state != "quarantined":
            return False
        fingerprint = taken.health.key_fingerprint
        return fingerprint is not None and fingerprint != key_fingerprint(member.account.api_key)

    # -- the others' changes ---------------------------------------------------------------------

    def heard(self, event: Event) -> None:
        if event.kind == "health" and event.health is not None:
            self._take(event.subject, HealthRecord(event.health, event.version))

    async def poll(self) -> None:
        """Take every account's record in force from the store, where newer than the last taken."""
        ids = [m.id for m in self._pool.members()]
        shared = await answer(self._coordinator.shared_health(ids), self._failed, "health") if ids else None
        for account_id, record in (shared or {}).items():
            self._take(account_id, record)

    def _take(self, account_id: str, record: HealthRecord, *, answered: bool = False) -> None:
        if account_id in self._outbox or account_id in self._sending:
            return
        member = self._pool.get(account_id)
        if member is None:
            return
        last = self._taken.get(account_id)
        # Only newer records; the answer to our own change may repeat the version taken (the
        # store kept its record over the change, which this instance has already applied).
        if last is not None and (
            record.version < last.version or (record.version == last.version and not answered)
        ):
            return
        self._taken[account_id] = record
        if record.health != member.health:
            self._pool.adopt_health(member, record.health)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                if loop.time() >= next_poll:
                    next_poll = loop.time() + POLL_SECONDS
                    await self.poll()
            except Exception:
                # A bug or a surprise must not end the sharing for the life of the process: the
                # next round (a change, or the next poll) tries again.
                log.exception("sharing account health failed; trying again")
                next_poll = max(next_poll, loop.time() + POLL_SECONDS)
