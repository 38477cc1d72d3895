"""The state stores under test, side by side: SQLite in a temp folder, PostgreSQL in a fresh database.

A behavioural test of ``StateStore`` takes the ``backend`` fixture (parametrized over both) and opens
as many stores as it likes on the one database of that test::

    async with backend.store(prune_every=4) as store:
        ...
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from iflow2api.state import STATE_FILE, SQLiteStore, StateStore


class Backend:
    """One database and the stores that open it; ``name`` is the parameter's id."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        #: The SQLite file's path, or the PostgreSQL URL.
        self.where = where

    def store(self, **options: Any) -> AbstractAsyncContextManager[StateStore]:
        return _opened(self._make(**options))

    def _make(self, **options: Any) -> StateStore:
        if self.name == "sqlite":
            return SQLiteStore(Path(self.where), **options)
        from iflow2api.state.postgres import PostgresStore

        return PostgresStore(self.where, **options)

    def history_bytes(self) -> int:
        """What the stored response histories add up to, read around the store."""
        query = "SELECT coalesce(sum({}(history)), 0) FROM response_history"
        if self.name == "sqlite":
            with sqlite3.connect(self.where) as db:
                return int(db.execute(query.format("length")).fetchone()[0])
        import psycopg

        with psycopg.connect(self.where) as conn:
            row = conn.execute(query.format("octet_length")).fetchone()
            return int(row[0]) if row is not None else 0


@asynccontextmanager
async def _opened(store: StateStore) -> AsyncIterator[StateStore]:
    try:
        yield store
    finally:
        await store.close()


def backend_for(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The ``Backend`` a fixture parametrized with ``["sqlite", "postgres"]`` asks for."""
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / STATE_FILE))
    return Backend("postgres", request.getfixturevalue("postgres_url"))
