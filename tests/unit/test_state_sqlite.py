"""The SQLite state store: exact round trips, sharing between processes, private files, bounds."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sqlite3
import stat
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from iflow2api.state import (
    STATE_FILE,
    AccountHealth,
    AccountRecord,
    ClientKeyRecord,
    SQLiteStore,
    StateFileError,
    StateStore,
    UsageRow,
    open_store,
)
from iflow2api.state.sqlite_file import SCHEMA_VERSION
from tests.state_backends import Backend, backend_for
from tests.unit.schema_v1 import write_schema_1

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")

OAUTH_ACCOUNT = AccountRecord(
    id="acc-3f9a1c",
    label="w@example.com",
    kind="iflow-oauth",
    base_url="https://apis.iflow.cn/v1",
    secret="sk-" + "a" * 32,
    models=("glm-4.7", "qwen3-coder"),
    enabled=False,
    oauth={
        "access_token": "at-1",
        "refresh_token": "rt-1",
        "expiry_date": 1_900_000_000_000,
        "ratio": 2.0,
        "verified": True,
        "phone": None,
        "scopes": ["read", "write"],
        "nested": {"x": 1.5},
    },
    concurrency=3,
    created_at=1_700_000_000.0,
)
KEY_ACCOUNT = AccountRecord(
    id="acc-000002",
    label="spare",
    kind="openai-compatible",
    base_url="https://api.example.com/v1",
    secret="sk-other",
    created_at=1_700_000_001.25,
)
CLIENT_KEY = ClientKeyRecord(
    id="key-1",
    name="laptop",
    key_hash="a" * 64,
    prefix="sk-i2a-AbCd",
    created_at=1_700_000_000.0,
    admin=True,
    rpm=60,
    tokens_per_day=None,
    models=("glm-*",),
)
PLAIN_KEY = ClientKeyRecord(id="key-2", name="ci", key_hash="b" * 64, prefix="sk-i2a-EfGh", created_at=5.5)


def usage_row(at: float, **changes: Any) -> UsageRow:
    fields: dict[str, Any] = {
        "at": at,
        "key": "laptop",
        "account": "w@example.com",
        "model": "glm-4.7",
        "dialect": "chat",
        "stream": True,
        "status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "reasoning_tokens": 5,
        "latency_ms": 123.0,
        "ttft_ms": 45.5,
        "attempts": 2,
        "error": None,
    }
    return UsageRow(**{**fields, **changes})


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_identical(got: object, want: object) -> None:
    """Equal, and of the same types all the way down (1.0 is not 1, True is not 1, () is not [])."""
    assert got == want
    assert repr(got) == repr(want)


@asynccontextmanager
async def opened(path: Path, **options: Any) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path, **options)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The behavioural tests run against both stores (PostgreSQL: a private server's fresh database)."""
    return backend_for(request, tmp_path)


# ---------------------------------------------------------------------------------------------
# Opening, files and closing


@posix_only
def test_open_store_makes_a_private_folder_and_a_ready_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "data"

    async def scenario() -> None:
        store = open_store(data_dir)
        try:
            assert await store.accounts() == []
        finally:
            await store.close()

    old_umask = os.umask(0)
    try:
        asyncio.run(scenario())
    finally:
        os.umask(old_umask)
    assert mode_of(data_dir) == 0o700
    assert mode_of(data_dir / STATE_FILE) == 0o600


def test_the_constructor_and_closing_an_unused_store_touch_no_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    store: StateStore = SQLiteStore(path)  # mypy checks that it implements the protocol
    assert not path.exists()
    asyncio.run(store.close())
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_the_database_and_its_wal_and_shm_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    names = [path, tmp_path / f"{STATE_FILE}-wal", tmp_path / f"{STATE_FILE}-shm"]

    async def scenario() -> dict[str, int]:
        async with opened(path) as store:
            await store.put_setting("admin_password", "hash")
            return {p.name: mode_of(p) for p in names}

    old_umask = os.umask(0)
    try:
        modes = asyncio.run(scenario())
    finally:
        os.umask(old_umask)
    assert modes == {p.name: 0o600 for p in names}


