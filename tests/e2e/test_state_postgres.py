"""Gateways on one PostgreSQL database: usage from every instance in one place, accounts added by
the CLI used by the running gateways, and an instance without Redis refused, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
FIRST_KEY, SECOND_KEY = "sk-" + "1" * 32, "sk-" + "2" * 32


def eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.1)


def command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", *args],
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
    )


def labels(gateway: GatewayProcess) -> set[str]:
    return {
        account["label"] for account in httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]
    }


def requests_seen(gateway: GatewayProcess) -> int:
    return int(httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()["totals"]["requests"])


def test_gateways_on_one_database_share_usage_and_accounts(
    start_gateway: Any, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    shared = {"IFLOW2API_DATABASE_URL": postgres_url, "IFLOW2API_REDIS_URL": redis_url}
    with FakeIflow(api_keys=[FIRST_KEY, SECOND_KEY]) as fake:
        one: GatewayProcess = start_gateway(
            iflow_settings(fake, FIRST_KEY), {**shared, "IFLOW2API_INSTANCE_NAME": "one"}
        )
        two: GatewayProcess = start_gateway(None, {**shared, "IFLOW2API_INSTANCE_NAME": "two"})

        assert httpx.post(one.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        # Recorded by one, in the database, so the other's dashboard counts it too.
        eventually(lambda: requests_seen(two) == 1)
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT model, status FROM usage").fetchall() == [("glm-4.7", 200)]
            names = {name for (name,) in conn.execute("SELECT name FROM instances").fetchall()}
        assert names == {"one", "two"}

        # Added by the CLI straight into the database; both running gateways pick it up.
        added = command(
            "accounts", "add", "--database-url", postgres_url, "--label", "second", "--key", SECOND_KEY,
            "--base-url", fake.base_url, env={"IFLOW2API_DATA_DIR": str(tmp_path / "cli-data")},
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        eventually(lambda: "second" in labels(one) and "second" in labels(two))
        assert not (tmp_path / "cli-data").exists()  # nothing went to SQLite
        fake.received.clear()
        assert httpx.post(two.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        assert [r.headers["authorization"][-4:] for r in fake.received] == ["2222"]

        # A third instance without Redis would not share leases with these two: it refuses to start.
        refused = command(
            "serve", "--host", "127.0.0.1", "--port", "0",
            env={"IFLOW2API_DATABASE_URL": postgres_url, "IFLOW2API_DATA_DIR": str(tmp_path / "third")},
        )  # fmt: skip
        assert refused.returncode != 0
        output = refused.stdout + refused.stderr
        assert "without redis_url" in output and "IFLOW2API_REDIS_URL" in output, output
        assert "Traceback" not in output, output
        assert "listening on" not in output, output  # refused before it says it listens
        assert httpx.post(one.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
