"""The fake iFlow's OAuth host (protocol §4), driven with httpx over loopback."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.fake_iflow import (
    BASIC_AUTH,
    BUSY_BODY,
    CLIENT_ID,
    CLIENT_SECRET,
    FakeIflow,
    TokenFailure,
    UserInfoFailure,
    signature,
)

CALLBACK = "http://localhost:53682/oauth2callback"
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Bad client credentials"}
TOKEN_INVALID = {"success": False, "code": "401", "message": "token invalid"}
EXPIRED_439 = {"status": "439", "msg": "API Token expired", "body": None}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def server() -> Iterator[FakeIflow]:
    with FakeIflow() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeIflow) -> FakeIflow:
    server.reset()
    return server


def authorize_params(redirect: str | None = CALLBACK, **overrides: str | None) -> dict[str, str]:
    """§4.3 step 4, in the CLI's order; an override of ``None`` drops that parameter."""
    params: dict[str, str | None] = {
        "loginMethod": "phone",
        "type": "phone",
        "redirect": redirect,
        "state": "ab" * 32,
        "client_id": CLIENT_ID,
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def consent_link(page: str, which: str) -> str:
    match = re.search(f'id="{which}" href="([^"]+)"', page)
    assert match is not None, page
    return match.group(1).replace("&amp;", "&")


def login_code(http: httpx.Client, fake: FakeIflow, redirect: str = CALLBACK) -> str:
    """Open the consent page, click Allow, and take the code from the redirect."""
    page = http.get(fake.oauth_base_url + "/oauth", params=authorize_params(redirect))
    allowed = http.get(fake.oauth_base_url + consent_link(page.text, "allow"))
    assert allowed.status_code == 302, allowed.text
    return parse_qs(urlsplit(allowed.headers["location"]).query)["code"][0]


def token(
    http: httpx.Client,
    fake: FakeIflow,
    form: dict[str, str],
    *,
    authorization: str | None = BASIC_AUTH,
    client: bool = True,
) -> httpx.Response:
    """``POST /oauth/token`` as the CLI sends it; ``client=False`` leaves the client out of the form."""
    body = {**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET} if client else form
    headers = {} if authorization is None else {"authorization": authorization}
    return http.post(fake.oauth_base_url + "/oauth/token", data=body, headers=headers)


def exchange(http: httpx.Client, fake: FakeIflow, code: str, redirect: str = CALLBACK) -> httpx.Response:
    return token(http, fake, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})


