"""A refreshed login is written with a check-and-write in the state store (SQLite and PostgreSQL),
and ``AccountBook`` never takes another instance's change for its own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from iflow2api.app import Gateway
from iflow2api.auth import oauth
from iflow2api.pool.book import StoredLogin
from iflow2api.settings import load
from iflow2api.state import open_store
from iflow2api.state.records import AccountRecord
from iflow2api.state.store import StateStore


def login(account_id: str, refresh_token: str) -> AccountRecord:
    creds: dict[str, Any] = {"refresh_token": refresh_token, "expiry_date": int((time.time() + 60) * 1000)}
    return AccountRecord(
        id=account_id, label=account_id, kind="iflow-oauth", base_url="", secret="sk-1", oauth=creds
    )


def kept_token(store: StateStore, account_id: str) -> str:
    records = asyncio.run(store.accounts())
    found = next(r for r in records if r.id == account_id)
    assert found.oauth is not None
    return str(found.oauth["refresh_token"])


async def check_and_write(store: StateStore) -> tuple[bool, bool, int]:
    await store.put_account(login("acc-1", "rt-0"))
    before = await store.generation()
    stale = await store.put_login(login("acc-1", "rt-mine"), previous_refresh_token="rt-old")
    fresh = await store.put_login(login("acc-1", "rt-1"), previous_refresh_token="rt-0")
    return stale, fresh, await store.generation() - before


def test_sqlite_writes_a_login_only_over_the_token_it_replaces(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data", database_url="")
    assert asyncio.run(check_and_write(store)) == (False, True, 1)
    assert kept_token(store, "acc-1") == "rt-1"


def test_postgres_writes_a_login_only_over_the_token_it_replaces(postgres_url: str) -> None:
    store = open_store(Path("/nonexistent"), database_url=postgres_url)
    assert asyncio.run(check_and_write(store)) == (False, True, 1)
    assert kept_token(store, "acc-1") == "rt-1"


def gateway(tmp_path: Path) -> Gateway:
    env = {"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")}
    return Gateway(load(env=env, config_path=None))


def test_a_refresh_over_a_login_another_instance_rotated_writes_nothing(tmp_path: Path) -> None:
    app = gateway(tmp_path)

    async def scenario() -> bool:
        await app.store.put_account(login("acc-1", "rt-0"))
        await app.accounts.load()
        # Another instance refreshed it; this one has not reloaded yet (its watch is not running).
        await app.store.put_account(login("acc-1", "rt-theirs"))
        tokens = oauth.Tokens(access_token="at", refresh_token="rt-mine", expires_at=time.time() + 3600)
        saved = await StoredLogin(app.accounts, "acc-1").save_refreshed(
            tokens, None, previous_refresh_token="rt-0"
        )
        record = app.accounts.record("acc-1")
        assert record is not None and record.oauth is not None
        assert record.oauth["refresh_token"] == "rt-theirs"  # and this instance now uses theirs
        return saved

    assert asyncio.run(scenario()) is False
    assert kept_token(app.store, "acc-1") == "rt-theirs"


def test_a_change_by_another_instance_during_a_save_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = gateway(tmp_path)
    put = app.store.put_account

    async def put_and_another_writes(record: AccountRecord) -> None:
        await put(record)
        if record.id == "acc-1":  # right after ours, before the book reads the generation
            await put(login("acc-2", "rt-2"))

    async def scenario() -> None:
        await app.accounts.load()
        monkeypatch.setattr(app.store, "put_account", put_and_another_writes)
        await app.accounts.save(login("acc-1", "rt-0"))
        assert app.accounts.record("acc-2") is not None  # not taken for part of our own write
        assert app.accounts.record("acc-1") is not None

    asyncio.run(scenario())
