"""What several gateway instances agree on, through a shared coordination store (Redis).

One process needs none of this: the pool counts its own requests in flight, the key ring its own
requests per minute, the refresher its own refreshes, and none of them awaits anything. Several
processes (``--workers N``, or instances behind a load balancer on one ``database_url``) must
share four things, each here as one method group of ``Coordinator``:

* **Leases, not counters**, per account: each upstream request in flight holds a lease with an
  expiry, renewed while it streams and given back by its id when it ends (shielded from the
  client's cancellation), or reclaimed when it expires because its instance died. A counter that a
  cancelled request never decremented is how peers leaked concurrency (``shared/scale-out.md``).
* **Health**: a rest or a quarantine seen by one instance reaches the others within a second, a
  rest is only ever extended, never shortened by a later, shorter one, and only an explicit reset
  ends a quarantine. Each change gets a version, so a late answer never undoes a newer change.
* **Client-key limits**: requests per minute and tokens per day, checked and recorded in one atomic
  step; and revocations, so a revoked key is refused by every instance on its next request.
* **Locks** with an owner token and an expiry, e.g. one refresher per OAuth account.

When the store does not answer within its short timeout, a method raises ``CoordinationDown`` and
the caller applies the failure policy (README, "Running several instances"): leases fail closed
(the request waits, then 503 with ``Retry-After``), key limits fail open (logged and counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from iflow2api.state.records import AccountHealth


class CoordinationDown(Exception):
    """The coordination store did not answer in time (or refused the connection)."""


#: What another instance did that this one must know at once: an account's health changed
#: (``subject`` its id), an account's lease was given back (a waiting request may take it), or a
#: client key was revoked (``subject`` its id).
EventKind = Literal["health", "freed", "revoked"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    subject: str
    #: The instance that caused it (an instance ignores its own events).
    instance: str
    #: For ``health``: the health now in force (already merged, extend-only).
    health: AccountHealth | None = None
    #: For ``health``: its version (``HealthRecord.version``).
    version: int = 0


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """An account's health in force across the instances, and its version: a number the store
    raises with every change it keeps, so whoever holds two records of one account knows which is
    newer (an event and a poll answer may arrive in either order)."""

    health: AccountHealth
    version: int


@dataclass(frozen=True, slots=True)
class Taken:
    """A lease asked for: its id when granted (None: the account is full), and how many leases the
    account holds now across all instances, this one included when granted."""

    lease_id: str | None
    held: int
    #: The account's epoch in the store: a value that changes when the store loses its data.
    epoch: str | None = None
    #: Refused because the epoch is not the one the caller knew: the store lost its leases, and
    #: instances that still hold some have not taken them again yet.
    reset: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """A client key's request asked for: admitted, or refused with the seconds to wait."""

    admitted: bool
    retry_after: float = 0.0
    #: Why it was refused: the per-minute limit, the daily tokens, or a revoked key.
    refused_for: Literal["rpm", "tokens", "revoked"] | None = None


class Coordinator(Protocol):
    #: This instance's name: unique among the instances, stable for its life (``/metrics`` labels it).
    instance: str

    async def start(self) -> None:
        """Connect and begin listening for events; raises ``CoordinationDown`` when it cannot."""
        ...

    async def close(self) -> None: ...

    def on_event(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` (on the event loop) for every event of another instance."""
        ...

    # -- leases ----------------------------------------------------------------------------------
    async def take_lease(
        self, account_id: str, limit: int, ttl: float, *, epoch: str | None = None, retake: str | None = None
    ) -> Taken:
        """A lease on one of ``account_id``'s ``limit`` slots, expiring in ``ttl`` seconds unless
        renewed; leases past their expiry are reclaimed first.

        ``epoch`` is the account's epoch the caller last saw (None: it never saw one): when the
        store's differs, or is new, the lease is refused with ``reset`` (``pool.leases``).
        ``retake`` is the id of a lease of the caller's that the store lost: taken again under
        that id, whatever the epoch, if a slot is free."""
        ...

    async def renew_leases(self, leases: Sequence[tuple[str, str]], ttl: float) -> list[bool]:
        """Push back the expiry of each (account id, lease id); False for a lease already gone."""
        ...

    async def give_back(self, account_id: str, lease_id: str) -> None:
        """Release one lease by its id (idempotent) and tell the other instances it is free."""
        ...

    async def leases_held(self, account_ids: Sequence[str]) -> dict[str, int]:
        """Live leases per account, across every instance."""
        ...

    # -- health ----------------------------------------------------------------------------------
    async def share_health(
        self, account_id: str, health: AccountHealth, *, reset: bool = False
    ) -> HealthRecord:
        """Publish an account's new health and return the one in force: a rest is only extended
        (the later ``until`` wins), a quarantine outlasts rests and successes, and an ``ok`` ends
        a rest of the gateway's own choosing (not one the upstream asked for that has not ended
        yet). ``reset`` (a person's reset, a passing check, a new key) replaces whatever is there."""
        ...

    async def shared_health(self, account_ids: Sequence[str]) -> dict[str, HealthRecord]:
        """The record in force for each account that has one shared (an ``ok`` is a record too)."""
        ...

    # -- client keys -----------------------------------------------------------------------------
    async def admit_key(
        self, key_id: str, *, rpm: int | None, tokens_per_day: int | None, now: float
    ) -> Admission:
        """Check and record one request of ``key_id`` in one atomic step (``now``: epoch seconds)."""
        ...

    async def add_key_tokens(self, key_id: str, tokens: int, now: float) -> None:
        """Count tokens against the key's day (UTC) once a request's usage is known."""
        ...

    async def revoke_key(self, key_id: str) -> None:
        """Refuse ``key_id`` on every instance from its next request on."""
        ...

    # -- locks -----------------------------------------------------------------------------------
    async def lock(self, name: str, ttl: float) -> str | None:
        """A token when this instance now holds ``name`` for ``ttl`` seconds, None when another does."""
        ...

    async def unlock(self, name: str, token: str) -> None:
        """Release ``name`` only if ``token`` still holds it."""
        ...


__all__ = ["Admission", "CoordinationDown", "Coordinator", "Event", "EventKind", "HealthRecord", "Taken"]