def refresh(http: httpx.Client, fake: FakeIflow, refresh_token: str) -> httpx.Response:
    return token(http, fake, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def user_info(http: httpx.Client, fake: FakeIflow, access_token: str) -> httpx.Response:
    return http.get(fake.oauth_base_url + "/api/oauth/getUserInfo", params={"accessToken": access_token})


def chat(http: httpx.Client, fake: FakeIflow, key: str) -> dict[str, Any]:
    session_id, timestamp = f"session-{uuid.uuid4()}", str(int(time.time() * 1000))
    headers = {
        "authorization": f"Bearer {key}",
        "user-agent": "iFlow-Cli",
        "session-id": session_id,
        "conversation-id": "",
        "x-iflow-timestamp": timestamp,
        "x-iflow-signature": signature(key, session_id, timestamp),
    }
    body = {"model": "glm-4.6-exp", "messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 10}
    response = http.post(fake.base_url + "/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def chat_ok(http: httpx.Client, fake: FakeIflow, key: str) -> bool:
    return "choices" in chat(http, fake, key)


# --- authorize page -----------------------------------------------------------------------------


def test_base_url_and_client_credentials(fake: FakeIflow) -> None:
    assert fake.oauth_base_url + "/v1" == fake.base_url
    assert BASIC_AUTH == "Basic MTAwMDkzMTEwMDE6NFozWWpYeWNWc1F2eUdGMWV0aU5sSUJCNFJzcVNEdFc="


def test_consent_page_offers_allow_and_deny(fake: FakeIflow, http: httpx.Client) -> None:
    page = http.get(fake.oauth_base_url + "/oauth", params=authorize_params())
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert consent_link(page.text, "allow").startswith("/oauth/consent?")
    assert consent_link(page.text, "deny").startswith("/oauth/consent?")
    assert 'id="email">user@example.com<' in page.text


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        pytest.param(
            authorize_params(redirect=None, redirect_uri=CALLBACK), "redirect_uri", id="redirect_uri"
        ),
        pytest.param(authorize_params(response_type="code"), "response_type", id="response_type"),
        pytest.param(authorize_params(client_id="42"), "client_id", id="client_id"),
        pytest.param(authorize_params(client_id=None), "client_id", id="no-client_id"),
        pytest.param(authorize_params(state=""), "state", id="empty-state"),
        pytest.param(authorize_params(loginMethod="email"), "loginMethod", id="loginMethod"),
        pytest.param(authorize_params(type=None), "type", id="no-type"),
        pytest.param(authorize_params(redirect="/oauth2callback"), "absolute", id="relative-redirect"),
    ],
)
def test_bad_authorize_requests_are_400_pages(
    fake: FakeIflow, http: httpx.Client, params: dict[str, str], problem: str
) -> None:
    page = http.get(fake.oauth_base_url + "/oauth", params=params)
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert problem in page.text and 'id="allow"' not in page.text


def test_a_parameter_given_twice_is_refused(fake: FakeIflow, http: httpx.Client) -> None:
    query = urlencode(authorize_params()) + "&state=other"
    page = http.get(f"{fake.oauth_base_url}/oauth?{query}")
    assert page.status_code == 400 and "state must be given once" in page.text


def test_allow_redirects_with_code_and_state(fake: FakeIflow, http: httpx.Client) -> None:
    page = http.get(fake.oauth_base_url + "/oauth", params=authorize_params())
    allowed = http.get(fake.oauth_base_url + consent_link(page.text, "allow"))
    assert allowed.status_code == 302
    location = urlsplit(allowed.headers["location"])
    assert location._replace(query="").geturl() == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["ab" * 32] and len(query["code"][0]) >= 16
    again = http.get(fake.oauth_base_url + consent_link(page.text, "allow"))
    assert again.status_code == 400  # the page was answered already


def test_deny_redirects_with_access_denied(fake: FakeIflow, http: httpx.Client) -> None:
    redirect = "http://127.0.0.1:9/cb?x=1"
    page = http.get(fake.oauth_base_url + "/oauth", params=authorize_params(redirect, state="s1"))
    denied = http.get(fake.oauth_base_url + consent_link(page.text, "deny"))
    assert denied.status_code == 302
    assert denied.headers["location"] == "http://127.0.0.1:9/cb?x=1&error=access_denied&state=s1"


def test_code_display_shows_the_code(fake: FakeIflow, http: httpx.Client) -> None:
    display = fake.oauth_base_url + "/oauth/code-display"
    page = http.get(fake.oauth_base_url + "/oauth", params=authorize_params(display))
    shown = http.get(fake.oauth_base_url + consent_link(page.text, "allow"))
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    match = re.search(r'id="code">([^<]+)<', shown.text)
    assert match is not None
    assert exchange(http, fake, match.group(1), display).status_code == 200
    assert 'id="code">abc<' in http.get(display, params={"code": "abc", "state": "s"}).text


def test_auto_consent_skips_the_page(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.auto_consent = True
    redirected = http.get(fake.oauth_base_url + "/oauth", params=authorize_params())
    assert redirected.status_code == 302
    code = parse_qs(urlsplit(redirected.headers["location"]).query)["code"][0]
    assert exchange(http, fake, code).status_code == 200
    display = fake.oauth_base_url + "/oauth/code-display"
    assert 'id="code"' in http.get(fake.oauth_base_url + "/oauth", params=authorize_params(display)).text
    assert http.get(fake.oauth_base_url + "/oauth", params=authorize_params(state="")).status_code == 400


def test_result_pages(fake: FakeIflow, http: httpx.Client) -> None:
    for path, element in [("/oauth/success", 'id="success"'), ("/oauth/error", 'id="error"')]:
        page = http.get(fake.oauth_base_url + path)
        assert page.status_code == 200 and element in page.text
    assert http.get(fake.oauth_base_url + "/oauth/token").json()["status"] == 405


# --- token exchange -----------------------------------------------------------------------------


def test_login_exchange_user_info_and_chat(fake: FakeIflow, http: httpx.Client) -> None:
    tokens = exchange(http, fake, login_code(http, fake))
    assert tokens.status_code == 200
    body = tokens.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"], body["scope"]) == (86400 * 7, "bearer", "read")
    info = user_info(http, fake, body["access_token"])
    assert info.status_code == 200 and info.json()["success"] is True
    data = info.json()["data"]
    assert re.fullmatch("sk-[0-9a-f]{32}", data["apiKey"])
    assert (data["email"], data["phone"], data["avatar"]) == ("user@example.com", "138****0000", "")
    assert isinstance(data["userId"], int) and data["userName"]
    assert chat_ok(http, fake, data["apiKey"])
    listing = http.get(fake.base_url + "/models", headers={"authorization": f"Bearer {data['apiKey']}"})
    assert listing.status_code == 200
    [recorded] = fake.oauth.token_requests
    assert recorded["grant_type"] == "authorization_code" and recorded["answer"] == "ok"
    assert recorded["form"]["redirect_uri"] == CALLBACK and recorded["form"]["client_secret"] == CLIENT_SECRET
    assert recorded["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert fake.oauth.user_info_requests[0]["access_token"] == body["access_token"]


def test_each_login_gets_a_fresh_key(fake: FakeIflow, http: httpx.Client) -> None:
    keys = set()
    for _ in range(2):
        access = exchange(http, fake, login_code(http, fake)).json()["access_token"]
        keys.add(user_info(http, fake, access).json()["data"]["apiKey"])
    assert len(keys) == 2 and all(chat_ok(http, fake, key) for key in keys)


@pytest.mark.parametrize(
    ("authorization", "client", "answer"),
    [
        pytest.param(None, True, "no Authorization header", id="no-basic"),
        pytest.param("Basic " + "MTAwMDkzMTEwMDE6eA==", True, "wrong Basic", id="wrong-basic"),
        pytest.param(f"Bearer {CLIENT_SECRET}", True, "wrong Basic", id="bearer"),
        pytest.param(BASIC_AUTH, False, "client_id is missing", id="form-without-client"),
    ],
)
def test_client_credentials_go_in_header_and_form(
    fake: FakeIflow, http: httpx.Client, authorization: str | None, client: bool, answer: str
) -> None:
    code = login_code(http, fake)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    refused = token(http, fake, form, authorization=authorization, client=client)
    assert (refused.status_code, refused.json()) == (401, INVALID_CLIENT)
    assert answer in fake.oauth.token_requests[-1]["answer"]
    assert exchange(http, fake, code).status_code == 200  # the code was not spent


def test_wrong_client_secret_in_the_form(fake: FakeIflow, http: httpx.Client) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "x",
        "client_id": CLIENT_ID,
        "client_secret": "no",
    }
    refused = token(http, fake, form, client=False)
    assert (refused.status_code, refused.json()) == (401, INVALID_CLIENT)


def test_token_request_must_be_a_form(fake: FakeIflow, http: httpx.Client) -> None:
    body = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    refused = http.post(
        fake.oauth_base_url + "/oauth/token", json=body, headers={"authorization": BASIC_AUTH}
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert "x-www-form-urlencoded" in refused.json()["error_description"]


def test_code_is_one_time(fake: FakeIflow, http: httpx.Client) -> None:
    code = login_code(http, fake)
    assert exchange(http, fake, code).status_code == 200
    again = exchange(http, fake, code)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": f"Invalid authorization code: {code}",
    }


def test_redirect_uri_must_match_and_a_mismatch_spends_the_code(fake: FakeIflow, http: httpx.Client) -> None:
    code = login_code(http, fake)
    mismatch = exchange(http, fake, code, "http://localhost:1/oauth2callback")
    assert mismatch.status_code == 400
    assert mismatch.json() == {"error": "invalid_grant", "error_description": "Redirect URI mismatch."}
    assert "is not" in fake.oauth.token_requests[-1]["answer"]
    assert exchange(http, fake, code).json()["error"] == "invalid_grant"
    form = {"grant_type": "authorization_code", "code": login_code(http, fake)}
    assert token(http, fake, form).json()["error"] == "invalid_grant"  # no redirect_uri at all


def test_grant_type_missing_or_unknown(fake: FakeIflow, http: httpx.Client) -> None:
    missing = token(http, fake, {})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    unknown = token(http, fake, {"grant_type": "password"})
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unsupported_grant_type")


# --- refresh and keys ---------------------------------------------------------------------------


def test_refresh_rotates_tokens_and_key(fake: FakeIflow, http: httpx.Client) -> None:
    login = fake.oauth.issue_login()
    refreshed = refresh(http, fake, login["refresh_token"])
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["access_token"] != login["access_token"] and new["refresh_token"] != login["refresh_token"]
    assert fake.oauth.refreshes == 1
    stale = refresh(http, fake, login["refresh_token"])
    assert (stale.status_code, stale.json()["error"]) == (400, "invalid_grant")
    assert fake.oauth.refreshes == 1
    assert user_info(http, fake, login["access_token"]).status_code == 401
    new_key = user_info(http, fake, new["access_token"]).json()["data"]["apiKey"]
    assert new_key != login["api_key"] and chat_ok(http, fake, new_key)
    assert chat(http, fake, login["api_key"]) == EXPIRED_439
    assert "retired" in (fake.received[-1].rejected or "")
    assert refresh(http, fake, new["refresh_token"]).status_code == 200
    assert fake.oauth.refreshes == 2


def test_key_kept_on_refresh_when_rotation_is_off(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.rotate_key_on_refresh = False
    login = fake.oauth.issue_login()
    access = refresh(http, fake, login["refresh_token"]).json()["access_token"]
    assert user_info(http, fake, access).json()["data"]["apiKey"] == login["api_key"]
    assert chat_ok(http, fake, login["api_key"])


def test_old_key_grace(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.old_key_grace = 0.3
    login = fake.oauth.issue_login()
    assert refresh(http, fake, login["refresh_token"]).status_code == 200
    assert chat_ok(http, fake, login["api_key"])
    time.sleep(0.35)
    assert chat(http, fake, login["api_key"]) == EXPIRED_439


def test_unknown_keys_stay_434_and_reset_forgets_oauth_keys(fake: FakeIflow, http: httpx.Client) -> None:
    login = fake.oauth.issue_login()
    assert chat(http, fake, "sk-" + "1" * 32)["status"] == "434"
    fake.reset()
    assert chat(http, fake, login["api_key"])["status"] == "434"


def test_issue_login(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.token_lifetime = 100
    login = fake.oauth.issue_login()
    assert login["expires_in"] == 100 and abs(login["expiry_date"] - (time.time() + 100) * 1000) < 2000
    assert (login["email"], login["token_type"], login["scope"]) == ("user@example.com", "bearer", "read")
    again, other = fake.oauth.issue_login(), fake.oauth.issue_login("second@example.com")
    assert again["user_id"] == login["user_id"] != other["user_id"]
    assert again["api_key"] != login["api_key"] and other["user_name"] == "second"
    data = user_info(http, fake, other["access_token"]).json()["data"]
    assert (data["apiKey"], data["email"], data["userId"]) == (
        other["api_key"],
        other["email"],
        other["user_id"],
    )
    assert chat_ok(http, fake, login["api_key"])
    assert fake.oauth.token_requests == [] and fake.oauth.refreshes == 0


def test_user_info_needs_a_valid_token(fake: FakeIflow, http: httpx.Client) -> None:
    unknown = user_info(http, fake, "nope")
    assert (unknown.status_code, unknown.json()) == (401, TOKEN_INVALID)
    missing = http.get(fake.oauth_base_url + "/api/oauth/getUserInfo")
    assert (missing.status_code, missing.json()) == (401, TOKEN_INVALID)
    assert [r["answer"] for r in fake.oauth.user_info_requests] == ["unknown access token"] * 2


def test_a_one_second_token_expires(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.token_lifetime = 1
    login = fake.oauth.issue_login()
    assert login["expires_in"] == 1
    assert user_info(http, fake, login["access_token"]).status_code == 200
    time.sleep(1.05)
    expired = user_info(http, fake, login["access_token"])
    assert (expired.status_code, expired.json()) == (401, TOKEN_INVALID)
    assert fake.oauth.user_info_requests[-1]["answer"] == "expired access token"
    assert chat_ok(http, fake, login["api_key"])  # the key outlives the access token
    renewed = refresh(http, fake, login["refresh_token"]).json()
    assert renewed["expires_in"] == 1
    assert user_info(http, fake, renewed["access_token"]).status_code == 200


# --- failure modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["busy", "http500", "invalid_grant", "drop"])
def test_token_failures(fake: FakeIflow, http: httpx.Client, kind: TokenFailure) -> None:
    login = fake.oauth.issue_login()
    fake.oauth.fail_next_token(kind)
    assert token(http, fake, {}, authorization=None).status_code == 401  # a refused request keeps it
    if kind == "drop":
        with pytest.raises(httpx.RemoteProtocolError):
            refresh(http, fake, login["refresh_token"])
    else:
        failed = refresh(http, fake, login["refresh_token"])
        expected = {
            "busy": (200, BUSY_BODY),
            "invalid_grant": (400, {"error": "invalid_grant", "error_description": "refresh token revoked"}),
        }
        if kind == "http500":
            assert failed.status_code == 500 and failed.json()["error"] == "Internal Server Error"
        else:
            assert (failed.status_code, failed.json()) == expected[kind]
    assert fake.oauth.token_requests[-1]["answer"] == kind
    assert fake.oauth.refreshes == 0
    retry = refresh(http, fake, login["refresh_token"])
    if kind == "invalid_grant":
        assert retry.status_code == 400 and "Invalid refresh token" in retry.json()["error_description"]
    else:
        assert retry.status_code == 200 and fake.oauth.refreshes == 1
        assert chat(http, fake, login["api_key"]) == EXPIRED_439  # rotated only by the good refresh


def test_token_failure_times_and_code_exchange(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.fail_next_token("busy", times=2)
    code = login_code(http, fake)
    assert [exchange(http, fake, code).json() for _ in range(2)] == [BUSY_BODY, BUSY_BODY]
    assert exchange(http, fake, code).status_code == 200  # a busy answer leaves the code unspent
    with pytest.raises(ValueError, match="unknown failure"):
        fake.oauth.fail_next_token("teapot")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["no_key", "http500", "success_false", "drop"])
def test_user_info_failures(fake: FakeIflow, http: httpx.Client, kind: UserInfoFailure) -> None:
    login = fake.oauth.issue_login()
    fake.oauth.fail_next_user_info(kind)
    assert user_info(http, fake, "unknown").status_code == 401  # a bad token keeps it
    if kind == "drop":
        with pytest.raises(httpx.RemoteProtocolError):
            user_info(http, fake, login["access_token"])
    else:
        failed = user_info(http, fake, login["access_token"])
        if kind == "no_key":
            assert failed.status_code == 200 and failed.json()["success"] is True
            assert failed.json()["data"]["apiKey"] == ""
        elif kind == "http500":
            assert failed.status_code == 500
        else:
            assert (failed.status_code, failed.json()) == (200, BUSY_BODY)
    assert fake.oauth.user_info_requests[-1]["answer"] == kind
    assert user_info(http, fake, login["access_token"]).json()["data"]["apiKey"] == login["api_key"]


def test_reset_forgets_oauth_state_and_knobs(fake: FakeIflow, http: httpx.Client) -> None:
    fake.oauth.auto_consent, fake.oauth.token_lifetime, fake.oauth.old_key_grace = True, 5, 9.0
    login = fake.oauth.issue_login()
    fake.oauth.fail_next_token("busy")
    fake.oauth.fail_next_user_info("no_key")
    assert refresh(http, fake, login["refresh_token"]).json() == BUSY_BODY
    fake.reset()
    assert fake.oauth.token_requests == [] and fake.oauth.user_info_requests == []
    assert (fake.oauth.auto_consent, fake.oauth.token_lifetime, fake.oauth.old_key_grace) == (
        False,
        86400 * 7,
        0.0,
    )
    assert refresh(http, fake, login["refresh_token"]).json()["error"] == "invalid_grant"
    assert user_info(http, fake, login["access_token"]).status_code == 401
    fresh = fake.oauth.issue_login()
    assert user_info(http, fake, fresh["access_token"]).json()["data"]["apiKey"] == fresh["api_key"]
