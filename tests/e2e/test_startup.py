"""Starting the real ``iflow2api serve`` over what a crash or a bad disk left behind."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iflow2api import clientkeys
from iflow2api.state import STATE_FILE, UsageRow, open_store
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow

PAGE = 4096


def _serve(home: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data_dir), "NO_PROXY": "127.0.0.1"})
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _fill(data_dir: Path) -> Path:
    """A real state database with keys and a day of usage rows in it, closed."""

    async def fill() -> None:
        store = open_store(data_dir)
        for n in range(40):
            await clientkeys.create(store, f"key-{n}")
        now = time.time()
        row = UsageRow(now, None, "acct", "glm-4.7", "chat", False, 200, 1, 1, 0, 1.0, None, 1, None)
        await store.add_usage([row] * 400)
        await store.close()

    asyncio.run(fill())
    return data_dir / STATE_FILE


def _root_page(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


def _overwrite_page(path: Path, page: int) -> None:
    """Garbage over one page (numbered from 1, as SQLite does), as a failing disk might leave it."""
    with open(path, "r+b") as file:
        file.seek((page - 1) * PAGE)
        file.write(bytes(range(256)) * (PAGE // 256))


@pytest.mark.parametrize("table", ["client_keys", "usage"])
def test_a_damaged_database_stops_the_start_with_one_line_naming_it(
    tmp_path: Path, fake: FakeIflow, table: str
) -> None:
    # client_keys is read before the server starts; usage only by the gateway's own start-up.
    home = tmp_path / "home"
    write_settings(home, iflow_settings(fake))
    path = _fill(tmp_path / "data")
    _overwrite_page(path, _root_page(path, table))

    result = _serve(home, tmp_path / "data")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    naming = [line for line in output.splitlines() if str(path) in line]
    assert naming, output
    assert any("malformed" in line for line in naming), output


def test_our_stale_temporary_files_are_removed_at_start_and_nothing_else(
    tmp_path: Path, fake: FakeIflow
) -> None:
    home = tmp_path / "home"
    write_settings(home, iflow_settings(fake))
    hour_ago = time.time() - 3600
    ours = [home / ".settings.json.0123456789ab.tmp", home / ".oauth_creds.json.a1b2c3d4e5f6.tmp"]
    fresh = home / ".settings.json.ffffffffffff.tmp"  # a write in progress right now: not stale
    theirs = [
        home / ".settings.json.tmp",
        home / "settings.json.0123456789ab.tmp",
        home / ".settings.json.0123456789ab.tmp.bak",
        home / ".other.json.0123456789ab.tmp",
        home / ".settings.json.XYZ.tmp",
    ]
    for path in [*ours, fresh, *theirs]:
        path.write_text('{"apiKey": "sk-secret"}')
        os.chmod(path, 0o600)
    for path in [*ours, *theirs]:
        os.utime(path, (hour_ago, hour_ago))

    gateway = GatewayProcess(home, tmp_path / "data")
    try:
        gateway.wait_for_health()
        assert [path for path in ours if path.exists()] == []
        assert fresh.exists()
        assert all(path.exists() for path in theirs)
        assert (home / "settings.json").exists()
    finally:
        gateway.stop()
