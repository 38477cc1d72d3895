"""Records and rows: the statements the store runs and the conversions between the two.

A table's columns carry its record's field names (``state.sqlite_file``'s schema), so a record
becomes a row by its fields, in order. Everything here runs on the store's worker thread.
"""

from __future__ import annotations

import dataclasses
import operator
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from iflow2api.state.records import (
    AccountHealth,
    AccountRecord,
    ClientKeyRecord,
    UsageRow,
    account_kind,
)
from iflow2api.state.sqlite_file import write

R = TypeVar("R", AccountRecord, AccountHealth, ClientKeyRecord, UsageRow)


def _columns(record_type: type[Any]) -> str:
    return ", ".join(f.name for f in dataclasses.fields(record_type))


ACCOUNT_COLUMNS = _columns(AccountRecord)
HEALTH_COLUMNS = _columns(AccountHealth)
KEY_COLUMNS = _columns(ClientKeyRecord)
USAGE_COLUMNS = _columns(UsageRow)


def _upsert(table: str, columns: str, key: str) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE``: unlike ``INSERT OR REPLACE`` it keeps the row's rowid,
    so a replaced account or key keeps its place in the list."""
    names = [name.strip() for name in columns.split(",")]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != key)
    return f"{_insert(table, columns)} ON CONFLICT ({key}) DO UPDATE SET {updates}"


def _insert(table: str, columns: str) -> str:
    marks = ", ".join("?" for _ in columns.split(","))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})"


PUT_ACCOUNT = _upsert("accounts", ACCOUNT_COLUMNS, "id")
PUT_HEALTH = _upsert("health", f"account_id, {HEALTH_COLUMNS}", "account_id")
PUT_KEY = _upsert("client_keys", KEY_COLUMNS, "id")
PUT_SETTING = _upsert("settings", "name, value", "name")
PUT_AFFINITY = _upsert("affinity", "session, account_id, at", "session")
PUT_REASONING = _upsert("reasoning", "key, reasoning, seq", "key")
PUT_HISTORY = _upsert("response_history", "id, history, seq", "id")
ADD_USAGE = _insert("usage", USAGE_COLUMNS)
usage_values = operator.attrgetter(*(f.name for f in dataclasses.fields(UsageRow)))


def bump_generation(db: sqlite3.Connection) -> None:
    db.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")


def read_generation(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()[0])


def delete_bumping(db: sqlite3.Connection, statement: str, key: str) -> bool:
    """Run a one-row delete; bump the generation if a row went. True if one did."""
    with write(db):
        gone = db.execute(statement, (key,)).rowcount > 0
        if gone:
            bump_generation(db)
    return gone


def next_seq(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {table}").fetchone()[0])


def keep_newest(db: sqlite3.Connection, table: str, keep: int) -> None:
    # The (keep+1)-th newest seq and everything older goes; the unique index on seq makes this a
    # short index walk, however large the table.
    db.execute(
        f"DELETE FROM {table} WHERE seq <= (SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (keep,),
    )


def keep_newest_bytes(db: sqlite3.Connection, table: str, column: str, max_bytes: int) -> None:
    """Keep the newest rows whose ``column`` adds up to at most ``max_bytes``; the rest go."""
    db.execute(
        f"DELETE FROM {table} WHERE seq <= (SELECT seq FROM (SELECT seq, sum(length({column})) "
        f"OVER (ORDER BY seq DESC) AS total FROM {table}) WHERE total > ? ORDER BY seq DESC LIMIT 1)",
        (max_bytes,),
    )


# Records and rows: a table's columns are its record's fields, by the same names. Only what SQLite
# has no type for is converted: tuples and dicts go in as JSON text, bools come back from 0/1.


def to_row(record: Any, **convert: Callable[[Any], Any]) -> tuple[Any, ...]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    for name, encode in convert.items():
        values[name] = encode(values[name])
    return tuple(values.values())


def _from_row(record_type: type[R], row: Sequence[Any], **convert: Callable[[Any], Any]) -> R:
    values = dict(zip((f.name for f in dataclasses.fields(record_type)), row, strict=True))
    for name, decode in convert.items():
        values[name] = decode(values[name])
    return record_type(**values)


def to_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def refresh_token_in(oauth_text: str | None) -> str | None:
    """The refresh token of a stored login (the ``oauth`` column), for a check-and-write."""
    creds = _from_json(oauth_text)
    return str(creds.get("refresh_token") or "") if isinstance(creds, dict) else None


def _from_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _tuple_from_json(text: str) -> tuple[Any, ...]:
    return tuple(orjson.loads(text))


def select_accounts(db: sqlite3.Connection) -> list[AccountRecord]:
    rows = db.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY rowid").fetchall()
    convert: dict[str, Callable[[Any], Any]] = {
        "kind": account_kind,
        "models": _tuple_from_json,
        "enabled": bool,
        "oauth": _from_json,
    }
    return [_from_row(AccountRecord, row, **convert) for row in rows]


def select_health(db: sqlite3.Connection) -> dict[str, AccountHealth]:
    rows = db.execute(f"SELECT account_id, {HEALTH_COLUMNS} FROM health").fetchall()
    return {row[0]: _from_row(AccountHealth, row[1:], upstream_asked=bool) for row in rows}


def select_client_keys(db: sqlite3.Connection) -> list[ClientKeyRecord]:
    rows = db.execute(f"SELECT {KEY_COLUMNS} FROM client_keys ORDER BY rowid").fetchall()
    return [_from_row(ClientKeyRecord, row, admin=bool, models=_tuple_from_json) for row in rows]


def select_usage(db: sqlite3.Connection, since: float, until: float | None) -> list[UsageRow]:
    if until is None:
        query = f"SELECT {USAGE_COLUMNS} FROM usage WHERE at >= ? ORDER BY at, id"
        rows = db.execute(query, (since,)).fetchall()
    else:
        query = f"SELECT {USAGE_COLUMNS} FROM usage WHERE at >= ? AND at < ? ORDER BY at, id"
        rows = db.execute(query, (since, until)).fetchall()
    return [_from_row(UsageRow, row, stream=bool, estimated=bool) for row in rows]


def select_reasoning(db: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT key, reasoning FROM (SELECT key, reasoning, seq FROM reasoning ORDER BY seq DESC LIMIT ?) "
        "ORDER BY seq",
        (limit,),
    ).fetchall()
    return [(key, text) for key, text in rows]


def load_history(text: str | bytes) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = orjson.loads(text)  # only put_response_history writes these
    return history
