"""Which provider profile an account gets, as every place that adds or shows accounts sees it."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pytest

from iflow2api import providers
from iflow2api.auth.credentials import Account, account_from_files
from iflow2api.errors import InvalidRequest
from iflow2api.pool.directory import ProviderChoice, provider_choice, provider_list, provider_names
from iflow2api.providers.base import Profile
from iflow2api.routes.manage import account_record
from iflow2api.settings import SettingsError, load

LOOPBACK = "http://127.0.0.1:8001/v1"


class Example(Profile):
    """A provider of the tests' own, so the rules below hold whichever profiles the package has."""

    name: ClassVar[str] = "example"
    title: ClassVar[str] = "Example Cloud"
    base_url: ClassVar[str] = "https://api.example-cloud.test/v1"
    hosts: ClassVar[tuple[str, ...]] = ("api.example-cloud.test",)


@pytest.fixture
def with_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "PROFILES", MappingProxyType({**providers.PROFILES, "example": Example}))


def openai_account(base_url: str = LOOPBACK, provider: str | None = None) -> Account:
    return Account("openai-compatible", "openai-compatible", base_url, "sk-x", provider=provider)


@pytest.mark.parametrize(
    "name", [name for name, profile in providers.PROFILES.items() if profile.base_url and name != "generic"]
)
def test_each_profiles_public_base_url_is_its_own_host(name: str) -> None:
    assert providers.for_host(providers.PROFILES[name].base_url) == name


@pytest.mark.parametrize("url", [LOOPBACK, "http://localhost:11434/v1", "https://llm.company.internal/v1"])
def test_an_unknown_host_is_generic(url: str) -> None:
    assert providers.for_host(url) == "generic"
    assert provider_choice(openai_account(url)) == ProviderChoice("generic", by_host=True)


def test_a_named_provider_wins_over_the_host(with_example: None) -> None:
    assert provider_choice(openai_account(Example.base_url)) == ("example", True)
    assert provider_choice(openai_account(Example.base_url, "generic")) == ("generic", False)
    assert provider_choice(openai_account(LOOPBACK, "example")) == ("example", False)
    assert str(provider_choice(openai_account(Example.base_url))) == "example (by host)"
    assert str(provider_choice(openai_account(LOOPBACK, "example"))) == "example"


def test_an_iflow_account_is_iflows_whatever_its_url() -> None:
    account = Account("iflow", "api-key", LOOPBACK, "sk-x")
    assert provider_choice(account) == ("iflow", False)


def test_the_page_is_offered_every_profile_but_iflows(with_example: None) -> None:
    assert "iflow" not in provider_names()
    assert {"example", "generic"} <= set(provider_names())
    offered = {p["name"]: p for p in provider_list()}
    assert offered["example"] == {
        "name": "example",
        "title": "Example Cloud",
        "base_url": "https://api.example-cloud.test/v1",
    }
    assert offered["generic"]["title"] == "Any OpenAI-compatible server"
    assert offered["generic"]["base_url"] == ""


def form(**fields: Any) -> dict[str, Any]:
    return {"label": "work", "api_key": "sk-work", **fields}


def test_a_provider_brings_its_public_base_url(with_example: None) -> None:
    record = account_record(form(provider="example"))
    assert (record.kind, record.provider, record.base_url) == (
        "openai-compatible",
        "example",
        Example.base_url,
    )
    own = account_record(form(kind="openai-compatible", provider="example", base_url=LOOPBACK + "/"))
    assert (own.provider, own.base_url) == ("example", LOOPBACK)
    plain = account_record(form(kind="openai-compatible", base_url=LOOPBACK, provider=""))
    assert plain.provider is None


def test_a_provider_is_checked(with_example: None) -> None:
    with pytest.raises(InvalidRequest, match=r"'provider' must be one of: .*example.*generic") as caught:
        account_record(form(provider="nope"))
    assert caught.value.param == "provider"
    with pytest.raises(InvalidRequest, match="must be one of"):
        account_record(form(provider="iflow"))
    with pytest.raises(InvalidRequest, match="for OpenAI-compatible accounts"):
        account_record(form(kind="iflow-key", provider="example"))
    # The generic profile has no public base URL to fall back on.
    with pytest.raises(InvalidRequest, match="needs its base URL") as missing:
        account_record(form(provider="generic"))
    assert missing.value.param == "base_url"


def test_the_upstream_provider_setting(tmp_path: Path) -> None:
    env = {"IFLOW2API_DATA_DIR": str(tmp_path)}
    assert load(env=env, config_path=None).upstream_provider == ""
    named = {**env, "IFLOW2API_UPSTREAM_PROVIDER": " generic "}
    assert load(env=named, config_path=None).upstream_provider == "generic"
    assert (
        load(env=env, flags={"upstream_provider": "generic"}, config_path=None).upstream_provider == "generic"
    )
    with pytest.raises(SettingsError, match=r"upstream_provider \(IFLOW2API_UPSTREAM_PROVIDER\).*one of"):
        load(env={**env, "IFLOW2API_UPSTREAM_PROVIDER": "nope"}, config_path=None)
    with pytest.raises(SettingsError, match="iflow is the profile of iFlow accounts"):
        load(env={**env, "IFLOW2API_UPSTREAM_PROVIDER": "iflow"}, config_path=None)


def test_the_upstream_provider_names_the_cli_files_openai_compatible_account() -> None:
    files = {"selectedAuthType": "openai-compatible", "baseUrl": LOOPBACK, "apiKey": "sk-x"}
    account = account_from_files(files, None, provider="generic")
    assert account is not None and account.provider == "generic"
    by_host = account_from_files(files, None)
    assert by_host is not None and by_host.provider is None
    # An iFlow login is iFlow's: the setting is for the openai-compatible account only.
    iflow = account_from_files({"selectedAuthType": "iflow", "apiKey": "sk-x"}, None, provider="generic")
    assert iflow is not None and iflow.provider is None and provider_choice(iflow).name == "iflow"
