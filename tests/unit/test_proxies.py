"""Every outgoing request goes through the one proxy lookup (issue 9, section 4): OAuth token
exchange, refresh and key fetches honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY as chat does.

The proxy is a real one on 127.0.0.1:0 (``tests/forward_proxy.py``); the OAuth host is the fake's.
"""

from __future__ import annotations

import asyncio

import pytest

from iflow2api.auth import oauth
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.errors import LoginUnavailable
from iflow2api.upstream.client import UpstreamClient
from tests.fake_iflow import FakeIflow
from tests.forward_proxy import ForwardProxy

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def refresh(base_url: str, refresh_token: str) -> tuple[oauth.Tokens, oauth.UserInfo]:
    async def main() -> tuple[oauth.Tokens, oauth.UserInfo]:
        client = OAuthClient(base_url)
        try:
            tokens = await client.refresh(refresh_token)
            return tokens, await client.user_info(tokens.access_token)
        finally:
            await client.close()

    return asyncio.run(main())


def test_refresh_and_key_fetch_go_through_http_proxy(
    fake: FakeIflow, clean_environment: pytest.MonkeyPatch
) -> None:
    login = fake.oauth.issue_login()
    with ForwardProxy() as proxy:
        clean_environment.setenv("HTTP_PROXY", proxy.url)
        tokens, user = refresh(fake.oauth_base_url, login["refresh_token"])
    assert user.api_key and fake.oauth.refreshes == 1
    origin = fake.oauth_base_url.rstrip("/")
    assert proxy.seen() == [
        f"POST {origin}/oauth/token HTTP/1.1",
        f"GET {origin}/api/oauth/getUserInfo?accessToken={tokens.access_token} HTTP/1.1",
    ]


def test_https_oauth_asks_the_https_proxy_for_a_tunnel(clean_environment: pytest.MonkeyPatch) -> None:
    with ForwardProxy() as proxy:
        clean_environment.setenv("HTTPS_PROXY", proxy.url)
        with pytest.raises(LoginUnavailable) as caught:
            refresh("https://oauth.iflow.test", "rt-" + "7" * 40)
    assert proxy.seen() == ["CONNECT oauth.iflow.test:443 HTTP/1.1"]
    assert "7777777" not in str(caught.value)


def test_no_proxy_bypasses_the_proxy(fake: FakeIflow, clean_environment: pytest.MonkeyPatch) -> None:
    login = fake.oauth.issue_login()
    with ForwardProxy() as proxy:
        clean_environment.setenv("HTTP_PROXY", proxy.url)
        clean_environment.setenv("NO_PROXY", "localhost,127.0.0.1")
        _, user = refresh(fake.oauth_base_url, login["refresh_token"])
    assert user.api_key and fake.oauth.refreshes == 1
    assert proxy.seen() == []


def test_chat_and_oauth_name_the_same_proxy(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_environment.setenv("NO_PROXY", "internal.example")
    upstream = UpstreamClient(connect_timeout=1, first_byte_timeout=1, idle_timeout=1)
    client = OAuthClient("https://iflow.cn")
    for url in (
        "https://iflow.cn/oauth/token",
        "https://apis.iflow.cn/v1/models",
        "https://internal.example/",
    ):
        assert client.proxy_for(url) == upstream.proxy_for(url)
    assert client.proxy_for("https://iflow.cn/oauth/token") == "http://proxy.example:3128"
    assert client.proxy_for("https://internal.example/") is None
