"""One word for "ready": ``/health``, ``iflow2api status``, the startup line and the page say
*serving* when an account of any provider can take a request, and with none say in one line how to
connect a provider (the command, the page), iFlow's login only last.

Gateways here are real (``iflow2api serve`` in a subprocess), their one account in a config file
in front of the fake DeepSeek, driven by the real openai SDK and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import TIMEOUT_MS
from tests.e2e.provider_accounts import provider_gateway
from tests.fake_iflow import DEFAULT_KEY, FakeIflow

StartGateway = Callable[..., GatewayProcess]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
COMMAND = "iflow2api accounts add --provider deepseek --label deepseek --key -"
SERVING = "serving — 1 account: deepseek"
NOTHING = "not serving — no provider connected yet"


def status(
    home: Path, data: Path, env: dict[str, str] | None = None, command: str = "status"
) -> subprocess.CompletedProcess[str]:
    """``iflow2api status`` (or another ``command``) as a user runs it, on the gateway's own folders."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    full.update({"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "iflow2api", command], env=full, capture_output=True, text=True, timeout=30
    )


def status_of(folder: Path) -> subprocess.CompletedProcess[str]:
    """``iflow2api status`` on the folders and config file of ``provider_gateway(folder, ...)``."""
    return status(folder / "iflow", folder / "data", {"IFLOW2API_CONFIG": str(folder / "config.toml")})


@pytest.fixture(scope="module")
def deepseek() -> Iterator[FakeIflow]:
    with FakeIflow(mode="deepseek") as upstream:
        yield upstream


@pytest.fixture
def served(tmp_path: Path, deepseek: FakeIflow) -> Iterator[GatewayProcess]:
    """A gateway whose one account, in the config file, is a DeepSeek key (no iFlow login at all)."""
    deepseek.reset()
    with provider_gateway(tmp_path, deepseek, "deepseek") as gateway:
        yield gateway


@pytest.fixture
def empty(start_gateway: StartGateway) -> GatewayProcess:
    """A gateway started from an empty home: no account of any kind."""
    return start_gateway(None, {"IFLOW2API_OPEN_BROWSER": "false"})


