"""Schema 4: usage rows keep the cached prompt tokens, and a file of schema 3 gains them."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

from iflow2api.state import STATE_FILE
from iflow2api.state.records import UsageRow
from iflow2api.state.sqlite import SQLiteStore
from iflow2api.state.sqlite_file import SCHEMA_VERSION
from tests.unit.schema_v1 import write_schema_1

# What the upgrades 1 → 2 and 2 → 3 did, word for word as they shipped: with schema 1 they make
# the file version 3 wrote.
_TO_SCHEMA_3 = (
    "ALTER TABLE health ADD COLUMN upstream_asked INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE health ADD COLUMN code TEXT",
    "ALTER TABLE usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN provider TEXT",
)


def _row(at: float, **changes: object) -> UsageRow:
    row = UsageRow(
        at=at, key="laptop", account="ds", model="deepseek-flash", dialect="chat", stream=True,
        status=200, prompt_tokens=900, completion_tokens=40, reasoning_tokens=10, latency_ms=12.5,
    )  # fmt: skip
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def write_schema_3(path: Path) -> sqlite3.Connection:
    db = write_schema_1(path)
    for statement in _TO_SCHEMA_3:
        db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    return db


def test_a_file_of_schema_3_gains_cached_tokens_and_its_rows_read_as_none_cached(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    db = write_schema_3(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(usage)")][1:]
    assert "cached_tokens" not in columns
    old = _row(10.0)
    db.execute(
        f"INSERT INTO usage ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        tuple(getattr(old, column) for column in columns),
    )
    db.commit()
    db.close()
    new = _row(20.0, cached_tokens=768)

    async def scenario() -> list[UsageRow]:
        store = SQLiteStore(path)
        try:
            await store.add_usage([new])
            return await store.usage(0)
        finally:
            await store.close()

    assert asyncio.run(scenario()) == [old, new]
    assert old.cached_tokens == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    db.close()


def test_a_new_file_keeps_cached_tokens(tmp_path: Path) -> None:
    row = _row(5.0, cached_tokens=512)

    async def scenario() -> list[UsageRow]:
        store = SQLiteStore(tmp_path / STATE_FILE)
        try:
            await store.add_usage([row])
            return await store.usage(0)
        finally:
            await store.close()

    assert asyncio.run(scenario()) == [row]
