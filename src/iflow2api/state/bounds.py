"""How large the memories may grow, and when a store prunes them: one policy for every store.

Memories are bounded so a store cannot grow without limit: the newest ``max_reasoning`` reasoning
keys, the newest ``max_response_histories`` response histories, affinities seen within
``affinity_ttl`` seconds. A store prunes a table with its first insert into it, then once every
``prune_every`` inserts, not on each one. Response histories are bounded by bytes too
(``max_response_history_bytes``; one input can be megabytes): they are pruned to it whenever an
eighth of it has been added since the last time, so the table overshoots by at most that; a
history larger than the whole bound is not stored.

    >>> bounds = Bounds(prune_every=2)
    >>> [bounds.prune_due("reasoning", 1) for _ in range(4)]
    [True, False, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

MAX_REASONING = 20_000
MAX_RESPONSE_HISTORIES = 5_000
MAX_RESPONSE_HISTORY_BYTES = 64 * 1024 * 1024
AFFINITY_TTL = 24 * 3600.0
PRUNE_EVERY = 500


class BoundOptions(TypedDict, total=False):
    """A store's keyword arguments for its ``Bounds`` (tests make them small)."""

    max_reasoning: int
    max_response_histories: int
    max_response_history_bytes: int
    affinity_ttl: float
    prune_every: int


@dataclass(eq=False)
class Bounds:
    """The bounds of one store and its count of inserts since each table was last pruned."""

    max_reasoning: int = MAX_REASONING
    max_response_histories: int = MAX_RESPONSE_HISTORIES
    #: 0: no byte bound.
    max_response_history_bytes: int = MAX_RESPONSE_HISTORY_BYTES
    affinity_ttl: float = AFFINITY_TTL
    prune_every: int = PRUNE_EVERY
    _unpruned: dict[str, int] = field(init=False, repr=False)
    _unpruned_history_bytes: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Starting "due" prunes with the first insert, so a short-lived process (the CLI) also keeps
        # the store in bounds.
        self._unpruned = dict.fromkeys(("reasoning", "response_history", "affinity"), self.prune_every)
        self._unpruned_history_bytes = self.max_response_history_bytes

    def prune_due(self, table: str, inserted: int) -> bool:
        """Count ``inserted`` rows into ``table``; True when it is time to prune it."""
        self._unpruned[table] += inserted
        if self._unpruned[table] < self.prune_every:
            return False
        self._unpruned[table] = 0
        return True

    def history_fits(self, size: int) -> bool:
        """Whether a history of ``size`` bytes may be stored at all."""
        return not self.max_response_history_bytes or size <= self.max_response_history_bytes

    def history_added(self, size: int) -> tuple[bool, bool]:
        """Count a history of ``size`` bytes; whether to prune the table by count, and by bytes."""
        by_count = self.prune_due("response_history", 1)
        max_bytes = self.max_response_history_bytes
        self._unpruned_history_bytes += size
        by_bytes = bool(max_bytes) and self._unpruned_history_bytes >= max_bytes // 8
        if by_bytes:
            self._unpruned_history_bytes = 0
        return by_count, by_bytes