@posix_only
def test_files_another_program_left_readable_are_made_private(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    names = [path, tmp_path / f"{STATE_FILE}-wal", tmp_path / f"{STATE_FILE}-shm"]
    old_umask = os.umask(0o022)
    try:
        other = sqlite3.connect(path)  # holds the WAL and its index open, as a running program would
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("CREATE TABLE unrelated (x)")
        other.commit()
    finally:
        os.umask(old_umask)

    async def scenario() -> dict[str, int]:
        async with opened(path) as store:
            await store.open()
            return {p.name: mode_of(p) for p in names}

    try:
        assert {p.name: mode_of(p) for p in names} == {p.name: 0o644 for p in names}
        assert asyncio.run(scenario()) == {p.name: 0o600 for p in names}
    finally:
        other.close()


def test_a_file_that_is_not_a_database_is_reported_by_name_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    garbage = b"\x00\xffnot a database at all\n" * 300
    path.write_bytes(garbage)

    async def scenario() -> None:
        async with opened(path) as store:
            with pytest.raises(StateFileError, match=re.escape(str(path))) as opening:
                await store.open()
            assert "not a database" in str(opening.value)
            with pytest.raises(StateFileError):  # still reported on the next call, not half open
                await store.accounts()

    asyncio.run(scenario())
    assert path.read_bytes() == garbage


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()

    async def scenario() -> None:
        async with opened(path) as store:
            with pytest.raises(StateFileError, match="newer iflow2api"):
                await store.accounts()

    asyncio.run(scenario())


def test_a_file_of_schema_1_gains_the_estimated_column(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    db = write_schema_1(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(usage)")]
    assert "estimated" not in columns
    row = usage_row(10.0)
    old = tuple(getattr(row, column) for column in columns[1:])  # the fields schema 1 had
    db.execute(f"INSERT INTO usage ({', '.join(columns[1:])}) VALUES ({', '.join('?' * len(old))})", old)
    db.commit()
    db.close()
    estimated = usage_row(20.0, estimated=True)

    async def scenario() -> None:
        async with opened(path) as store:
            await store.add_usage([estimated])
            assert_identical(await store.usage(0), [usage_row(10.0), estimated])

    asyncio.run(scenario())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_close_really_closes_and_later_calls_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    wal = tmp_path / f"{STATE_FILE}-wal"

    async def scenario() -> None:
        threads_before = set(threading.enumerate())
        store = SQLiteStore(path)
        await store.put_setting("theme", "dark")
        assert wal.exists()
        await store.close()
        # The last connection to close checkpoints and removes the WAL: it really was closed.
        assert not wal.exists()
        assert set(threading.enumerate()) == threads_before
        await store.close()  # a second close is harmless
        with pytest.raises(RuntimeError, match="closed"):
            await store.get_setting("theme")
        async with opened(path) as again:
            assert await again.get_setting("theme") == "dark"

    asyncio.run(scenario())


def test_calls_run_in_the_order_they_were_made(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            await asyncio.gather(*(store.put_setting("n", str(i)) for i in range(50)))
            assert await store.get_setting("n") == "49"

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Round trips


def test_accounts_round_trip_in_the_order_added(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            await store.put_account(OAUTH_ACCOUNT)
            await store.put_account(KEY_ACCOUNT)
            got = await store.accounts()
            assert_identical(got, [OAUTH_ACCOUNT, KEY_ACCOUNT])
            assert got[0].oauth == OAUTH_ACCOUNT.oauth  # oauth is left out of ==

            renamed = dataclasses.replace(OAUTH_ACCOUNT, label="renamed", oauth=None)
            await store.put_account(renamed)  # replaced in place, not moved to the end
            assert_identical(await store.accounts(), [renamed, KEY_ACCOUNT])
            assert (await store.accounts())[0].oauth is None

            assert await store.delete_account(OAUTH_ACCOUNT.id) is True
            assert await store.delete_account(OAUTH_ACCOUNT.id) is False
            assert_identical(await store.accounts(), [KEY_ACCOUNT])

    asyncio.run(scenario())


def test_an_oauth_account_stored_with_the_iflow_cli_spelling_still_loads(tmp_path: Path) -> None:
    # The iFlow CLI spells its login ``oauth-iflow``; a row holding that word reads as our kind.
    async def scenario() -> None:
        async with opened(tmp_path / STATE_FILE) as store:
            await store.put_account(OAUTH_ACCOUNT)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute("UPDATE accounts SET kind = 'oauth-iflow' WHERE id = ?", (OAUTH_ACCOUNT.id,))
        async with opened(tmp_path / STATE_FILE) as store:
            assert_identical(await store.accounts(), [OAUTH_ACCOUNT])
            await store.put_account(OAUTH_ACCOUNT)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            assert db.execute("SELECT kind FROM accounts").fetchall() == [("iflow-oauth",)]

    asyncio.run(scenario())


def test_health_round_trips_and_goes_with_its_account(backend: Backend) -> None:
    cooling = AccountHealth(
        state="cooling", until=1_700_000_060.0, strikes=2, reason="rate limited", since=1_700_000_000.5
    )
    quarantined = AccountHealth(state="quarantined", reason="key blocked", key_fingerprint="f00d")

    async def scenario() -> None:
        async with backend.store() as store:
            assert await store.health() == {}
            await store.put_account(OAUTH_ACCOUNT)
            await store.put_health(OAUTH_ACCOUNT.id, cooling)
            await store.put_health(KEY_ACCOUNT.id, AccountHealth())
            await store.put_health(KEY_ACCOUNT.id, quarantined)
            assert_identical(await store.health(), {OAUTH_ACCOUNT.id: cooling, KEY_ACCOUNT.id: quarantined})
            await store.delete_account(OAUTH_ACCOUNT.id)
            assert_identical(await store.health(), {KEY_ACCOUNT.id: quarantined})

    asyncio.run(scenario())


def test_client_keys_round_trip_and_a_hash_is_unique(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            await store.put_client_key(CLIENT_KEY)
            await store.put_client_key(PLAIN_KEY)
            assert_identical(await store.client_keys(), [CLIENT_KEY, PLAIN_KEY])

            twin = dataclasses.replace(PLAIN_KEY, id="key-3", key_hash=CLIENT_KEY.key_hash)
            with pytest.raises(ValueError, match="key-3"):
                await store.put_client_key(twin)
            assert_identical(await store.client_keys(), [CLIENT_KEY, PLAIN_KEY])

            assert await store.delete_client_key(CLIENT_KEY.id) is True
            assert await store.delete_client_key(CLIENT_KEY.id) is False
            assert_identical(await store.client_keys(), [PLAIN_KEY])

    asyncio.run(scenario())


def test_settings_round_trip_and_none_removes(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            assert await store.get_setting("admin_password") is None
            await store.put_setting("admin_password", "scrypt$abc")
            await store.put_setting("empty", "")
            assert await store.get_setting("admin_password") == "scrypt$abc"
            assert await store.get_setting("empty") == ""
            await store.put_setting("admin_password", None)
            assert await store.get_setting("admin_password") is None

    asyncio.run(scenario())


def test_usage_round_trips_oldest_first_within_the_range(backend: Backend) -> None:
    failed = usage_row(10.0, key=None, account=None, stream=False, status=429, ttft_ms=None, error="busy")
    rows = [usage_row(30.0), failed, usage_row(20.5, model="qwen3"), usage_row(20.5, dialect="responses")]

    async def scenario() -> None:
        async with backend.store() as store:
            await store.add_usage(rows)
            await store.add_usage([])
            assert_identical(await store.usage(0), [failed, rows[2], rows[3], rows[0]])
            assert_identical(await store.usage(10.0, 30.0), [failed, rows[2], rows[3]])  # until excluded
            assert_identical(await store.usage(10.5), [rows[2], rows[3], rows[0]])  # since included
            assert await store.usage(31.0) == []

            assert await store.prune_usage(20.5) == 1
            assert await store.prune_usage(20.5) == 0
            assert_identical(await store.usage(0), [rows[2], rows[3], rows[0]])

    asyncio.run(scenario())


def test_affinities_since(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            await store.put_affinity("s1", "acc-1", 100.0)
            await store.put_affinity("s2", "acc-2", 200.0)
            await store.put_affinity("s1", "acc-3", 300.0)  # the session moved to another account
            assert await store.affinities(0) == {"s1": "acc-3", "s2": "acc-2"}
            assert await store.affinities(250.0) == {"s1": "acc-3"}
            await store.put_account(KEY_ACCOUNT)
            await store.put_affinity("s3", KEY_ACCOUNT.id, 300.0)
            await store.delete_account(KEY_ACCOUNT.id)
            assert await store.affinities(0) == {"s1": "acc-3", "s2": "acc-2"}

    asyncio.run(scenario())


def test_reasoning_keeps_recency_order(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store() as store:
            assert await store.reasoning(10) == []
            await store.put_reasoning([("a", "first"), ("b", "second"), ("c", "third")])
            await store.put_reasoning([("a", "first again")])  # put again: now the newest
            await store.put_reasoning([])
            assert await store.reasoning(10) == [("b", "second"), ("c", "third"), ("a", "first again")]
            assert await store.reasoning(2) == [("c", "third"), ("a", "first again")]
            assert await store.reasoning(0) == []
            assert await store.reasoning(-1) == []

    asyncio.run(scenario())


def test_response_histories_round_trip_exactly(backend: Backend) -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "hi", "n": 1, "t": 0.5, "whole": 2.0, "ok": True, "none": None},
        {"role": "assistant", "content": [{"type": "output_text", "text": "héllo ✓"}]},
    ]

    async def scenario() -> None:
        async with backend.store() as store:
            assert await store.response_history("resp_1") is None
            await store.put_response_history("resp_1", orjson.dumps(history))
            assert_identical(await store.response_history("resp_1"), history)
            await store.put_response_history("resp_1", orjson.dumps(history[:1]))
            assert_identical(await store.response_history("resp_1"), history[:1])

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Several processes on one file


def test_another_instance_sees_writes_and_generation_tracks_only_config(backend: Backend) -> None:

    async def scenario() -> None:
        async with backend.store() as gateway, backend.store() as cli:
            unchanging: list[Callable[[], Awaitable[object]]] = [
                lambda: cli.put_health(KEY_ACCOUNT.id, AccountHealth(state="cooling", until=9.0)),
                lambda: cli.add_usage([usage_row(1.0)]),
                lambda: cli.prune_usage(2.0),
                lambda: cli.put_affinity("s1", KEY_ACCOUNT.id, 1.0),
                lambda: cli.put_reasoning([("k", "r")]),
                lambda: cli.put_response_history("resp_1", orjson.dumps([{"role": "user"}])),
                lambda: cli.delete_account("nobody"),
                lambda: cli.delete_client_key("nobody"),
                lambda: cli.put_setting("nothing", None),
            ]
            changing: list[Callable[[], Awaitable[object]]] = [
                lambda: cli.put_account(KEY_ACCOUNT),
                lambda: cli.put_account(KEY_ACCOUNT),  # even the same record again
                lambda: cli.put_client_key(PLAIN_KEY),
                lambda: cli.put_setting("theme", "dark"),
                lambda: cli.put_setting("theme", None),
                lambda: cli.delete_client_key(PLAIN_KEY.id),
                lambda: cli.delete_account(KEY_ACCOUNT.id),
            ]
            seen = [await gateway.generation()]
            for index, write in enumerate(changing):
                await write()
                seen.append(await gateway.generation())
                assert seen[-1] != seen[-2], f"change {index} went unnoticed"
            assert len(set(seen)) == len(seen)
            for index, write in enumerate(unchanging):
                await write()
                assert await gateway.generation() == seen[-1], f"write {index} changed the generation"

            await cli.put_account(OAUTH_ACCOUNT)
            await cli.put_client_key(CLIENT_KEY)
            await cli.put_setting("theme", "light")
            assert_identical(await gateway.accounts(), [OAUTH_ACCOUNT])
            assert_identical(await gateway.client_keys(), [CLIENT_KEY])
            assert await gateway.get_setting("theme") == "light"
            assert_identical(await gateway.usage(0), [])  # pruned by the cli above
            assert await gateway.reasoning(5) == [("k", "r")]
            assert await gateway.response_history("resp_1") == [{"role": "user"}]
            assert await gateway.affinities(0) == {"s1": KEY_ACCOUNT.id}

    asyncio.run(scenario())


def test_two_instances_writing_at_once_both_succeed(backend: Backend) -> None:

    async def scenario() -> None:
        async with backend.store() as one, backend.store() as two:
            await one.open()
            await two.open()
            await asyncio.gather(
                *(one.add_usage([usage_row(float(i))]) for i in range(40)),
                *(two.add_usage([usage_row(float(i), key="two")]) for i in range(40)),
            )
            rows = await one.usage(0)
            assert sorted((row.at, row.key) for row in rows) == sorted(
                [(float(i), "laptop") for i in range(40)] + [(float(i), "two") for i in range(40)]
            )

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Bounds


def test_memories_are_bounded_and_pruned_in_batches(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store(max_reasoning=3, max_response_histories=2, prune_every=4) as store:
            # The first insert prunes; then every 4th: in between the tables may run over.
            for i in range(4):
                await store.put_reasoning([(f"k{i}", f"r{i}")])
                await store.put_response_history(f"resp_{i}", orjson.dumps([{"i": i}]))
            assert len(await store.reasoning(100)) == 4
            histories = [await store.response_history(f"resp_{i}") for i in range(4)]
            assert histories == [[{"i": i}] for i in range(4)]

            await store.put_reasoning([("k4", "r4")])
            await store.put_response_history("resp_4", orjson.dumps([{"i": 4}]))
            assert await store.reasoning(100) == [("k2", "r2"), ("k3", "r3"), ("k4", "r4")]
            kept = [await store.response_history(f"resp_{i}") for i in range(5)]
            assert kept == [None, None, None, [{"i": 3}], [{"i": 4}]]

            # A batch counts by its items.
            await store.put_reasoning([(f"b{i}", "x") for i in range(5)])
            assert await store.reasoning(100) == [("b2", "x"), ("b3", "x"), ("b4", "x")]

    asyncio.run(scenario())


def test_old_affinities_are_dropped(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.store(affinity_ttl=100.0, prune_every=1) as store:
            await store.put_affinity("old", "acc-1", 1000.0)
            await store.put_affinity("recent", "acc-1", 1050.0)
            await store.put_affinity("new", "acc-2", 1101.0)
            assert await store.affinities(0) == {"recent": "acc-1", "new": "acc-2"}

    asyncio.run(scenario())


def test_response_histories_are_bounded_by_bytes(backend: Backend) -> None:
    def history(n: int) -> list[dict[str, Any]]:
        return [{"role": "user", "content": f"{n}:" + "y" * 300}]

    size = len(orjson.dumps(history(0)))

    async def scenario() -> None:
        async with backend.store(max_response_history_bytes=1000) as store:
            for n in range(8):
                await store.put_response_history(f"resp_{n}", orjson.dumps(history(n)))
                assert backend.history_bytes() <= 1000
            kept = [await store.response_history(f"resp_{n}") for n in range(8)]
            newest = 1000 // size
            assert kept == [None] * (8 - newest) + [history(n) for n in range(8 - newest, 8)]
            await store.put_response_history("resp_huge", orjson.dumps([{"content": "z" * 2000}]))
            assert await store.response_history("resp_huge") is None
            assert await store.response_history("resp_7") == history(7)

    asyncio.run(scenario())


def test_an_older_file_gains_the_provider_column_and_its_accounts_keep_none(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    db = write_schema_1(path)
    assert "provider" not in [row[1] for row in db.execute("PRAGMA table_info(accounts)")]
    db.commit()
    db.close()
    named = dataclasses.replace(KEY_ACCOUNT, id="acc-ds", provider="deepseek")

    async def scenario() -> None:
        async with opened(path) as store:
            await store.put_account(KEY_ACCOUNT)
            await store.put_account(named)
            stored = {account.id: account for account in await store.accounts()}
            assert stored[KEY_ACCOUNT.id].provider is None
            assert stored["acc-ds"] == named

    asyncio.run(scenario())
