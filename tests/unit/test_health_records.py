"""Account health as stored: what the pool needs to tell rests apart survives a round trip, and a
state file written before those fields existed is still read (and brought up to date)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from iflow2api.state import STATE_FILE, AccountHealth, SQLiteStore
from iflow2api.state.sqlite_file import SCHEMA_VERSION
from tests.unit.schema_v1 import write_schema_1


def test_whether_the_upstream_asked_and_a_quarantines_code_round_trip(tmp_path: Path) -> None:
    asked = AccountHealth("cooling", 1_700_000_090.0, 2, "rate limited: x", 1_700_000_000.0, None, True)
    blocked = AccountHealth("quarantined", 0.0, 0, "blocked", 1.0, "abcd", code="account_blocked")

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / STATE_FILE)
        try:
            await store.put_health("a", asked)
            await store.put_health("b", blocked)
            assert await store.health() == {"a": asked, "b": blocked}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_schema_1_file_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    db = write_schema_1(path)
    db.execute("INSERT INTO health VALUES ('old', 'quarantined', 0.0, 0, 'blocked', 5.0, 'f00d')")
    db.commit()
    db.close()

    async def reopen() -> None:
        store = SQLiteStore(path)
        try:
            old = (await store.health())["old"]
            assert old == AccountHealth("quarantined", 0.0, 0, "blocked", 5.0, "f00d")
            assert (old.upstream_asked, old.code) == (False, None)
            fresh = AccountHealth("cooling", 9.0, 1, "unavailable: x", 8.0, upstream_asked=True)
            await store.put_health("new", fresh)
            assert (await store.health())["new"] == fresh
        finally:
            await store.close()

    asyncio.run(reopen())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
