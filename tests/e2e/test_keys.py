"""Named client keys, made with the CLI: accepted, refused, limited, revoked; the page behind an admin."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW2API_DATA_DIR": str(data_dir), "IFLOW_HOME": str(data_dir / "no-iflow")})
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def create_key(data_dir: Path, name: str, *options: str) -> str:
    result = cli(data_dir, "keys", "create", name, *options)
    assert result.returncode == 0, result.stderr
    keys = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("sk-i2a-")]
    assert len(keys) == 1, result.stdout
    return keys[0]


def start_with_keys(tmp_path: Path, fake: FakeIflow, env: dict[str, str] | None = None) -> tuple[Any, Path]:
    home, data = tmp_path / "home", tmp_path / "data"
    write_settings(home, iflow_settings(fake))
    return {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data), **(env or {})}, data


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_are_accepted_refused_and_limited(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    env, data = start_with_keys(tmp_path, fake)
    alice = create_key(data, "alice", "--rpm", "3")
    bob = create_key(data, "bob", "--models", "glm-*")
    boss = create_key(data, "boss", "--admin")
    listed = cli(data, "keys", "list")
    assert "alice" in listed.stdout and alice not in listed.stdout and alice[:11] in listed.stdout
    gateway: GatewayProcess = start_gateway(None, env)
    url = gateway.url + "/v1/chat/completions"

    missing = httpx.post(url, json=CHAT, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(url, json=CHAT, headers=bearer("sk-i2a-" + "x" * 43), timeout=10).status_code == 401
    # The key is stored hashed: the database file does not hold it.
    assert alice.encode() not in (data / "state.sqlite3").read_bytes()

    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
    for _ in range(3):
        assert sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    limited = httpx.post(url, json=CHAT, headers=bearer(alice), timeout=10)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "key_rate_limit_exceeded"
    assert 1 <= int(limited.headers["retry-after"]) <= 60

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=bob, max_retries=0)  # sent as x-api-key
    message = claude.messages.create(
        model="glm-4.7", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content
    other_model = httpx.post(url, json={**CHAT, "model": "qwen3-coder-plus"}, headers=bearer(bob), timeout=10)
    assert other_model.status_code == 403
    assert other_model.json()["error"]["code"] == "model_not_allowed"

    # The page's API is for admins only.
    status = httpx.get(gateway.url + "/api/status", timeout=5).json()
    assert status["admin"] == {"required": True, "signed_in": False, "first_password": True}
    assert "logged_in" not in status and "base_url" not in status
    assert httpx.get(gateway.url + "/api/accounts", timeout=5).status_code == 401
    assert httpx.get(gateway.url + "/api/accounts", headers=bearer(alice), timeout=5).status_code == 401
    assert httpx.get(gateway.url + "/metrics", headers=bearer(bob), timeout=5).status_code == 401
    usage = httpx.get(gateway.url + "/api/usage?days=1", headers=bearer(boss), timeout=5).json()
    by_key = {row["name"]: row["requests"] for row in usage["per_key"]}
    assert by_key == {"alice": 4, "bob": 2}  # the refused ones too, under their key's name
    keys = httpx.get(gateway.url + "/api/keys", headers=bearer(boss), timeout=5).json()["keys"]
    assert {k["name"]: k["requests_today"] for k in keys} == {"alice": 4, "bob": 2, "boss": 0}
    assert all(alice not in str(k) for k in keys)

    # Revoked from another process while the gateway runs: refused within a second or two.
    assert cli(data, "keys", "revoke", "alice").returncode == 0
    deadline = time.monotonic() + 5
    while httpx.post(url, json=CHAT, headers=bearer(alice), timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    assert httpx.post(url, json=CHAT, headers=bearer(bob), timeout=10).status_code == 200
    assert alice not in gateway.log() and boss not in gateway.log()


def test_tokens_per_day_limit(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    env, data = start_with_keys(tmp_path, fake)
    key = create_key(data, "small", "--tokens-per-day", "30")
    gateway: GatewayProcess = start_gateway(None, env)
    url = gateway.url + "/v1/chat/completions"
    # The fake answers with 12 + 5 tokens: 17, then 34, after which the day's 30 are used up.
    assert httpx.post(url, json=CHAT, headers=bearer(key), timeout=10).status_code == 200
    assert httpx.post(url, json=CHAT, headers=bearer(key), timeout=10).status_code == 200
    refused = httpx.post(url, json=CHAT, headers=bearer(key), timeout=10)
    assert refused.status_code == 429
    assert "30 tokens for today" in refused.json()["error"]["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 86_400


def test_the_page_opens_with_the_admin_password(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    env, data = start_with_keys(tmp_path, fake)
    create_key(data, "someone")
    result = cli(data, "admin-password", "--password", "correct horse battery")
    assert result.returncode == 0, result.stderr
    gateway: GatewayProcess = start_gateway(None, env)
    with httpx.Client(base_url=gateway.url, timeout=5) as browser:
        assert browser.post("/api/session", json={"password": "wrong password!"}).status_code == 401
        assert browser.get("/api/accounts").status_code == 401
        signed_in = browser.post("/api/session", json={"password": "correct horse battery"})
        assert signed_in.status_code == 200
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/status").json()["admin"] == {
            "required": True,
            "signed_in": True,
            "first_password": False,
        }
        accounts = browser.get("/api/accounts").json()["accounts"]
        assert [a["id"] for a in accounts] == ["iflow-cli"]
        created = browser.post("/api/keys", json={"name": "from-the-page", "rpm": 5})
        assert created.status_code == 201
        new_key = created.json()["key"]
        assert new_key.startswith("sk-i2a-") and created.json()["record"]["rpm"] == 5
        assert new_key not in browser.get("/api/keys").text  # shown once, never again
        chat = httpx.post(
            gateway.url + "/v1/chat/completions", json=CHAT, headers=bearer(new_key), timeout=10
        )
        assert chat.status_code == 200
        assert browser.post("/api/session/end", json={}).status_code == 200
        assert browser.get("/api/accounts").status_code == 401
