"""A gateway whose one account names a provider profile (``[[accounts]] provider = "..."`` in its
config file), in front of the fake playing that provider's host; and what the page's API says of
that account.

A test module takes the fixtures ``upstream`` (the fake, one per module), ``gateway`` (one per
module, its account reset before each test) and ``sdk`` (an OpenAI client of it) with::

    upstream, running, gateway, sdk = provider_fixtures("dashscope", ["qwen3.7-plus"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import DEFAULT_KEY, FakeIflow


@contextmanager
def provider_gateway(
    folder: Path, fake: FakeIflow, provider: str, options: str = ""
) -> Iterator[GatewayProcess]:
    """``options``: the ``provider_options`` setting, as its environment variable has it."""
    config = folder / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "{provider}"\nprovider = "{provider}"\n'
        f'base_url = "{fake.base_url}"\napi_key = "{DEFAULT_KEY}"\n'
    )
    env = {"IFLOW2API_CONFIG": str(config), "IFLOW2API_PROVIDER_OPTIONS": options}
    process = GatewayProcess(folder / "iflow", folder / "data", env)
    try:
        process.wait_for_health()
        yield process
    finally:
        process.stop()


def reset_account(gateway: GatewayProcess) -> None:
    """The page's reset for the account, whatever rest it is in (``reset_accounts`` leaves one
    out of credit as it is)."""
    account = account_state(gateway)
    if account["state"] != "ok":
        action = {"id": account["id"], "action": "reset"}
        httpx.post(gateway.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()


def account_state(gateway: GatewayProcess) -> dict[str, Any]:
    """The pool's one account, as the page's API lists it."""
    accounts = httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]
    assert len(accounts) == 1
    account: dict[str, Any] = accounts[0]
    return account


def provider_fixtures(
    provider: str, models: Sequence[str], options: str = ""
) -> tuple[Callable[..., Any], ...]:
    """The fixtures of a module that tests one provider's account (see the module's docstring)."""

    @pytest.fixture(scope="module", name="upstream")
    def upstream() -> Iterator[FakeIflow]:
        with FakeIflow(mode=provider, models=models) as server:
            yield server

    @pytest.fixture(scope="module", name="running")
    def running(tmp_path_factory: pytest.TempPathFactory, upstream: FakeIflow) -> Iterator[GatewayProcess]:
        with provider_gateway(tmp_path_factory.mktemp(provider), upstream, provider, options) as gateway:
            yield gateway

    @pytest.fixture(name="gateway")
    def gateway(running: GatewayProcess, upstream: FakeIflow) -> GatewayProcess:
        upstream.reset()
        reset_account(running)
        return running

    @pytest.fixture(name="sdk")
    def sdk(gateway: GatewayProcess) -> openai.OpenAI:
        return openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=20)

    return upstream, running, gateway, sdk


def last_body(fake: FakeIflow) -> dict[str, Any]:
    """The body of the fake's last request, which it must have accepted."""
    sent = fake.received[-1]
    assert sent.rejected is None, sent.rejected
    assert sent.body is not None
    return sent.body
