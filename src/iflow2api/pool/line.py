"""The line of requests waiting for an account, first come first served.

Each request gets a place when it arrives (``Line.arrive``) and keeps it: a request that leaves
the line and comes back (its account was full at another instance, or the coordination store
did not answer) is put back where its place says, ahead of those that arrived after it, never at
the head or the tail. Two requests refused in turn thus keep their order.

    line = Line()
    first, second = line.arrive(), line.arrive()
    line.add(Waiter("m", None, frozenset(), future_b, second))
    line.add(Waiter("m", None, frozenset(), future_a, first))   # back: ahead of `second`
    [w.place for w in line]  # [first, second]
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iflow2api.pool.members import Member


@dataclass(slots=True, eq=False)
class Waiter:
    model: str
    session: str | None
    exclude: frozenset[str]
    future: asyncio.Future[Member] = field(repr=False)
    #: Its place in the line: the order in which requests arrived.
    place: int


class Line:
    def __init__(self) -> None:
        self._waiters: list[Waiter] = []
        self._places = itertools.count()

    def arrive(self) -> int:
        """The place of a request arriving now."""
        return next(self._places)

    def add(self, waiter: Waiter) -> None:
        """Put ``waiter`` behind every request that arrived before it (usually: at the tail)."""
        at = len(self._waiters)
        while at and self._waiters[at - 1].place > waiter.place:
            at -= 1
        self._waiters.insert(at, waiter)

    def remove(self, waiter: Waiter) -> None:
        """Take ``waiter`` out of the line, if it is still in it."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def __iter__(self) -> Iterator[Waiter]:
        """The waiters in order, over a copy: serving one takes it out."""
        return iter(list(self._waiters))

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:
        return bool(self._waiters)