def test_health_and_status_say_serving_with_a_config_file_account(
    served: GatewayProcess, deepseek: FakeIflow, tmp_path: Path
) -> None:
    with openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content  # it does serve, so "serving" is the truth

    health = httpx.get(served.url + "/health", timeout=5).json()
    assert health["serving"] is True
    assert (health["serving_accounts"], health["serving_providers"]) == (1, ["deepseek"])
    assert health["summary"] == SERVING
    # The fields monitors already read are still there, still about the iFlow CLI's own files.
    assert health["status"] == "ok" and health["logged_in"] is False and health["login"] == "no-login"
    assert health["accounts"] == {"ok": 1} and health["providers"] == {"deepseek": 1}

    first = served.log().splitlines()[0]
    assert first.endswith("/v1; " + SERVING), first
    assert "no provider connected" not in served.log()

    result = status_of(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split(None, 1) == ["Status", SERVING]
    assert "Next step" not in result.stdout


def test_nothing_connected_says_what_to_do_in_one_line(empty: GatewayProcess) -> None:
    health = httpx.get(empty.url + "/health", timeout=5).json()
    assert (health["serving"], health["serving_accounts"], health["serving_providers"]) == (False, 0, [])
    assert health["summary"] == NOTHING and health["logged_in"] is False

    log = empty.log()
    assert "; " + NOTHING in log
    advice = [line for line in log.splitlines() if COMMAND in line]
    assert len(advice) == 1, log
    line = advice[0]
    assert line.startswith("no provider connected yet: " + COMMAND)
    assert f"open {empty.url}/ " in line
    # iFlow's login comes last, and says that the service is gone.
    assert line.index("iflow2api login") > line.index(f"{empty.url}/") > line.index(COMMAND)
    assert "shut down on 2026-04-17" in line
    assert "Not logged in yet" not in log

    result = status(empty.iflow_home, empty.iflow_home.parent / "data-0")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split(None, 1) == ["Status", NOTHING]
    assert [line for line in lines if COMMAND in line] == [lines[1]]
    assert lines[1].startswith("Next step")

    models = status(empty.iflow_home, empty.iflow_home.parent / "data-0", command="models")
    assert "not logged in" not in models.stderr
    assert "shut down on 2026-04-17; no provider connected yet: " + COMMAND in models.stderr


def test_an_account_added_on_the_page_makes_it_serve(empty: GatewayProcess, deepseek: FakeIflow) -> None:
    deepseek.reset()
    account = {"kind": "openai-compatible", "provider": "deepseek", "label": "ds", "api_key": DEFAULT_KEY,
               "base_url": deepseek.base_url}  # fmt: skip
    httpx.post(empty.url + "/api/accounts", json=account, timeout=10).raise_for_status()
    health = httpx.get(empty.url + "/health", timeout=5).json()
    assert (health["serving"], health["summary"]) == (True, SERVING)
    page_status = httpx.get(empty.url + "/api/status", timeout=5).json()
    assert (page_status["serving"], page_status["summary"]) == (True, SERVING)
    assert page_status["logged_in"] is False


def test_a_switched_off_account_is_connected_but_not_serving(served: GatewayProcess, tmp_path: Path) -> None:
    account_id = httpx.get(served.url + "/api/accounts", timeout=5).json()["accounts"][0]["id"]
    action = {"id": account_id, "action": "disable"}
    httpx.post(served.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()
    health = httpx.get(served.url + "/health", timeout=5).json()
    assert health["serving"] is False
    assert health["summary"] == "not serving — none of its 1 account can serve now"

    result = status_of(tmp_path)
    assert result.returncode == 0  # an account is there, switched off: `accounts list` says why
    assert "none of its 1 account can serve now" in result.stdout
    assert "accounts list" in result.stdout and COMMAND not in result.stdout


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[Any] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(error))
    try:
        yield page
    finally:
        context.close()
    assert not errors


def test_the_page_says_serving_with_an_account(page: Page, served: GatewayProcess) -> None:
    page.goto(served.url + "/")
    expect(page.locator("#badge")).to_have_text("serving")
    expect(page.locator("#badge")).to_have_attribute("title", SERVING)
    expect(page.locator("#account")).to_contain_text(SERVING)
    expect(page.locator("#connect")).to_be_hidden()


def test_the_page_leads_with_connect_a_provider(page: Page, empty: GatewayProcess) -> None:
    page.goto(empty.url + "/")
    expect(page.locator("#badge")).to_have_text("not serving")
    connect = page.locator("#connect")
    expect(connect).to_be_visible()
    expect(connect.locator("h2")).to_have_text("Connect a provider")
    # It comes first in the overview, above the account card.
    first = page.evaluate("document.querySelector('#view-overview > *').id")
    assert first == "connect"
    choices = connect.locator("button[data-provider]")
    names = [choices.nth(n).get_attribute("data-provider") for n in range(choices.count())]
    assert {"deepseek", "moonshot", "zhipu", "dashscope"} <= set(names)
    assert names[-2:] == ["generic", "iflow-login"]  # any other server, then iFlow, last
    expect(choices.last).to_have_attribute("title", "iFlow: the original service, shut down on 2026-04-17")
    expect(connect).to_contain_text("shut down on 2026-04-17")
    expect(page.locator("#account")).to_contain_text(NOTHING)

    connect.locator("button[data-provider=deepseek]").click()
    expect(page).to_have_url(empty.url + "/#accounts")
    expect(page.locator("#account-kind")).to_have_value("openai-compatible")
    expect(page.locator("#account-provider")).to_have_value("deepseek")
    expect(page.locator("#account-base-url")).to_have_value("https://api.deepseek.com")
    expect(page.locator("#account-label")).to_have_value("deepseek")
    expect(page.locator("#account-key")).to_be_focused()

    page.go_back()
    page.locator("#connect button[data-provider=iflow-login]").click()
    expect(page.locator("#login")).to_be_focused()
