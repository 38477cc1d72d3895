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
import pytest

from iflow2api import providers
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
SECOND_KEY = "sk-" + "2" * 32


def cli(home: Path, data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW2API_DATA_DIR": str(data), "IFLOW_HOME": str(home)})
    # No controlling terminal (a session of its own), so a hidden prompt (--key -) reads stdin.
    alone: dict[str, Any] = {"input": stdin, "start_new_session": True}
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        **alone,
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
        assert created.json()["check"]["ok"] is True and len(other.received) == 1  # the check's request
        other.reset()
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


def listed_row(listing: str, label: str) -> str:
    return next(line for line in listing.splitlines() if f" {label} " in line)


def test_accounts_add_with_a_provider(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    url = "http://127.0.0.1:9/v1"
    named = cli(home, data, "accounts", "add", "--provider", "generic", "--label", "named", "--key", "-",
                "--base-url", url, stdin="sk-named-0123456789\n")  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert (
        f"(openai-compatible, generic at {url}," in named.stdout and "sk-named-0123456789" not in named.stdout
    )
    hosted = cli(home, data, "accounts", "add", "--kind", "openai-compatible", "--label", "hosted",
                 "--key", "sk-hosted", "--base-url", url)  # fmt: skip
    assert hosted.returncode == 0, hosted.stderr

    listing = cli(home, data, "accounts", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[:4] == ["ID", "LABEL", "KIND", "PROVIDER"]
    assert "generic" in listed_row(listing.stdout, "named").split()
    assert "(by host)" not in listed_row(listing.stdout, "named")
    assert "generic (by host)" in listed_row(listing.stdout, "hosted")

    unknown = cli(home, data, "accounts", "add", "--provider", "nope", "--label", "x", "--key", "k")
    assert unknown.returncode == 2 and "Invalid value for '--provider': 'nope'" in unknown.stderr
    assert "generic" in unknown.stderr.rsplit("'nope'", 1)[1]  # the choices are named
    no_url = cli(home, data, "accounts", "add", "--provider", "generic", "--label", "x", "--key", "k")
    assert no_url.returncode == 2 and "needs its base URL" in no_url.stderr
    iflow_key = cli(home, data, "accounts", "add", "--kind", "iflow-key", "--provider", "generic",
                    "--label", "x", "--key", "k", "--base-url", url)  # fmt: skip
    assert iflow_key.returncode == 2 and "--provider is for openai-compatible accounts" in iflow_key.stderr
    assert len(cli(home, data, "accounts", "list").stdout.splitlines()) == 3  # none of those was added


def test_a_provider_alone_brings_its_public_base_url(tmp_path: Path) -> None:
    living = [name for name, profile in providers.PROFILES.items() if profile.base_url and name != "iflow"]
    if not living:
        pytest.skip("no provider profile with a public base URL in this build")
    home, data = tmp_path / "home", tmp_path / "data"
    for name in living:  # nothing is sent anywhere (no check): the account is only written to the store
        added = cli(
            home, data, "accounts", "add", "--provider", name, "--label", f"{name} work", "--key", "k",
            "--no-check",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert f"(openai-compatible, {name} at {providers.PROFILES[name].base_url}," in added.stdout
    listing = cli(home, data, "accounts", "list").stdout
    for name in living:
        row = listed_row(listing, f"{name} work")
        assert name in row.split() and "(by host)" not in row


def test_the_page_api_adds_and_shows_providers(start_gateway: Any, fake: FakeIflow) -> None:
    gateway: GatewayProcess = start_gateway(iflow_settings(fake))
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    offered = {p["name"]: p for p in listing["providers"]}
    assert "iflow" not in offered
    assert offered["generic"] == {"name": "generic", "title": "Any OpenAI-compatible server", "base_url": ""}
    for name, profile in offered.items():
        assert (profile["title"], profile["base_url"]) == (providers.PROFILES[name].title,
                                                           providers.PROFILES[name].base_url)  # fmt: skip
    [cli_account] = listing["accounts"]
    assert (cli_account["provider"], cli_account["provider_by_host"]) == ("iflow", False)

    def add(**fields: Any) -> httpx.Response:
        body = {"label": fields.pop("label", "x"), "api_key": "sk-other", **fields}
        return httpx.post(gateway.url + "/api/accounts", json=body, timeout=5)

    unknown = add(provider="nope", base_url="http://127.0.0.1:9/v1")
    assert unknown.status_code == 400
    assert "'provider' must be one of: " in unknown.json()["error"]["message"]
    assert "generic" in unknown.json()["error"]["message"]
    assert add(provider="generic").status_code == 400  # no base URL of its own, and none public
    named = add(label="named", provider="generic", base_url="http://127.0.0.1:9/v1")
    assert named.status_code == 201, named.text
    view = named.json()["account"]
    assert (view["kind"], view["provider"], view["provider_by_host"]) == (
        "openai-compatible",
        "generic",
        False,
    )
    hosted = add(label="hosted", kind="openai-compatible", base_url="http://127.0.0.1:9/v1")
    assert hosted.status_code == 201, hosted.text
    shown = {a["label"]: (a["provider"], a["provider_by_host"]) for a in accounts(gateway)}
    assert shown["named"] == ("generic", False) and shown["hosted"] == ("generic", True)

    health = httpx.get(gateway.url + "/health", timeout=5).json()
    assert health["providers"] == {"iflow": 1, "generic": 2}
    assert (health["provider"], health["provider_by_host"]) == ("iflow", False)
    # The fields monitors already read are still there; both added at a port that refuses fail their check.
    assert health["accounts"] == {"ok": 1, "failing": 2}


def test_the_upstream_provider_names_the_iflow_cli_account(start_gateway: Any) -> None:
    with FakeIflow(mode="openai", models=["m1"]) as upstream:
        files = {"selectedAuthType": "openai-compatible", "baseUrl": upstream.base_url, "apiKey": "sk-up"}
        by_host: GatewayProcess = start_gateway(files)
        named: GatewayProcess = start_gateway(files, {"IFLOW2API_UPSTREAM_PROVIDER": "generic"})
        for gateway, expected in ((by_host, True), (named, False)):
            health = httpx.get(gateway.url + "/health", timeout=5).json()
            assert (health["provider"], health["provider_by_host"]) == ("generic", expected)
            [account] = accounts(gateway)
            assert (account["id"], account["provider"], account["provider_by_host"]) == (
                "iflow-cli",
                "generic",
                expected,
            )
