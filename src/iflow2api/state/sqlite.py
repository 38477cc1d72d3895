"""The embedded state store: one SQLite file in the data folder, shared by every local process.

Use it through ``state.open_store``::

    store = open_store(data_dir)        # makes the folder; the file is not touched yet
    accounts = await store.accounts()   # the first call opens the file (creating it if needed)
    await store.close()

``await store.open()`` opens it at once instead, so that a bad file is reported at startup.

Threads: ``sqlite3`` blocks, so one worker thread owns the connection and runs every call, in the
order they were made; the event loop only awaits. The connection is opened once and kept.

Processes: the gateway and the CLI may have the file open at the same time. WAL lets readers work
while one process writes; ``busy_timeout`` makes a writer wait for another instead of failing; every
write begins with ``BEGIN IMMEDIATE``, taking the write lock before it reads anything (a read
transaction that later turns into a write can fail with "database is locked" however long it
waits). ``generation()`` reads a counter in ``meta`` that is bumped in the same transaction as any
change to accounts, client keys or settings, so another process notices those with one cheap read.

Secrets (upstream keys, OAuth tokens) live in the file: it and its ``-wal`` and ``-shm`` files are
made 0600 whatever the umask.

Memories are bounded so the file cannot grow without limit (``state.bounds``: how, and when a
table is pruned). Usage rows stay until ``prune_usage``.

The file itself (schema, upgrades, opening it) is ``state.sqlite_file``; the statements and the
record ↔ row conversions are ``state.sqlite_rows``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, Unpack

from iflow2api.state.bounds import MAX_RESPONSE_HISTORY_BYTES, BoundOptions, Bounds
from iflow2api.state.records import AccountHealth, AccountRecord, ClientKeyRecord, UsageRow
from iflow2api.state.sqlite_file import StateFileError, connect, damaged, write
from iflow2api.state.sqlite_rows import (
    ADD_USAGE,
    PUT_ACCOUNT,
    PUT_AFFINITY,
    PUT_HEALTH,
    PUT_HISTORY,
    PUT_KEY,
    PUT_REASONING,
    PUT_SETTING,
    bump_generation,
    delete_bumping,
    keep_newest,
    keep_newest_bytes,
    load_history,
    next_seq,
    read_generation,
    refresh_token_in,
    select_accounts,
    select_client_keys,
    select_health,
    select_reasoning,
    select_usage,
    to_json,
    to_row,
    usage_values,
)

T = TypeVar("T")

# Defined here first; importers may still take it from here.
__all__ = ["MAX_RESPONSE_HISTORY_BYTES", "SQLiteStore"]


class SQLiteStore:
    """``StateStore`` over one SQLite file; see the module docstring.

    The constructor does no I/O: the file is opened by ``open()`` or by the first call. The bounds
    are parameters so that tests can make them small.
    """

    def __init__(
        self,
        path: Path,
        **bounds: Unpack[BoundOptions],
    ) -> None:
        self.path = path
        self.bounds = Bounds(**bounds)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iflow2api-state")
        self._db: sqlite3.Connection | None = None  # touched on the worker thread only
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file now (creating it and its tables if needed); raises ``StateFileError``."""
        await self._run(lambda db: None)

    async def close(self) -> None:
        """Close the connection and stop the worker; calling any method afterwards is an error."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        finally:
            # Every earlier call ran before the disconnect, so this only joins an idle thread.
            self._executor.shutdown(wait=True)

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError(f"the state store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._on_worker, job)

    def _on_worker(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = connect(self.path)  # on failure, the next call tries again
        try:
            return job(self._db)
        except sqlite3.DatabaseError as exc:
            # Damaged pages show only when a query reaches them, long after the file opened fine;
            # the caller (a start-up, the CLI) can then say which file it is instead of a traceback.
            if damaged(exc):
                raise StateFileError(f"the state database {self.path} is damaged: {exc}") from exc
            raise

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- change detection ------------------------------------------------------------------------

    async def generation(self) -> int:
        return await self._run(read_generation)

    # -- accounts --------------------------------------------------------------------------------

    async def accounts(self) -> list[AccountRecord]:
        """Every account, in the order they were first added."""
        return await self._run(select_accounts)

    async def put_account(self, account: AccountRecord) -> None:
        row = to_row(account, models=to_json, oauth=to_json)

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                db.execute(PUT_ACCOUNT, row)
                bump_generation(db)

        await self._run(job)

    async def put_login(self, account: AccountRecord, *, previous_refresh_token: str) -> bool:
        row = to_row(account, models=to_json, oauth=to_json)

        def job(db: sqlite3.Connection) -> bool:
            with write(db):  # BEGIN IMMEDIATE: no other writer between the look and the write
                found = db.execute("SELECT oauth FROM accounts WHERE id = ?", (account.id,)).fetchone()
                if found is None or refresh_token_in(found[0]) != previous_refresh_token:
                    return False
                db.execute(PUT_ACCOUNT, row)
                bump_generation(db)
            return True

        return await self._run(job)

    async def delete_account(self, account_id: str) -> bool:
        """Remove it, with its health and its sessions' affinities."""

        def job(db: sqlite3.Connection) -> bool:
            with write(db):
                gone = db.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount > 0
                if gone:
                    db.execute("DELETE FROM health WHERE account_id = ?", (account_id,))
                    db.execute("DELETE FROM affinity WHERE account_id = ?", (account_id,))
                    bump_generation(db)
            return gone

        return await self._run(job)

    # -- account health --------------------------------------------------------------------------

    async def health(self) -> dict[str, AccountHealth]:
        return await self._run(select_health)

    async def put_health(self, account_id: str, health: AccountHealth) -> None:
        row = (account_id, *to_row(health))

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                db.execute(PUT_HEALTH, row)

        await self._run(job)

    # -- client keys -----------------------------------------------------------------------------

    async def client_keys(self) -> list[ClientKeyRecord]:
        """Every key, in the order they were first added."""
        return await self._run(select_client_keys)

    async def put_client_key(self, key: ClientKeyRecord) -> None:
        """Insert or replace by id; ``ValueError`` when another key has the same hash."""
        row = to_row(key, models=to_json)

        def job(db: sqlite3.Connection) -> None:
            try:
                with write(db):
                    db.execute(PUT_KEY, row)
                    bump_generation(db)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"client key {key.id!r}: another key has the same hash") from exc

        await self._run(job)

    async def delete_client_key(self, key_id: str) -> bool:
        return await self._run(lambda db: delete_bumping(db, "DELETE FROM client_keys WHERE id = ?", key_id))

    # -- settings --------------------------------------------------------------------------------

    async def get_setting(self, name: str) -> str | None:
        def job(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(job)

    async def put_setting(self, name: str, value: str | None) -> None:
        """``None`` removes it."""
        if value is None:
            await self._run(lambda db: delete_bumping(db, "DELETE FROM settings WHERE name = ?", name))
            return

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                db.execute(PUT_SETTING, (name, value))
                bump_generation(db)

        await self._run(job)

    # -- usage -----------------------------------------------------------------------------------

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Insert the batch in one transaction."""
        if not rows:
            return

        def job(db: sqlite3.Connection) -> None:
            # Converted on the worker thread, with one attrgetter per row: a batch of thousands of
            # rows must not hold up the event loop (it showed in the gateway's p99).
            with write(db):
                db.executemany(ADD_USAGE, map(usage_values, rows))

        await self._run(job)

    async def usage(self, since: float, until: float | None = None) -> list[UsageRow]:
        """Rows with ``since <= at < until`` (no upper bound when ``until`` is None), oldest first."""
        return await self._run(lambda db: select_usage(db, since, until))

    async def prune_usage(self, before: float) -> int:
        def job(db: sqlite3.Connection) -> int:
            with write(db):
                return db.execute("DELETE FROM usage WHERE at < ?", (before,)).rowcount

        return await self._run(job)

    # -- session affinity ------------------------------------------------------------------------

    async def affinities(self, since: float) -> dict[str, str]:
        def job(db: sqlite3.Connection) -> dict[str, str]:
            rows = db.execute("SELECT session, account_id FROM affinity WHERE at >= ?", (since,)).fetchall()
            return {session: account_id for session, account_id in rows}

        return await self._run(job)

    async def put_affinity(self, session: str, account_id: str, at: float) -> None:
        """Remember it; now and then, forget sessions last seen ``affinity_ttl`` before ``at``."""
        prune = self.bounds.prune_due("affinity", 1)
        cutoff = at - self.bounds.affinity_ttl

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                db.execute(PUT_AFFINITY, (session, account_id, at))
                if prune:
                    db.execute("DELETE FROM affinity WHERE at < ?", (cutoff,))

        await self._run(job)

    # -- memories --------------------------------------------------------------------------------

    async def reasoning(self, limit: int) -> list[tuple[str, str]]:
        """The ``limit`` most recently put (key, reasoning) pairs, oldest first."""
        if limit <= 0:
            return []  # SQLite reads a negative LIMIT as "no limit"
        return await self._run(lambda db: select_reasoning(db, limit))

    async def put_reasoning(self, items: Sequence[tuple[str, str]]) -> None:
        """Insert or refresh; a key put again becomes the newest. Later items count as newer."""
        batch = list(items)
        if not batch:
            return
        prune = self.bounds.prune_due("reasoning", len(batch))
        keep = self.bounds.max_reasoning

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                first = next_seq(db, "reasoning")
                db.executemany(PUT_REASONING, [(key, text, first + i) for i, (key, text) in enumerate(batch)])
                if prune:
                    keep_newest(db, "reasoning", keep)

        await self._run(job)

    async def response_history(self, response_id: str) -> list[dict[str, Any]] | None:
        def job(db: sqlite3.Connection) -> list[dict[str, Any]] | None:
            row = db.execute("SELECT history FROM response_history WHERE id = ?", (response_id,)).fetchone()
            return None if row is None else load_history(row[0])

        return await self._run(job)

    async def put_response_history(self, response_id: str, history: bytes) -> None:
        # Stored as a BLOB (SQLite keeps it so in the TEXT column): its length is then read from
        # the row's header, which keeps pruning by bytes cheap however large the histories are.
        blob = history
        if not self.bounds.history_fits(len(blob)):
            return
        prune, prune_bytes = self.bounds.history_added(len(blob))
        keep, max_bytes = self.bounds.max_response_histories, self.bounds.max_response_history_bytes

        def job(db: sqlite3.Connection) -> None:
            with write(db):
                db.execute(PUT_HISTORY, (response_id, blob, next_seq(db, "response_history")))
                if prune:
                    keep_newest(db, "response_history", keep)
                if prune_bytes:
                    keep_newest_bytes(db, "response_history", "history", max_bytes)

        await self._run(job)
