"""The PostgreSQL database itself: its schema and versions, and the instances that use it.

Everything here takes an open ``psycopg.AsyncConnection`` in autocommit mode and runs its own
transaction. Several gateway instances may start at the same moment on one database, so the
schema is created or upgraded under a transaction-scoped advisory lock: the first creates it, the
others wait on the lock, then find it done.

``instances`` is how one instance learns that another uses the same database: each serving
instance keeps a row it refreshes every few seconds (``seen_at``, the server's clock, so the hosts'
clocks need not agree). Without ``redis_url`` an instance refuses to start while another's row is
fresh: two uncoordinated instances would each think they alone send to an account, and iFlow bans
accounts with more than one request in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from iflow2api.state.sqlite_file import StateFileError

#: The version the statements below create; a database with a higher one is refused.
SCHEMA_VERSION = 1

# Distinct advisory lock keys (any bigint; these spell "i2a-schm" and "i2a-inst" in ASCII).
_MIGRATION_LOCK = 0x6932612D7363686D
_INSTANCES_LOCK = 0x6932612D696E7374

# A table's columns carry its record's field names, as in SQLite (``state.postgres_rows`` relies
# on it). JSON is kept as text, not jsonb, so it comes back exactly as written (key order, 2.0).
# ``pos`` keeps the order accounts and keys were first added; an upsert leaves it alone.
# ``seq`` orders the memories by a counter the server hands out, never by a host's clock.
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('generation', 0)",
    """CREATE TABLE accounts (
        id TEXT PRIMARY KEY, label TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NOT NULL,
        secret TEXT NOT NULL, models TEXT NOT NULL, enabled BOOLEAN NOT NULL, oauth TEXT,
        concurrency INTEGER, created_at DOUBLE PRECISION NOT NULL, provider TEXT,
        pos BIGINT GENERATED ALWAYS AS IDENTITY)""",
    """CREATE TABLE health (
        account_id TEXT PRIMARY KEY, state TEXT NOT NULL, until DOUBLE PRECISION NOT NULL,
        strikes INTEGER NOT NULL, reason TEXT, since DOUBLE PRECISION NOT NULL, key_fingerprint TEXT,
        upstream_asked BOOLEAN NOT NULL DEFAULT false, code TEXT)""",
    """CREATE TABLE client_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, admin BOOLEAN NOT NULL, rpm INTEGER,
        tokens_per_day BIGINT, models TEXT NOT NULL, pos BIGINT GENERATED ALWAYS AS IDENTITY)""",
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE usage (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL, key TEXT,
        account TEXT, model TEXT NOT NULL, dialect TEXT NOT NULL, stream BOOLEAN NOT NULL,
        status INTEGER NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION, attempts INTEGER NOT NULL, error TEXT,
        estimated BOOLEAN NOT NULL DEFAULT false, cached_tokens BIGINT NOT NULL DEFAULT 0)""",
    "CREATE INDEX usage_at ON usage (at)",
    """CREATE TABLE affinity (
        session TEXT PRIMARY KEY, account_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX affinity_at ON affinity (at)",
    "CREATE SEQUENCE memory_seq",
    """CREATE TABLE reasoning (
        key TEXT PRIMARY KEY, reasoning TEXT NOT NULL,
        seq BIGINT NOT NULL UNIQUE DEFAULT nextval('memory_seq'))""",
    """CREATE TABLE response_history (
        id TEXT PRIMARY KEY, history BYTEA NOT NULL,
        seq BIGINT NOT NULL UNIQUE DEFAULT nextval('memory_seq'))""",
    # One row per serving instance; (host, pid) is the process, so a restarted container (same
    # host name, pid 1) takes over its own stale row instead of being refused by it.
    """CREATE TABLE instances (
        host TEXT NOT NULL, pid INTEGER NOT NULL, name TEXT NOT NULL, coordinated BOOLEAN NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(), seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (host, pid))""",
)

# How a database of an older version v becomes the current one: the steps ``_STEPS[v - 1:]``.
_STEPS: tuple[tuple[str, ...], ...] = ()


async def migrate(conn: AsyncConnection[Any], where: str) -> None:
    """Create the tables in an empty database, bring an older one up to date; refuse a newer one."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        cursor = await conn.execute("SELECT max(version) FROM schema_version")
        row = await cursor.fetchone()
        version = 0 if row is None or row[0] is None else int(str(row[0]))
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StateFileError(
                f"the state database {where} has schema version {version}, which this iflow2api "
                f"(schema {SCHEMA_VERSION}) does not know; it was written by a newer iflow2api"
            )
        statements = _SCHEMA if version == 0 else [s for step in _STEPS[version - 1 :] for s in step]
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("DELETE FROM schema_version")
        await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))


@dataclass(frozen=True, slots=True)
class Instance:
    """A serving gateway process, as its row in ``instances`` names it."""

    name: str
    host: str
    pid: int
    #: Started with ``redis_url``: it shares leases, health and key limits with the others.
    coordinated: bool


async def register(conn: AsyncConnection[Any], me: Instance, fresh_seconds: float, where: str) -> None:
    """Add ``me`` to ``instances``, or refuse with ``StateFileError`` when that would be unsafe.

    Unsafe: another instance was seen within ``fresh_seconds`` and either of the two runs without
    ``redis_url``. Checked and written under one lock, so two instances starting at once cannot
    both miss each other.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INSTANCES_LOCK,))
        cursor = await conn.execute(
            "SELECT name, host, pid, coordinated, extract(epoch FROM now() - seen_at) FROM instances "
            "WHERE NOT (host = %s AND pid = %s) AND seen_at > now() - make_interval(secs => %s) "
            "ORDER BY seen_at DESC",
            (me.host, me.pid, fresh_seconds),
        )
        for name, host, pid, coordinated, age in await cursor.fetchall():
            if me.coordinated and coordinated:
                continue
            alone = "this instance runs" if not me.coordinated else f"{name} runs"
            raise StateFileError(
                f"another iflow2api instance, {name} (host {host}, pid {pid}, seen {float(str(age)):.0f} s "
                f"ago), uses the state database {where}, and {alone} without redis_url: several "
                "instances on one database_url must share leases, health and key limits through "
                "Redis. Set redis_url (IFLOW2API_REDIS_URL or --redis-url) on every instance, or "
                f"stop the other one (one that was killed stops counting {fresh_seconds:.0f} s after "
                "it was last seen)"
            )
        await conn.execute(
            "INSERT INTO instances (host, pid, name, coordinated) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (host, pid) DO UPDATE SET name = excluded.name, "
            "coordinated = excluded.coordinated, started_at = now(), seen_at = now()",
            (me.host, me.pid, me.name, me.coordinated),
        )


async def heartbeat(conn: AsyncConnection[Any], me: Instance) -> None:
    """Mark ``me`` as seen now (adding its row back if someone removed it)."""
    await conn.execute(
        "INSERT INTO instances (host, pid, name, coordinated) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (host, pid) DO UPDATE SET seen_at = now()",
        (me.host, me.pid, me.name, me.coordinated),
    )


async def unregister(conn: AsyncConnection[Any], me: Instance) -> None:
    """Remove ``me``, so a clean stop does not hold off another instance's start."""
    await conn.execute("DELETE FROM instances WHERE host = %s AND pid = %s", (me.host, me.pid))
