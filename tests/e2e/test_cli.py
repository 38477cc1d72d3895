"""The ``iflow2api`` command as a user runs it: status, models, refusing unsafe listening, keys."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import iflow_settings, write_settings
from tests.fake_iflow import DEFAULT_KEY, FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    full_env.update({"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(home / "data"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", *args], env=full_env, capture_output=True, text=True, timeout=30
    )


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "iflow2api"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "iflow2api" in result.stdout


def test_status_masks_the_key(tmp_path: Path) -> None:
    creds = {
        "access_token": "access-0123456789",
        "refresh_token": "refresh-0123456789",
        "expiry_date": int((time.time() + 3 * 86400) * 1000),
        "apiKey": DEFAULT_KEY,
        "email": "me@example.com",
    }
    write_settings(tmp_path, {"selectedAuthType": "oauth-iflow", "baseUrl": "https://apis.iflow.cn/v1"})
    (tmp_path / "oauth_creds.json").write_text(json.dumps(creds))
    result = run(tmp_path, "status")
    assert result.returncode == 0, result.stderr
    assert "oauth-iflow, me@example.com" in result.stdout
    assert "https://apis.iflow.cn/v1" in result.stdout
    assert "(in 2 d" in result.stdout or "(in 3 d" in result.stdout
    for secret in (DEFAULT_KEY, "access-0123456789", "refresh-0123456789"):
        assert secret not in result.stdout + result.stderr
    assert DEFAULT_KEY[:4] in result.stdout


def test_status_without_credentials_exits_1(tmp_path: Path) -> None:
    result = run(tmp_path, "status")
    assert result.returncode == 1
    assert "Logged in" in result.stdout and "no" in result.stdout


def test_models_lists_the_catalogue(tmp_path: Path) -> None:
    result = run(tmp_path, "models")
    assert result.returncode == 0
    for model in ("glm-4.7", "iFlow-ROME-30BA3B", "deepseek-v3.2-chat", "kimi-k2.5", "minimax-m2.5", "glm-5"):
        assert model in result.stdout
    assert "200,000" in result.stdout  # glm-4.7's context window


def test_models_from_an_openai_compatible_upstream(tmp_path: Path) -> None:
    with FakeIflow(mode="openai", models=["alpha", "beta"]) as upstream:
        settings = {
            "selectedAuthType": "openai-compatible",
            "baseUrl": upstream.base_url,
            "apiKey": DEFAULT_KEY,
        }
        write_settings(tmp_path, settings)
        result = run(tmp_path, "models", env={"NO_PROXY": "127.0.0.1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta"]


def test_status_and_accounts_list_show_the_provider(tmp_path: Path) -> None:
    settings = {"selectedAuthType": "openai-compatible", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-x"}
    write_settings(tmp_path, settings)
    by_host = run(tmp_path, "status")
    assert by_host.returncode == 0, by_host.stderr
    assert re.search(r"^Provider +generic \(by host\)$", by_host.stdout, re.MULTILINE), by_host.stdout
    named = run(tmp_path, "status", "--upstream-provider", "generic")
    assert re.search(r"^Provider +generic$", named.stdout, re.MULTILINE), named.stdout
    listed = run(tmp_path, "accounts", "list", env={"IFLOW2API_UPSTREAM_PROVIDER": "generic"})
    [row] = [line for line in listed.stdout.splitlines() if line.startswith("iflow-cli ")]
    assert "generic" in row.split() and "(by host)" not in row


def test_a_bad_upstream_provider_names_itself(tmp_path: Path) -> None:
    result = run(tmp_path, "status", env={"IFLOW2API_UPSTREAM_PROVIDER": "nope"})
    assert result.returncode == 2
    assert "upstream_provider (IFLOW2API_UPSTREAM_PROVIDER)" in result.stderr
    assert "unknown provider 'nope'; one of:" in result.stderr and "generic" in result.stderr


def test_listening_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr and "iflow2api keys create" in result.stderr


def test_bad_setting_names_itself(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", env={"IFLOW2API_PORT": "eighty"})
    assert result.returncode == 2
    assert "port (IFLOW2API_PORT)" in result.stderr


def test_client_api_keys(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_API_KEYS": "client-key-1,client-key-2"})
    url = gateway.url + "/v1/chat/completions"
    refused = httpx.post(url, json=CHAT)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(url, json=CHAT, headers={"authorization": "Bearer wrong-key-000"}).status_code == 401
    assert httpx.post(url, json=CHAT, headers={"authorization": "Bearer client-key-2"}).status_code == 200
    assert httpx.post(url, json=CHAT, headers={"x-api-key": "client-key-1"}).status_code == 200
    assert httpx.get(gateway.url + "/health").status_code == 200  # health needs no key
    assert "client-key-1" not in gateway.log_matching("POST /v1/chat/completions 200 ", count=2)


def test_cors_preflight(gateway: Any) -> None:
    response = httpx.options(
        gateway.url + "/v1/chat/completions",
        headers={"origin": "http://localhost:3000", "access-control-request-method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]


def test_405_names_the_allowed_methods(gateway: Any) -> None:
    response = httpx.get(gateway.url + "/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
