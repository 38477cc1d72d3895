"""A gateway whose one account names a provider profile (``[[accounts]] provider = "..."`` in its
config file), in front of the fake playing that provider's host; and what the page's API says of
that account."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GatewayProcess
from tests.fake_iflow import DEFAULT_KEY, FakeIflow


@contextmanager
def provider_gateway(folder: Path, fake: FakeIflow, provider: str) -> Iterator[GatewayProcess]:
    config = folder / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "{provider}"\nprovider = "{provider}"\n'
        f'base_url = "{fake.base_url}"\napi_key = "{DEFAULT_KEY}"\n'
    )
    process = GatewayProcess(folder / "iflow", folder / "data", {"IFLOW2API_CONFIG": str(config)})
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
