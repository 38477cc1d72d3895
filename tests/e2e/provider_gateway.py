"""A gateway whose accounts are keys of one provider's fake host, for the provider profiles' tests.

``start`` writes the accounts into a config file (``[[accounts]]`` with ``provider``), in order,
and picks them fill-first, so the first is always asked first and a test can script its failure
(``FakeIflow.enqueue_for``) and see the next one take over.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GatewayProcess
from tests.fake_iflow import FakeIflow

#: The response header that says what was sent upstream for thinking.
THINKING = "x-iflow2api-thinking"


def start(
    tmp_path: Path, fake: FakeIflow, provider: str, keys: Mapping[str, str], options: str = ""
) -> GatewayProcess:
    """A gateway with one ``provider`` account per label in ``keys`` (label → api key)."""
    config = tmp_path / "config.toml"
    config.write_text(
        "".join(
            f'[[accounts]]\nlabel = "{label}"\nprovider = "{provider}"\nbase_url = "{fake.base_url}"\n'
            f'api_key = "{key}"\n\n'
            for label, key in keys.items()
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "IFLOW2API_CONFIG": str(config),
        "IFLOW2API_STRATEGY": "fill-first",
        "IFLOW2API_PROVIDER_OPTIONS": options,
    }
    process = GatewayProcess(home, tmp_path / "data", env)
    process.wait_for_health()
    return process


def reset_accounts(gateway: GatewayProcess) -> None:
    """Every account back in rotation: out of credit too (``GatewayProcess.reset_accounts`` lifts
    only cooling and quarantined ones)."""
    for account in httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]:
        if account["state"] != "ok":
            action = {"id": account["id"], "action": "reset"}
            httpx.post(gateway.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()


def sent(fake: FakeIflow) -> dict[str, Any]:
    """The body of the last request the fake took."""
    body = fake.received[-1].body
    assert body is not None and fake.received[-1].rejected is None, fake.received[-1].rejected
    return body


def served_by(fake: FakeIflow, keys: Mapping[str, str]) -> list[str]:
    """The label of the account of each request the fake took, in order."""
    labels = {key: label for label, key in keys.items()}
    return [
        labels[r.headers["authorization"].removeprefix("Bearer ")]
        for r in fake.received
        if r.rejected is None
    ]


def states(gateway: GatewayProcess) -> dict[str, str]:
    """Each account's state as the page shows it, by label."""
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account["state"] for account in listing["accounts"]}
