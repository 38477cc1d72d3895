"""Adding and removing accounts while the gateway runs: from the CLI, the page's API and a second login."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
SECOND_KEY = "sk-" + "2" * 32


def cli(home: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW2API_DATA_DIR": str(data), "IFLOW_HOME": str(home)})
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", *args], env=env, capture_output=True, text=True, timeout=30
    )


def accounts(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return list(httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"])


def eventually(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.1)


def test_accounts_added_from_the_cli_are_used_at_once(start_gateway: Any, tmp_path: Path) -> None:
    with FakeIflow(api_keys=["sk-" + "1" * 32, SECOND_KEY]) as fake:
        home, data = tmp_path / "home", tmp_path / "data"
        write_settings(home, iflow_settings(fake, "sk-" + "1" * 32))
        gateway: GatewayProcess = start_gateway(
            None, {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data)}
        )
        added = cli(
            home,
            data,
            "accounts",
            "add",
            "--label",
            "second",
            "--key",
            SECOND_KEY,
            "--base-url",
            fake.base_url,
        )
        assert added.returncode == 0, added.stderr
        assert SECOND_KEY not in added.stdout
        account_id = added.stdout.split(" as ")[1].split()[0]
        eventually(lambda: len(accounts(gateway)) == 2)
        for _ in range(4):
            assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        used = {r.headers["authorization"][-4:] for r in fake.received}
        assert used == {"1111", "2222"}

        listed = cli(home, data, "accounts", "list")
        assert "second" in listed.stdout and "iflow-cli" in listed.stdout and SECOND_KEY not in listed.stdout

        assert cli(home, data, "accounts", "disable", account_id).returncode == 0
        eventually(lambda: {a["id"]: a["state"] for a in accounts(gateway)}[account_id] == "disabled")
        fake.reset()
        for _ in range(3):
            assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        assert {r.headers["authorization"][-4:] for r in fake.received} == {"1111"}

        refused = cli(home, data, "accounts", "remove", "iflow-cli")
        assert refused.returncode != 0 and "disable it" in refused.stderr
        assert cli(home, data, "accounts", "remove", account_id).returncode == 0
        eventually(lambda: [a["id"] for a in accounts(gateway)] == ["iflow-cli"])


def test_an_openai_compatible_account_from_the_page_serves_its_models(
    start_gateway: Any, tmp_path: Path
) -> None:
    with (
        FakeIflow() as iflow,
        FakeIflow(mode="openai", api_keys=["sk-openai-0000"], models=["deepseek-chat"]) as other,
    ):
        gateway: GatewayProcess = start_gateway(iflow_settings(iflow))
        created = httpx.post(
            gateway.url + "/api/accounts",
            json={
                "kind": "openai-compatible",
                "label": "deepseek",
                "base_url": other.base_url,
                "api_key": "sk-openai-0000",
                "models": ["deepseek-chat"],
            },
            timeout=5,
        )
        assert created.status_code == 201, created.text
        assert created.json()["account"]["secret"] != "sk-openai-0000"
        models = {m["id"] for m in httpx.get(gateway.url + "/v1/models", timeout=5).json()["data"]}
        assert {"deepseek-chat", "glm-4.7"} <= models
        # Each model goes to the account that serves it.
        reply = httpx.post(
            gateway.url + "/v1/chat/completions", json={**CHAT, "model": "deepseek-chat"}, timeout=10
        )
        assert reply.status_code == 200, reply.text
        assert len(other.received) == 1 and len(iflow.received) == 0
        assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        assert len(other.received) == 1 and len(iflow.received) == 1
        bad = httpx.post(
            gateway.url + "/api/accounts", json={"kind": "openai-compatible", "label": "x"}, timeout=5
        )
        assert bad.status_code == 400


def test_a_second_login_becomes_another_account(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    fake.oauth.auto_consent = True
    home, data = tmp_path / "home", tmp_path / "data"
    env = {
        "IFLOW_HOME": str(home),
        "IFLOW2API_DATA_DIR": str(data),
        "IFLOW2API_OAUTH_BASE_URL": fake.oauth_base_url,
        "IFLOW2API_UPSTREAM_BASE_URL": fake.base_url,
        "IFLOW2API_OPEN_BROWSER": "false",
    }
    first = fake.oauth.issue_login("first@example.com")
    write_settings(home, {"selectedAuthType": "oauth-iflow", "apiKey": first["api_key"]})
    (home / "oauth_creds.json").write_text(
        json.dumps({**first, "apiKey": first["api_key"], "userId": first["user_id"], "email": first["email"]})
    )
    gateway: GatewayProcess = start_gateway(None, env)
    fake.oauth.email = "second@example.com"
    login = httpx.post(gateway.url + "/api/login", json={"mode": "browser"}, timeout=5).json()
    # The fake consents at once and redirects to the gateway's callback, which finishes the login.
    finished = httpx.get(login["url"], follow_redirects=True, timeout=20)
    assert finished.status_code == 200
    listed = {a["label"]: a for a in accounts(gateway)}
    assert set(listed) == {"first@example.com", "second@example.com"}
    assert listed["second@example.com"]["source"] == "store"
    assert listed["second@example.com"]["login"]["state"] in ("ok", "refreshing")
    # The iFlow CLI's own login is untouched.
    assert json.loads((home / "oauth_creds.json").read_text())["email"] == "first@example.com"
    for _ in range(2):
        assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
    keys = {r.headers["authorization"].removeprefix("Bearer ") for r in fake.received}
    assert len(keys) == 2


def test_model_aliases_from_the_config_file(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[model_aliases]\n"gpt-4o" = "glm-4.7"\n"gpt-4*-mini" = "qwen3-coder-plus"\n')
    gateway: GatewayProcess = start_gateway(iflow_settings(fake), {"IFLOW2API_CONFIG": str(config)})
    models = {m["id"]: m for m in httpx.get(gateway.url + "/v1/models", timeout=5).json()["data"]}
    assert models["gpt-4o"]["alias_for"] == "glm-4.7"
    assert "gpt-4*-mini" not in models  # a pattern names no model to pick from a list
    assert httpx.get(gateway.url + "/v1/models/gpt-4o", timeout=5).status_code == 200
    for asked, sent in (("gpt-4o", "glm-4.7"), ("gpt-4.1-mini", "qwen3-coder-plus")):
        reply = httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": asked}, timeout=10)
        assert reply.status_code == 200, reply.text
        assert fake.received[-1].body is not None and fake.received[-1].body["model"] == sent
    usage = httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()
    assert {row["name"] for row in usage["per_model"]} == {"glm-4.7", "qwen3-coder-plus"}
