"""The shared state store: one PostgreSQL database used by every gateway instance.

Use it through ``state.open_store`` with a ``database_url``::

    store = open_store(data_dir, database_url="postgresql://app@db/iflow2api")
    await store.open()                  # connects, creates or upgrades the schema
    accounts = await store.accounts()
    await store.close()

The semantics are ``SQLiteStore``'s, so the callers cannot tell the two apart: ``generation()``
reads a counter bumped in the same transaction as any change to accounts, client keys or settings,
whichever instance made it; a batch of usage rows is one INSERT (never a per-request counter
update, which is what deadlocked peers at ten instances); the memories are bounded the same way.

Connections come from a small ``psycopg_pool`` pool, with ``prepare_threshold=None`` so that the
store works behind PgBouncer's transaction pooling. Writes from one store run one at a time, in the
order they were made (as on SQLite's single thread), so a later health or setting always wins;
reads run side by side.

A serving gateway passes ``instance``: the store then keeps a row in ``instances`` fresh while it is
open and, without ``redis_url`` (``instance.coordinated`` False), refuses to open while another
instance uses the database (``state.postgres_schema.register``). The CLI passes none and is never
refused. Every failure to connect or to start is a ``StateFileError`` naming the URL without its
password, which the CLI and the gateway's start already print as one line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar, Unpack

import psycopg
from psycopg import errors
from psycopg_pool import AsyncConnectionPool

from iflow2api.state import postgres_rows as sql
from iflow2api.state.bounds import BoundOptions, Bounds
from iflow2api.state.postgres_schema import Instance, heartbeat, migrate, register, unregister
from iflow2api.state.records import AccountHealth, AccountRecord, ClientKeyRecord, UsageRow
from iflow2api.state.sqlite_file import StateFileError
from iflow2api.state.sqlite_rows import load_history, refresh_token_in, to_json, to_row

log = logging.getLogger("iflow2api.state")

T = TypeVar("T")

#: Connections kept: the store's work is small and off the request path.
POOL_SIZE = 4
#: Seconds to wait for the server when connecting, and for a free connection of the pool.
CONNECT_TIMEOUT = 5.0
#: How often a serving instance marks itself seen, and how recent a mark counts as running.
HEARTBEAT_EVERY = 5.0
FRESH_FOR = 15.0


class PostgresStore:
    """``StateStore`` over a PostgreSQL database; see the module docstring.

    The constructor does no I/O: ``open()`` or the first call connects. The bounds and the timings
    are parameters so that tests can make them small.
    """

    def __init__(
        self,
        url: str,
        *,
        instance: Instance | None = None,
        pool_size: int = POOL_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        heartbeat_every: float = HEARTBEAT_EVERY,
        fresh_for: float = FRESH_FOR,
        **bounds: Unpack[BoundOptions],
    ) -> None:
        self.url = url
        #: The URL without its password: what every message shows.
        self.where = sql.redacted(url)
        self.instance = instance
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.heartbeat_every = heartbeat_every
        self.fresh_for = fresh_for
        self.bounds = Bounds(**bounds)
        self._pool: AsyncConnectionPool[sql.Conn] | None = None
        self._opening = asyncio.Lock()
        self._writing = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or upgrade the schema, register the instance; raises ``StateFileError``."""
        await self._ready()

    async def _ready(self) -> AsyncConnectionPool[sql.Conn]:
        if self._closed:
            raise RuntimeError(f"the state store {self.where} is closed")
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._connect()
                if self.instance is not None:
                    self._heartbeat = asyncio.create_task(self._beat(self.instance), name="state-heartbeat")
            return self._pool

    async def _connect(self) -> AsyncConnectionPool[sql.Conn]:
        # One plain connection first: its error says why (refused, bad password, no such database),
        # where a pool would only time out. It also migrates and registers, once, before any use.
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, prepare_threshold=None, connect_timeout=self._whole_seconds()
            )
        except psycopg.Error as exc:
            raise StateFileError(
                f"cannot connect to the state database {self.where}: {_one_line(exc)}"
            ) from None
        try:
            await migrate(conn, self.where)
            if self.instance is not None:
                await register(conn, self.instance, self.fresh_for, self.where)
        except psycopg.Error as exc:
            raise StateFileError(f"cannot use the state database {self.where}: {_one_line(exc)}") from None
        finally:
            await conn.close()
        pool: AsyncConnectionPool[sql.Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.connect_timeout,
            # A connection the server dropped (a restart, an idle timeout) is replaced, not handed out.
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "prepare_threshold": None, "connect_timeout": self._whole_seconds()},
            name="iflow2api-state",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except Exception as exc:
            await pool.close()
            raise StateFileError(f"cannot connect to the state database {self.where}: {exc}") from None
        return pool

    def _whole_seconds(self) -> int:
        return max(1, round(self.connect_timeout))  # libpq's connect_timeout is whole seconds

    async def _beat(self, me: Instance) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                await self._read(lambda conn: heartbeat(conn, me))
            except Exception as exc:  # a missed beat is retried; the store's other calls report the outage
                log.warning("could not mark this instance as running in %s: %s", self.where, _one_line(exc))

    async def close(self) -> None:
        """Stop the heartbeat, forget this instance, close the pool; later calls are errors."""
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeat
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            if self.instance is not None:
                me = self.instance
                with suppress(psycopg.Error, OSError):  # its row then just goes stale
                    async with pool.connection(timeout=self.connect_timeout) as conn:
                        await unregister(conn, me)
        finally:
            await pool.close()

    async def _read(self, job: Callable[[sql.Conn], Awaitable[T]]) -> T:
        pool = await self._ready()
        async with pool.connection() as conn:
            return await job(conn)

    async def _write(self, job: Callable[[sql.Conn], Awaitable[T]]) -> T:
        """Run ``job`` in one transaction, after every write this store was asked for earlier."""
        pool = await self._ready()
        async with self._writing, pool.connection() as conn, conn.transaction():
            return await job(conn)

    async def generation(self) -> int:
        return await self._read(sql.read_generation)

    # Health (cooldowns, quarantines) is not configuration: it leaves the generation alone.
    async def health(self) -> dict[str, AccountHealth]:
        return await self._read(sql.select_health)

    async def put_health(self, account_id: str, health: AccountHealth) -> None:
        row = (account_id, *to_row(health))
        await self._write(lambda conn: conn.execute(sql.PUT_HEALTH, row))

    async def accounts(self) -> list[AccountRecord]:
        return await self._read(sql.select_accounts)  # in the order they were first added

    async def put_account(self, account: AccountRecord) -> None:
        row = to_row(account, models=to_json, oauth=to_json)

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_ACCOUNT, row)
            await sql.bump_generation(conn)

        await self._write(job)

    async def put_login(self, account: AccountRecord, *, previous_refresh_token: str) -> bool:
        row = to_row(account, models=to_json, oauth=to_json)

        async def job(conn: sql.Conn) -> bool:
            # FOR UPDATE: the row stays as read until this transaction writes it.
            found = await conn.execute("SELECT oauth FROM accounts WHERE id = %s FOR UPDATE", (account.id,))
            kept = await found.fetchone()
            if kept is None or refresh_token_in(kept[0]) != previous_refresh_token:
                return False
            await conn.execute(sql.PUT_ACCOUNT, row)
            await sql.bump_generation(conn)
            return True

        return await self._write(job)

    async def delete_account(self, account_id: str) -> bool:
        """Remove it, with its health and its sessions' affinities."""

        async def job(conn: sql.Conn) -> bool:
            gone = await sql.delete_bumping(conn, "DELETE FROM accounts WHERE id = %s", account_id)
            if gone:
                await conn.execute("DELETE FROM health WHERE account_id = %s", (account_id,))
                await conn.execute("DELETE FROM affinity WHERE account_id = %s", (account_id,))
            return gone

        return await self._write(job)

    async def client_keys(self) -> list[ClientKeyRecord]:
        return await self._read(sql.select_client_keys)  # in the order they were first added

    async def put_client_key(self, key: ClientKeyRecord) -> None:
        """Insert or replace by id; ``ValueError`` when another key has the same hash."""
        row = to_row(key, models=to_json)

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_KEY, row)
            await sql.bump_generation(conn)

        try:
            await self._write(job)
        except errors.UniqueViolation as exc:
            raise ValueError(f"client key {key.id!r}: another key has the same hash") from exc

    async def delete_client_key(self, key_id: str) -> bool:
        statement = "DELETE FROM client_keys WHERE id = %s"
        return await self._write(lambda conn: sql.delete_bumping(conn, statement, key_id))

    async def get_setting(self, name: str) -> str | None:
        return await self._read(lambda conn: sql.select_setting(conn, name))

    async def put_setting(self, name: str, value: str | None) -> None:
        """``None`` removes it."""
        if value is None:
            await self._write(
                lambda conn: sql.delete_bumping(conn, "DELETE FROM settings WHERE name = %s", name)
            )
            return

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_SETTING, (name, value))
            await sql.bump_generation(conn)

        await self._write(job)

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Insert the batch as one statement."""
        if not rows:
            return
        columns = sql.usage_columns(rows)

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.ADD_USAGE, columns)

        await self._write(job)

    async def usage(self, since: float, until: float | None = None) -> list[UsageRow]:
        """Rows with ``since <= at < until`` (no upper bound when ``until`` is None), oldest first."""
        return await self._read(lambda conn: sql.select_usage(conn, since, until))

    async def prune_usage(self, before: float) -> int:
        async def job(conn: sql.Conn) -> int:
            return (await conn.execute("DELETE FROM usage WHERE at < %s", (before,))).rowcount

        return await self._write(job)

    async def affinities(self, since: float) -> dict[str, str]:
        return await self._read(lambda conn: sql.select_affinities(conn, since))

    async def put_affinity(self, session: str, account_id: str, at: float) -> None:
        """Remember it; now and then, forget sessions last seen ``affinity_ttl`` before ``at``."""
        prune = self.bounds.prune_due("affinity", 1)
        cutoff = at - self.bounds.affinity_ttl

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_AFFINITY, (session, account_id, at))
            if prune:
                await conn.execute("DELETE FROM affinity WHERE at < %s", (cutoff,))

        await self._write(job)

    async def reasoning(self, limit: int) -> list[tuple[str, str]]:
        """The ``limit`` most recently put (key, reasoning) pairs, oldest first."""
        if limit <= 0:
            return []
        return await self._read(lambda conn: sql.select_reasoning(conn, limit))

    async def put_reasoning(self, items: Sequence[tuple[str, str]]) -> None:
        """Insert or refresh; a key put again becomes the newest. Later items count as newer."""
        if not items:
            return
        keys, texts = sql.deduplicated(items)
        prune = self.bounds.prune_due("reasoning", len(items))
        keep = self.bounds.max_reasoning

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_REASONING, (keys, texts))
            if prune:
                await sql.keep_newest(conn, "reasoning", keep)

        await self._write(job)

    async def response_history(self, response_id: str) -> list[dict[str, Any]] | None:
        blob = await self._read(lambda conn: sql.select_history(conn, response_id))
        return None if blob is None else load_history(blob)

    async def put_response_history(self, response_id: str, history: bytes) -> None:
        if not self.bounds.history_fits(len(history)):
            return
        prune, prune_bytes = self.bounds.history_added(len(history))
        keep, max_bytes = self.bounds.max_response_histories, self.bounds.max_response_history_bytes

        async def job(conn: sql.Conn) -> None:
            await conn.execute(sql.PUT_HISTORY, (response_id, bytes(history)))
            if prune:
                await sql.keep_newest(conn, "response_history", keep)
            if prune_bytes:
                await sql.keep_newest_bytes(conn, max_bytes)

        await self._write(job)


def _one_line(exc: BaseException) -> str:
    """libpq's messages run over several lines ("Is the server running ...?"); a log wants one."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
