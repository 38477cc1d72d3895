"""The admin password's hash and the page's sign-in sessions."""

from __future__ import annotations

import re
import types

import pytest

from iflow2api import admin
from iflow2api.admin import (
    MAX_SESSIONS,
    SESSION_SECONDS,
    Sessions,
    cookie_value,
    hash_password,
    new_password,
    verify_password,
)

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def stored() -> str:
    # scrypt is slow on purpose: hash once for the whole module.
    return hash_password(PASSWORD)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(admin, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


# -- the password ---------------------------------------------------------------------------------


def test_the_hash_is_salted_scrypt_and_verifies(stored: str) -> None:
    assert re.fullmatch(r"scrypt\$[0-9a-f]{32}\$[0-9a-f]{64}", stored)
    assert PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)


def test_the_same_password_hashes_differently_each_time(stored: str) -> None:
    assert hash_password(PASSWORD).split("$")[1] != stored.split("$")[1]


def _flip_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def test_a_tampered_digest_or_salt_does_not_verify(stored: str) -> None:
    scheme, salt, digest = stored.split("$")
    assert not verify_password(PASSWORD, f"{scheme}${salt}${_flip_last(digest)}")
    assert not verify_password(PASSWORD, f"{scheme}${_flip_last(salt)}${digest}")


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "scrypt",
        "scrypt$$",
        "scrypt$zz$00",
        "scrypt$abc$00",  # odd-length hex
        "scrypt$00$11$22",
        "scrypt$00$é",  # non-ASCII: hmac.compare_digest refuses such str
    ],
)
def test_a_malformed_hash_does_not_verify(broken: str) -> None:
    assert verify_password(PASSWORD, broken) is False


def test_another_scheme_does_not_verify(stored: str) -> None:
    _, salt, digest = stored.split("$")
    assert not verify_password(PASSWORD, f"pbkdf2${salt}${digest}")
    assert not verify_password(PASSWORD, f"SCRYPT${salt}${digest}")


def test_new_passwords_are_random() -> None:
    first, second = new_password(), new_password()
    assert first != second and len(first) == 16


# -- sessions -------------------------------------------------------------------------------------


def test_a_session_is_valid_until_closed(clock: Clock) -> None:
    sessions = Sessions()
    token = sessions.open()
    assert len(token) == 43
    assert sessions.valid(token)
    assert not sessions.valid(token + "x")
    sessions.close(token)
    assert not sessions.valid(token)
    sessions.close(token)
    sessions.close(None)
    sessions.close("")


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_not_a_session(clock: Clock, token: str | None) -> None:
    sessions = Sessions()
    sessions.open()
    assert not sessions.valid(token)


def test_sessions_are_apart(clock: Clock) -> None:
    sessions = Sessions()
    first, second = sessions.open(), sessions.open()
    assert first != second
    sessions.close(first)
    assert sessions.valid(second) and not sessions.valid(first)


def test_a_session_expires_when_unused_and_use_keeps_it_alive(clock: Clock) -> None:
    sessions = Sessions()
    idle, used = sessions.open(), sessions.open()
    clock.now += SESSION_SECONDS - 1
    assert sessions.valid(used)
    clock.now += 1
    assert not sessions.valid(idle)
    assert sessions.valid(used)
    clock.now += SESSION_SECONDS
    assert not sessions.valid(used)
    clock.now -= 1  # an expired session is forgotten, not just refused
    assert not sessions.valid(used)


def test_no_token_is_kept_in_memory(clock: Clock) -> None:
    sessions = Sessions()
    token = sessions.open()
    assert token not in repr(vars(sessions))


def test_sessions_are_bounded_the_oldest_going_first(clock: Clock) -> None:
    sessions = Sessions()
    tokens = [sessions.open() for _ in range(MAX_SESSIONS + 1)]
    assert not sessions.valid(tokens[0])
    assert all(sessions.valid(token) for token in tokens[1:])


# -- the cookie -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        (b"", None),
        (b"iflow2api_session=abc", "abc"),
        (b"a=1; iflow2api_session=abc; b=2", "abc"),
        (b"a=1;iflow2api_session=abc", "abc"),
        (b"  iflow2api_session=abc  ", "abc"),
        (b"iflow2api_session=abc; iflow2api_session=def", "abc"),
        (b"iflow2api_session=a=b", "a=b"),
        (b"iflow2api_session=", ""),
        (b"iflow2api_session", ""),
        (b"xiflow2api_session=abc", None),
        (b"iflow2api_session_old=abc", None),
        (b"IFLOW2API_SESSION=abc", None),
        (b"a=1; b=2", None),
        (b";;;", None),
        (b"a=\xff; iflow2api_session=abc", "abc"),
    ],
)
def test_cookie_value(header: bytes | None, expected: str | None) -> None:
    assert cookie_value(header) == expected


def test_a_session_ends_with_the_credential_that_opened_it() -> None:
    sessions = Sessions()
    by_key = sessions.open("key:key-1")
    by_password = sessions.open("password:scrypt$aa$bb")
    live = {"key:key-1", "password:scrypt$aa$bb"}
    assert sessions.valid(by_key, live.__contains__) and sessions.valid(by_password, live.__contains__)
    live.discard("key:key-1")  # the key was revoked
    assert not sessions.valid(by_key, live.__contains__)
    assert not sessions.valid(by_key, lambda _credential: True)  # and stays ended
    assert sessions.valid(by_password, live.__contains__)
