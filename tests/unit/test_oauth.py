"""The OAuth protocol as pure functions (protocol §4), checked against literals."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest

from iflow2api.auth import oauth
from iflow2api.auth.oauth import Tokens, UserInfo
from iflow2api.errors import (
    CodeNotFound,
    ConsentDenied,
    GatewayError,
    InvalidGrant,
    LoginError,
    LoginUnavailable,
    NoApiKey,
    StateMismatch,
)

STATE = "0123456789abcdef" * 4
NOW = 1_700_000_000.0
BUSY = {
    "success": False,
    "code": "500",
    "message": "当前找我聊的人太多了\uff0c可以晚点再来问我哦。",
    "exception": None,
    "data": None,
    "extra": None,
}
SECRET_TOKEN = "rt-" + "9" * 40


def body(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------
# Building requests


@pytest.mark.parametrize(
    ("base_url", "redirect_uri", "expected"),
    [
        (
            "https://iflow.cn",
            "http://localhost:54321/oauth2callback",
            "https://iflow.cn/oauth?loginMethod=phone&type=phone"
            "&redirect=http%3A%2F%2Flocalhost%3A54321%2Foauth2callback"
            f"&state={STATE}&client_id=10009311001",
        ),
        (  # §4.4, and a trailing slash on the base is not doubled
            "https://iflow.cn/",
            "https://iflow.cn/oauth/code-display",
            "https://iflow.cn/oauth?loginMethod=phone&type=phone"
            "&redirect=https%3A%2F%2Fiflow.cn%2Foauth%2Fcode-display"
            f"&state={STATE}&client_id=10009311001",
        ),
        (  # encodeURIComponent: "?", "&", "=", " " encoded; "!*'()~-_." kept
            "http://127.0.0.1:9",
            "http://h/cb?x=1&y=a b!*'()~",
            "http://127.0.0.1:9/oauth?loginMethod=phone&type=phone"
            "&redirect=http%3A%2F%2Fh%2Fcb%3Fx%3D1%26y%3Da%20b!*'()~"
            f"&state={STATE}&client_id=10009311001",
        ),
    ],
)
def test_authorize_url(base_url: str, redirect_uri: str, expected: str) -> None:
    assert oauth.authorize_url(base_url, redirect_uri, STATE) == expected


def test_new_state_is_32_random_bytes_in_hex() -> None:
    states = {oauth.new_state() for _ in range(20)}
    assert len(states) == 20
    assert all(len(s) == 64 and bytes.fromhex(s) for s in states)


@pytest.mark.parametrize(
    ("got", "expected"),
    [
        (oauth.code_display_uri("https://iflow.cn"), "https://iflow.cn/oauth/code-display"),
        (oauth.token_url("https://iflow.cn/"), "https://iflow.cn/oauth/token"),
        (
            oauth.user_info_url("https://iflow.cn", "a+b/c=d&e"),
            "https://iflow.cn/api/oauth/getUserInfo?accessToken=a%2Bb%2Fc%3Dd%26e",
        ),
        (
            oauth.user_info_url("http://127.0.0.1:8", "plain"),
            "http://127.0.0.1:8/api/oauth/getUserInfo?accessToken=plain",
        ),
    ],
)
def test_urls(got: str, expected: str) -> None:
    assert got == expected


def test_token_headers() -> None:
    assert oauth.token_headers() == {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": "Basic MTAwMDkzMTEwMDE6NFozWWpYeWNWc1F2eUdGMWV0aU5sSUJCNFJzcVNEdFc=",
        "accept": "application/json",
    }
    encoded = oauth.token_headers()["authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == f"{oauth.CLIENT_ID}:{oauth.CLIENT_SECRET}"


@pytest.mark.parametrize(
    ("got", "expected"),
    [
        (
            oauth.code_exchange_body("c0de", "http://localhost:1/oauth2callback"),
            b"grant_type=authorization_code&code=c0de"
            b"&redirect_uri=http%3A%2F%2Flocalhost%3A1%2Foauth2callback"
            b"&client_id=10009311001&client_secret=4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW",
        ),
        (
            oauth.refresh_body("r+t/="),
            b"grant_type=refresh_token&refresh_token=r%2Bt%2F%3D"
            b"&client_id=10009311001&client_secret=4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW",
        ),
    ],
)
def test_form_bodies(got: bytes, expected: bytes) -> None:
    assert got == expected


def test_form_bodies_round_trip() -> None:
    fields = dict(
        parse_qsl(oauth.code_exchange_body("a b&c", "https://iflow.cn/oauth/code-display").decode())
    )
    assert fields["code"] == "a b&c"
    assert fields["redirect_uri"] == "https://iflow.cn/oauth/code-display"


# ---------------------------------------------------------------------------------------------
# Token answers


def test_parse_tokens_success() -> None:
    answer = {
        "access_token": "at-1",
        "refresh_token": "rt-1",
        "expires_in": 3600,
        "token_type": "bearer",
        "scope": "read",
    }
    assert oauth.parse_tokens(200, body(answer), now=NOW) == Tokens(
        "at-1", "rt-1", NOW + 3600, "bearer", "read", expires_in=3600
    )


@pytest.mark.parametrize(
    ("answer", "expires_at", "refresh_token", "token_type"),
    [
        ({"access_token": "a", "refresh_token": "r", "expires_in": "120"}, NOW + 120, "r", "Bearer"),
        ({"access_token": "a", "expires_in": 60.5}, NOW + 60.5, "", "Bearer"),  # refresh: keep the old one
        ({"access_token": "a", "refresh_token": "r"}, NOW + oauth.DEFAULT_EXPIRES_IN, "r", "Bearer"),
        ({"access_token": "a", "expires_in": -5}, NOW + oauth.DEFAULT_EXPIRES_IN, "", "Bearer"),
        (
            {"access_token": "a", "expires_in": True, "token_type": ""},
            NOW + oauth.DEFAULT_EXPIRES_IN,
            "",
            "Bearer",
        ),
    ],
)
def test_parse_tokens_lenient_fields(
    answer: dict[str, object], expires_at: float, refresh_token: str, token_type: str
) -> None:
    tokens = oauth.parse_tokens(200, body(answer), now=NOW)
    assert (tokens.expires_at, tokens.refresh_token, tokens.token_type) == (
        expires_at,
        refresh_token,
        token_type,
    )
    assert tokens.expires_in == expires_at - NOW  # the lifetime the refresh schedule goes by


@pytest.mark.parametrize(
    ("status", "raw", "error", "words"),
    [
        (200, body(BUSY), LoginUnavailable, "当前找我聊的人太多了"),  # §4.6: HTTP 200 "busy", no token
        (
            400,
            body({"error": "invalid_grant", "error_description": "Invalid refresh token"}),
            InvalidGrant,
            "log in again",
        ),
        (
            401,
            body({"error": "invalid_client", "error_description": "Bad client credentials"}),
            InvalidGrant,
            "client",
        ),
        (400, body({"error": "unsupported_grant_type"}), InvalidGrant, "unsupported_grant_type"),
        (200, body({"error": "invalid_grant"}), InvalidGrant, "invalid_grant"),
        (502, b"<html>Bad Gateway</html>", LoginUnavailable, "HTTP 502"),
        (503, body({"error": "invalid_grant"}), LoginUnavailable, "HTTP 503"),  # 5xx is never a verdict
        (429, b"", LoginUnavailable, "HTTP 429"),
        (
            404,
            body({"status": 404, "error": "Not Found", "path": "/oauth/token"}),
            LoginUnavailable,
            "Not Found",
        ),
        (200, body({"token_type": "bearer"}), LoginUnavailable, "issue a token"),  # missing access_token
        (200, body({"access_token": ""}), LoginUnavailable, "issue a token"),
        (200, b"not json", LoginUnavailable, "not JSON"),
        (200, b"[1, 2]", LoginUnavailable, "not JSON"),
    ],
)
def test_parse_tokens_errors(status: int, raw: bytes, error: type[LoginError], words: str) -> None:
    with pytest.raises(error) as caught:
        oauth.parse_tokens(status, raw, now=NOW)
    assert type(caught.value) is error
    assert words in str(caught.value)
    assert caught.value.upstream_status == status
    assert caught.value.retryable is (error is LoginUnavailable)


def test_token_errors_never_repeat_a_token() -> None:
    """Spring-style servers echo the token ("Invalid refresh token: <token>"); we must not."""
    raw = body({"error": "invalid_grant", "error_description": f"Invalid refresh token: {SECRET_TOKEN}"})
    with pytest.raises(InvalidGrant) as caught:
        oauth.parse_tokens(400, raw, now=NOW)
    assert SECRET_TOKEN not in str(caught.value)
    assert "Invalid refresh token" in str(caught.value)
    with pytest.raises(LoginUnavailable) as unavailable:
        oauth.parse_tokens(500, body({"message": f"boom {SECRET_TOKEN}"}), now=NOW)
    assert SECRET_TOKEN not in str(unavailable.value)


def test_tokens_and_keys_stay_out_of_repr() -> None:
    tokens = Tokens("at-secret-value", "rt-secret-value", NOW)
    user = UserInfo("sk-secret-value", email="a@b.c")
    assert "secret" not in repr(tokens) and "secret" not in repr(user)


# ---------------------------------------------------------------------------------------------
# getUserInfo answers


def test_parse_user_info_success() -> None:
    answer = {
        "success": True,
        "data": {
            "apiKey": "sk-" + "a" * 32,
            "userId": 12345,
            "userName": "Wang",
            "avatar": "https://img/x.png",
            "email": "",
            "phone": "138****0000",
        },
    }
    user = oauth.parse_user_info(200, body(answer))
    assert user == UserInfo("sk-" + "a" * 32, "12345", "Wang", None, "138****0000", "https://img/x.png")
    assert user.label == "138****0000"  # email empty → phone (CPA's order)


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"email": "a@b.c", "phone": "1", "user_name": "n"}, "a@b.c"),
        ({"phone": "1", "user_name": "n"}, "1"),
        ({"user_name": "n"}, "n"),
        ({}, None),
    ],
)
def test_user_label(fields: dict[str, str], label: str | None) -> None:
    assert UserInfo("sk-x", **fields).label == label


@pytest.mark.parametrize(
    ("status", "raw", "error", "words"),
    [
        (
            200,
            body({"success": True, "data": {"userName": "n"}}),
            NoApiKey,
            "Failed to retrieve API key from server",
        ),
        (200, body({"success": True, "data": {"apiKey": ""}}), NoApiKey, "no API key"),
        (200, body({"success": True, "data": None}), NoApiKey, "no API key"),
        (200, body(BUSY), LoginUnavailable, "当前找我聊的人太多了"),  # the CLI loops again on success:false
        (401, b"", LoginUnavailable, "did not accept the access token"),
        (403, body({"message": "forbidden"}), LoginUnavailable, "HTTP 403"),
        (500, b"oops", LoginUnavailable, "HTTP 500"),
        (400, body({"message": "bad"}), LoginUnavailable, "bad"),
        (200, b"<html>", LoginUnavailable, "not JSON"),
    ],
)
def test_parse_user_info_errors(status: int, raw: bytes, error: type[LoginError], words: str) -> None:
    with pytest.raises(error) as caught:
        oauth.parse_user_info(status, raw)
    assert type(caught.value) is error
    assert words in str(caught.value)
    assert caught.value.upstream_status == status


# ---------------------------------------------------------------------------------------------
# What the user pastes (§4.4)


@pytest.mark.parametrize(
    ("text", "expected_state", "code"),
    [
        ("04753be03f08418e8e380bb395c9d87b", STATE, "04753be03f08418e8e380bb395c9d87b"),
        ('  "c0de"\n', STATE, "c0de"),
        (f"http://localhost:8765/oauth2callback?code=c0de&state={STATE}", STATE, "c0de"),
        (f"https://iflow.cn/oauth/code-display?state={STATE}&code=c%2B0de#frag", STATE, "c+0de"),
        (f"code=c0de&state={STATE}", STATE, "c0de"),
        (f"?code=c0de&state={STATE}", STATE, "c0de"),
        ("code=c0de", STATE, "c0de"),  # no state to compare: nothing to reject
        ("http://localhost:1/oauth2callback?code=c0de&state=other", None, "c0de"),  # no expectation
        ("abc+/=", STATE, "abc+/="),  # a bare code keeps its characters
    ],
)
def test_parse_pasted(text: str, expected_state: str | None, code: str) -> None:
    assert oauth.parse_pasted(text, expected_state) == code


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("", CodeNotFound, "Nothing was pasted"),
        ("   \n", CodeNotFound, "Nothing was pasted"),
        (f"http://localhost:1/oauth2callback?code=c0de&state={'f' * 64}", StateMismatch, "State mismatch"),
        ("code=c0de&state=é", StateMismatch, "State mismatch"),
        (f"http://localhost:1/oauth2callback?error=access_denied&state={STATE}", ConsentDenied, "declined"),
        ("error=server_error", CodeNotFound, "server_error"),
        (f"https://iflow.cn/oauth?loginMethod=phone&state={STATE}", CodeNotFound, "No authorization code"),
        ("the code is c0de", CodeNotFound, "does not look like"),
    ],
)
def test_parse_pasted_errors(text: str, error: type[LoginError], words: str) -> None:
    with pytest.raises(error) as caught:
        oauth.parse_pasted(text, STATE)
    assert type(caught.value) is error
    assert words in str(caught.value)


def test_errors_have_a_message_without_arguments() -> None:
    for error in (
        LoginError,
        InvalidGrant,
        LoginUnavailable,
        NoApiKey,
        StateMismatch,
        ConsentDenied,
        CodeNotFound,
    ):
        assert str(error()) and error().upstream_status is None


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidGrant, 400, "login_failed"),
        (NoApiKey, 400, "login_failed"),
        (StateMismatch, 400, "login_failed"),
        (ConsentDenied, 400, "login_failed"),
        (LoginUnavailable, 502, "login_unavailable"),
        (CodeNotFound, 502, "login_unavailable"),
    ],
)
def test_login_errors_are_gateway_errors_shown_as_the_page_always_showed_them(
    error: type[LoginError], status: int, code: str
) -> None:
    shown = error()
    assert isinstance(shown, GatewayError)
    assert (shown.status, shown.code) == (status, code)
    assert shown.type == ("invalid_request_error" if status == 400 else "upstream_error")
