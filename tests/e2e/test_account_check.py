"""Test before trust: adding an OpenAI-compatible account checks it, ``accounts test`` and the page's
Test button check it again, and a failed check shows the account as failing, never as ok.

Every upstream is a fake on loopback: a good key, a wrong one, a base URL without its ``/v1``, a
host that never answers (``Hang``), spent credit (DeepSeek's 402).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import watched_page
from tests.e2e.test_accounts import accounts, cli, eventually, listed_row
from tests.fake_iflow import FakeIflow, Hang, HttpError

GOOD = "sk-good-0123456789"
MODELS = ["fake-small", "fake-large"]
#: Seconds a silent host is given: the check must give up within it (setting first_byte_timeout).
SILENCE = "1"


@pytest.fixture
def host() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", api_keys=[GOOD], models=MODELS) as fake:
        yield fake


def add(home: Path, data: Path, label: str, base_url: str, key: str = GOOD, *extra: str) -> Any:
    return cli(home, data, "accounts", "add", "--provider", "generic", "--label", label,
               "--base-url", base_url, "--key", key, *extra)  # fmt: skip


def test_a_good_key_works_with_its_latency_and_model_count(host: FakeIflow, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    added = add(home, data, "good", host.base_url)
    assert added.returncode == 0, added.stderr
    assert "Check: works: fake-small answered in " in added.stdout and "2 models listed" in added.stdout
    # One token asked for, of the first model its /models listed, with the key given.
    [request] = host.received
    assert request.body is not None and request.body["model"] == "fake-small"
    assert request.body["max_tokens"] == 1 and request.headers["authorization"] == f"Bearer {GOOD}"
    assert listed_row(cli(home, data, "accounts", "list").stdout, "good").split()[6] == "ok"

    tested = cli(home, data, "accounts", "test", "good")
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.startswith("good (acc-") and ": works: fake-small answered in " in tested.stdout


def test_a_wrong_key_is_saved_as_failing(host: FakeIflow, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    added = add(home, data, "wrong", host.base_url, "sk-wrong-0123456789")
    assert added.returncode == 0, added.stderr  # saved all the same
    assert "Check: wrong key (401): " in added.stdout and "sk-wrong-0123456789" not in added.stdout
    assert "shown as failing until a check passes" in added.stdout
    row = listed_row(cli(home, data, "accounts", "list").stdout, "wrong")
    assert " failing (check: wrong key (401)" in row and " ok " not in row
    assert host.received == []  # no chat request after /models refused the key

    tested = cli(home, data, "accounts", "test")
    assert tested.returncode == 1
    assert "wrong (acc-" in tested.stdout and "wrong key (401)" in tested.stdout


def test_a_base_url_without_v1_is_named(host: FakeIflow, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    bare = host.base_url.removesuffix("/v1")
    added = add(home, data, "bare", bare)
    assert added.returncode == 0, added.stderr
    assert f"Check: wrong base URL: {bare} answered 404 to /models" in added.stdout
    assert f"did you forget /v1? try {bare}/v1" in added.stdout
    assert " failing (check: wrong base URL" in listed_row(cli(home, data, "accounts", "list").stdout, "bare")


def test_a_host_that_never_answers_fails_within_the_timeout(host: FakeIflow, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    added = add(home, data, "silent", host.base_url)
    assert added.returncode == 0 and "Check: works" in added.stdout, added.stdout + added.stderr
    host.enqueue(Hang(20))
    began = time.monotonic()
    tested = cli(home, data, "accounts", "test", "silent", "--first-byte-timeout", SILENCE)
    assert time.monotonic() - began < 10
    assert tested.returncode == 1
    assert (
        "silent (acc-" in tested.stdout
        and "unreachable: The upstream did not answer within 1 s" in tested.stdout
    )
    assert " failing (check: unreachable" in listed_row(cli(home, data, "accounts", "list").stdout, "silent")

    # A check that passes puts it back in rotation.
    again = cli(home, data, "accounts", "test", "silent")
    assert again.returncode == 0, again.stdout
    assert listed_row(cli(home, data, "accounts", "list").stdout, "silent").split()[6] == "ok"

    gone = cli(home, data, "accounts", "test", "nobody")
    assert gone.returncode == 1 and "There is no account 'nobody'" in gone.stderr


def test_spent_credit_is_out_of_credit(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    with FakeIflow(mode="deepseek", api_keys=[GOOD], models=["deepseek-chat"]) as deepseek:
        deepseek.enqueue(
            HttpError(402, {"error": {"message": "Insufficient Balance", "type": "unknown_error"}})
        )
        added = cli(home, data, "accounts", "add", "--provider", "deepseek", "--label", "spent",
                    "--base-url", deepseek.base_url, "--key", GOOD)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Check: out of credit: DeepSeek answered 402: Insufficient Balance" in added.stdout
    row = listed_row(cli(home, data, "accounts", "list").stdout, "spent")
    assert " out-of-credit (check: out of credit" in row


def test_the_page_api_checks_and_a_running_gateway_follows_the_cli(
    host: FakeIflow, start_gateway: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data-0"  # start_gateway's first data folder, shared with the CLI below
    gateway: GatewayProcess = start_gateway(None, {"IFLOW2API_FIRST_BYTE_TIMEOUT": SILENCE})

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(gateway.url + path, json=body, timeout=10)

    form = {"kind": "openai-compatible", "provider": "generic", "base_url": host.base_url}
    wrong = post("/api/accounts", form | {"label": "wrong", "api_key": "sk-wrong-0123456789"})
    assert wrong.status_code == 201, wrong.text
    check = wrong.json()["check"]
    assert (check["ok"], check["problem"]) == (False, "wrong-key") and "wrong key (401)" in check["words"]
    view = wrong.json()["account"]
    assert view["state"] == "failing" and view["reason"].startswith("check: wrong key (401)")
    assert httpx.get(gateway.url + "/health", timeout=5).json()["accounts"] == {"failing": 1}
    # A failing account serves nothing, and the client is told why.
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="fake-small", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 503 and "failed its check" in refused.value.message

    good = post("/api/accounts", form | {"label": "good", "api_key": GOOD})
    assert good.status_code == 201 and good.json()["check"]["ok"] is True, good.text
    assert (good.json()["check"]["models"], good.json()["account"]["state"]) == (2, "ok")
    good_id = good.json()["account"]["id"]

    host.enqueue(Hang(20))
    tested = post("/api/accounts/test", {"id": good_id})
    assert tested.status_code == 200, tested.text
    assert tested.json()["check"]["problem"] == "unreachable"
    assert tested.json()["account"]["state"] == "failing"
    # The CLI's test, in its own process, reaches the running gateway's pool within a second.
    home = tmp_path / "iflow-0"
    assert cli(home, data, "accounts", "test", "good").returncode == 0
    eventually(lambda: {a["label"]: a["state"] for a in accounts(gateway)}["good"] == "ok")
    answer = sdk.chat.completions.create(model="fake-small", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content

    assert post("/api/accounts/test", {"id": "acc-nope"}).status_code == 404


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser) as page:
        yield page


def test_the_page_adds_tests_and_shows_the_result(host: FakeIflow, start_gateway: Any, page: Page) -> None:
    gateway: GatewayProcess = start_gateway(None, {"IFLOW2API_FIRST_BYTE_TIMEOUT": SILENCE})
    page.goto(gateway.url + "/#accounts")
    page.select_option("#account-kind", "openai-compatible")
    page.select_option("#account-provider", "generic")
    for name, value in (("label", "trial"), ("key", GOOD), ("base-url", host.base_url)):
        page.fill(f"#account-{name}", value)
    host.enqueue(Hang(20))  # the first check meets a host that does not answer
    page.click("#account-form button[type=submit]")
    box = page.locator("#accounts-message")
    expect(box).to_contain_text("Added trial. trial failed its test — unreachable: ")
    expect(box).to_have_class("message error")
    row = page.locator("#accounts-table tbody tr", has_text="trial")
    expect(row.locator("[data-testid=account-state]")).to_have_text("failing")
    expect(row.locator("[data-testid=account-reason]")).to_contain_text("check: unreachable")

    row.locator("button[data-action=test]").click()
    expect(box).to_contain_text("trial works: fake-small answered in ")
    expect(box).to_contain_text("2 models listed")
    expect(box).to_have_class("message")
    expect(row.locator("[data-testid=account-state]")).to_have_text("ok")
    expect(row.locator("[data-testid=account-reason]")).to_have_count(0)
