"""Records and rows in PostgreSQL: the statements ``state.postgres`` runs and the conversions.

Columns carry the records' field names (``state.postgres_schema``), as in SQLite, so a record
becomes a row by its fields, in order (``sqlite_rows.to_row``). PostgreSQL has real booleans and
keeps floats as floats, so only kinds and JSON need converting on the way back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg import AsyncConnection

from iflow2api.state import sqlite_rows
from iflow2api.state.records import AccountHealth, AccountRecord, ClientKeyRecord, UsageRow, account_kind
from iflow2api.state.sqlite_rows import (
    ACCOUNT_COLUMNS,
    HEALTH_COLUMNS,
    KEY_COLUMNS,
    USAGE_COLUMNS,
    _from_json,
    _from_row,
    _tuple_from_json,
    usage_values,
)

Conn = AsyncConnection[Any]


# SQLite's upserts are PostgreSQL's too, but for psycopg's placeholders (no statement holds a "?").
PUT_ACCOUNT, PUT_HEALTH, PUT_KEY, PUT_SETTING, PUT_AFFINITY = (
    statement.replace("?", "%s")
    for statement in (sqlite_rows.PUT_ACCOUNT, sqlite_rows.PUT_HEALTH, sqlite_rows.PUT_KEY,
                      sqlite_rows.PUT_SETTING, sqlite_rows.PUT_AFFINITY)
)  # fmt: skip
# ``seq`` is left to its default (the next number), also when the row was there: put again is newest.
PUT_HISTORY = (
    "INSERT INTO response_history (id, history) VALUES (%s, %s) "
    "ON CONFLICT (id) DO UPDATE SET history = excluded.history, seq = excluded.seq"
)
PUT_REASONING = (
    "INSERT INTO reasoning (key, reasoning) "
    "SELECT k, r FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(k, r, n) ORDER BY n "
    "ON CONFLICT (key) DO UPDATE SET reasoning = excluded.reasoning, seq = excluded.seq"
)

# A batch of usage rows is one statement whatever its size: one array per column, unnested.
_USAGE_TYPES = {
    "at": "float8", "key": "text", "account": "text", "model": "text", "dialect": "text",
    "stream": "bool", "status": "int4", "prompt_tokens": "int8", "completion_tokens": "int8",
    "reasoning_tokens": "int8", "latency_ms": "float8", "ttft_ms": "float8", "attempts": "int4",
    "error": "text", "estimated": "bool", "cached_tokens": "int8",
}  # fmt: skip
ADD_USAGE = (
    f"INSERT INTO usage ({USAGE_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"%s::{_USAGE_TYPES[f.name]}[]" for f in dataclasses.fields(UsageRow))
    + ")"
)


def usage_columns(rows: Sequence[UsageRow]) -> list[list[Any]]:
    """The rows turned into one list per column, for ``ADD_USAGE``."""
    return [list(column) for column in zip(*map(usage_values, rows), strict=True)]


def deduplicated(items: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Keys and values, each key once at its last place: one statement cannot upsert a row twice."""
    last: dict[str, str] = {}
    for key, value in items:
        last.pop(key, None)
        last[key] = value
    return list(last), list(last.values())


async def bump_generation(conn: Conn) -> None:
    await conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")


async def read_generation(conn: Conn) -> int:
    return int(await _one(conn, "SELECT value FROM meta WHERE name = 'generation'"))


async def delete_bumping(conn: Conn, statement: str, key: str) -> bool:
    """Run a one-row delete; bump the generation if a row went. True if one did."""
    gone = (await conn.execute(statement, (key,))).rowcount > 0
    if gone:
        await bump_generation(conn)
    return gone


async def _one(conn: Conn, query: str, params: Sequence[Any] = ()) -> Any:
    row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else row[0]


async def _all(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return await (await conn.execute(query, params)).fetchall()


async def select_setting(conn: Conn, name: str) -> str | None:
    value = await _one(conn, "SELECT value FROM settings WHERE name = %s", (name,))
    return None if value is None else str(value)


async def select_accounts(conn: Conn) -> list[AccountRecord]:
    rows = await _all(conn, f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY pos")
    return [
        _from_row(AccountRecord, row, kind=account_kind, models=_tuple_from_json, oauth=_from_json)
        for row in rows
    ]


async def select_health(conn: Conn) -> dict[str, AccountHealth]:
    rows = await _all(conn, f"SELECT account_id, {HEALTH_COLUMNS} FROM health")
    return {row[0]: AccountHealth(*row[1:]) for row in rows}


async def select_client_keys(conn: Conn) -> list[ClientKeyRecord]:
    rows = await _all(conn, f"SELECT {KEY_COLUMNS} FROM client_keys ORDER BY pos")
    return [_from_row(ClientKeyRecord, row, models=_tuple_from_json) for row in rows]


async def select_usage(conn: Conn, since: float, until: float | None) -> list[UsageRow]:
    # No upper bound is an infinite one: one statement (and one plan) for both cases.
    query = f"SELECT {USAGE_COLUMNS} FROM usage WHERE at >= %s AND at < coalesce(%s::float8, 'Infinity')"
    return [UsageRow(*row) for row in await _all(conn, query + " ORDER BY at, id", (since, until))]


async def select_affinities(conn: Conn, since: float) -> dict[str, str]:
    rows = await _all(conn, "SELECT session, account_id FROM affinity WHERE at >= %s", (since,))
    return {session: account_id for session, account_id in rows}


async def select_reasoning(conn: Conn, limit: int) -> list[tuple[str, str]]:
    rows = await _all(
        conn,
        "SELECT key, reasoning FROM (SELECT key, reasoning, seq FROM reasoning ORDER BY seq DESC "
        "LIMIT %s) AS newest ORDER BY seq",
        (limit,),
    )
    return [(key, text) for key, text in rows]


async def select_history(conn: Conn, response_id: str) -> bytes | None:
    value = await _one(conn, "SELECT history FROM response_history WHERE id = %s", (response_id,))
    return None if value is None else bytes(value)


async def keep_newest(conn: Conn, table: str, keep: int) -> None:
    await conn.execute(
        f"DELETE FROM {table} WHERE seq <= (SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET %s)",
        (keep,),
    )


async def keep_newest_bytes(conn: Conn, max_bytes: int) -> None:
    """Keep the newest response histories that add up to at most ``max_bytes``; the rest go."""
    await conn.execute(
        "DELETE FROM response_history WHERE seq <= (SELECT seq FROM (SELECT seq, "
        "sum(octet_length(history)) OVER (ORDER BY seq DESC) AS total FROM response_history) AS t "
        "WHERE total > %s ORDER BY seq DESC LIMIT 1)",
        (max_bytes,),
    )


def redacted(url: str) -> str:
    """``url`` without its password (in the address or as a parameter), fit for a message.

    >>> redacted("postgresql://app:s3cret@db:5432/iflow?sslmode=require&password=x")
    'postgresql://app@db:5432/iflow?sslmode=require'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))
