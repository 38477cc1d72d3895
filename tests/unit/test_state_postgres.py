"""What only the PostgreSQL store does: concurrent first starts, the instances it refuses, batched
usage, and errors that name the database without its password. (What it shares with SQLite is in
``test_state_sqlite.py``, run against both.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from iflow2api.state import StateFileError, UsageRow, open_store
from iflow2api.state.postgres import PostgresStore
from iflow2api.state.postgres_schema import SCHEMA_VERSION, Instance
from tests.pg_server import PostgresServer
from tests.redis_server import free_port


def instance(pid: int, *, coordinated: bool = False) -> Instance:
    return Instance(name=f"gw-{pid}", host="host-a", pid=pid, coordinated=coordinated)


def rows_of(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_open_store_picks_postgres_by_url_and_sqlite_without(postgres_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shared = open_store(tmp_path / "unused", database_url=postgres_url)
        local = open_store(tmp_path / "data")
        try:
            assert isinstance(shared, PostgresStore)
            await shared.put_setting("theme", "dark")
            assert await local.get_setting("theme") is None
        finally:
            await shared.close()
            await local.close()

    asyncio.run(scenario())
    assert not (tmp_path / "unused").exists()  # PostgreSQL needs no data folder
    assert rows_of(postgres_url, "SELECT value FROM settings WHERE name = 'theme'") == [("dark",)]


def test_several_stores_starting_at_once_create_the_schema_once(postgres_url: str) -> None:
    async def scenario() -> None:
        stores = [PostgresStore(postgres_url) for _ in range(6)]
        try:
            await asyncio.gather(*(store.open() for store in stores))
            await stores[0].put_setting("a", "1")
            assert [await store.get_setting("a") for store in stores] == ["1"] * 6
        finally:
            await asyncio.gather(*(store.close() for store in stores))
        again = PostgresStore(postgres_url)  # and an existing schema is left as it is
        try:
            assert await again.get_setting("a") == "1"
        finally:
            await again.close()

    asyncio.run(scenario())
    assert rows_of(postgres_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert rows_of(postgres_url, "SELECT value FROM meta") == [(1,)]  # one 'generation' row, bumped once


def test_a_database_of_a_newer_schema_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            with pytest.raises(StateFileError, match=r"schema version 99.*newer iflow2api"):
                await store.open()
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_batch_of_usage_is_one_statement(postgres_url: str) -> None:
    # Far more values than one statement may have parameters (65535): an INSERT of VALUES lists
    # would need several statements; the arrays need one, in one transaction (one xmin).
    rows = [
        UsageRow(at=float(i), key=None if i % 3 else "k", account="a", model="m", dialect="chat",
                 stream=bool(i % 2), status=200, prompt_tokens=i, ttft_ms=None if i % 5 else 1.5)
        for i in range(5000)
    ]  # fmt: skip

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.add_usage(rows)
            assert await store.usage(0) == rows
        finally:
            await store.close()

    asyncio.run(scenario())
    assert rows_of(postgres_url, "SELECT count(*), count(DISTINCT xmin::text) FROM usage") == [(5000, 1)]


def test_an_unreachable_server_is_one_line_naming_the_url_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://app:hunter2secret@127.0.0.1:{port}/iflow?password=other"

    async def scenario() -> str:
        store = open_store(tmp_path, database_url=url)
        try:
            with pytest.raises(StateFileError) as failed:
                await store.open()
            with pytest.raises(StateFileError):  # still reported, not half open
                await store.accounts()
            return str(failed.value)
        finally:
            await store.close()

    message = asyncio.run(scenario())
    assert message.startswith(
        f"cannot connect to the state database postgresql://app@127.0.0.1:{port}/iflow: "
    )
    assert "hunter2secret" not in message and "other" not in message
    assert "\n" not in message


def test_a_second_instance_without_redis_is_refused(postgres_url: str) -> None:
    async def scenario() -> None:
        first = PostgresStore(postgres_url, instance=instance(1))
        second = PostgresStore(postgres_url, instance=instance(2))
        coordinated = PostgresStore(postgres_url, instance=instance(3, coordinated=True))
        cli = PostgresStore(postgres_url)  # not an instance: never refused, never registered
        try:
            await first.open()
            with pytest.raises(StateFileError, match="this instance runs without redis_url") as refused:
                await second.open()
            assert "gw-1 (host host-a, pid 1" in str(refused.value)
            assert "IFLOW2API_REDIS_URL" in str(refused.value)
            # With Redis itself, it still cannot share the database with one that has none.
            with pytest.raises(StateFileError, match="gw-1 runs without redis_url"):
                await coordinated.open()
            await cli.put_setting("x", "y")
            await first.close()  # a clean stop leaves no row behind
            again = PostgresStore(postgres_url, instance=instance(2))
            try:
                await again.open()
            finally:
                await again.close()
        finally:
            for store in (first, second, coordinated, cli):
                await store.close()

    asyncio.run(scenario())
    assert rows_of(postgres_url, "SELECT count(*) FROM instances") == [(0,)]


def test_instances_with_redis_share_the_database_and_a_stale_one_holds_nobody_off(postgres_url: str) -> None:
    async def scenario() -> None:
        one = PostgresStore(postgres_url, instance=instance(1, coordinated=True), heartbeat_every=0.1)
        two = PostgresStore(postgres_url, instance=instance(2, coordinated=True))
        try:
            await one.open()
            await two.open()
            names = rows_of(postgres_url, "SELECT name FROM instances ORDER BY pid")
            assert names == [("gw-1",), ("gw-2",)]
            first_seen = rows_of(postgres_url, "SELECT seen_at FROM instances WHERE pid = 1")
            await asyncio.sleep(0.5)
            assert rows_of(postgres_url, "SELECT seen_at FROM instances WHERE pid = 1") > first_seen
        finally:
            await one.close()
            await two.close()
        # An instance that died without a word (its row left, no longer refreshed) stops counting.
        with psycopg.connect(postgres_url) as conn:
            conn.execute(
                "INSERT INTO instances (host, pid, name, coordinated, seen_at) "
                "VALUES ('gone', 9, 'killed', false, now() - interval '1 minute')"
            )
        alone = PostgresStore(postgres_url, instance=instance(4))
        try:
            await alone.open()
        finally:
            await alone.close()

    asyncio.run(scenario())


def test_two_uncoordinated_instances_starting_at_once_cannot_both_start(postgres_url: str) -> None:
    async def scenario() -> list[BaseException | None]:
        stores = [PostgresStore(postgres_url, instance=instance(pid)) for pid in range(1, 5)]
        try:
            return list(await asyncio.gather(*(store.open() for store in stores), return_exceptions=True))
        finally:
            for store in stores:
                await store.close()

    outcomes = asyncio.run(scenario())
    assert outcomes.count(None) == 1
    assert all(isinstance(outcome, StateFileError) for outcome in outcomes if outcome is not None)


def test_a_restarted_server_is_an_error_while_down_and_used_again_after(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    async def scenario() -> None:
        store = PostgresStore(postgres_url, connect_timeout=1.0)
        try:
            await store.put_setting("before", "1")
            postgres_server.pause()
            try:
                with pytest.raises(psycopg.OperationalError):  # within the timeout, not a hang
                    await store.get_setting("before")
            finally:
                postgres_server.start()
            # The pool replaces the connections the restart broke, by itself (its reconnection backs
            # off, so the first calls may still time out): no new store is needed.
            deadline = time.monotonic() + 20
            while True:
                try:
                    await store.put_setting("after", "2")
                    break
                except psycopg.OperationalError:
                    assert time.monotonic() < deadline, "the store never came back"
            assert [await store.get_setting("before"), await store.get_setting("after")] == ["1", "2"]
        finally:
            await store.close()

    asyncio.run(scenario())
