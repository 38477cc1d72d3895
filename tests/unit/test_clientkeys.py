"""Client keys: their shape, how they are stored and recognised, and the limits they carry."""

from __future__ import annotations

import hashlib
import hmac
import string
import time
import types
from dataclasses import astuple
from datetime import UTC, datetime

import pytest

from iflow2api import clientkeys
from iflow2api.clientkeys import (
    KEY_PREFIX,
    KeyRing,
    env_records,
    hash_key,
    new_key,
    new_record,
    offered_key,
)
from iflow2api.errors import ClientAuthError, KeyLimitReached, ModelNotAllowed
from iflow2api.state.records import ClientKeyRecord

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def record(
    name: str = "alice",
    *,
    rpm: int | None = None,
    tokens_per_day: int | None = None,
    models: list[str] | None = None,
) -> ClientKeyRecord:
    return new_record(name, new_key(), rpm=rpm, tokens_per_day=tokens_per_day, models=models or ())


# -- keys and records -----------------------------------------------------------------------------


def test_new_keys_are_prefixed_long_and_random() -> None:
    keys = [new_key() for _ in range(200)]
    assert all(key.startswith("sk-i2a-") and len(key) == len("sk-i2a-") + 43 for key in keys)
    assert len(set(keys)) == len(keys)
    alphabet = {char for key in keys for char in key[len(KEY_PREFIX) :]}
    assert alphabet <= URLSAFE
    # 256 random bits spread over the whole URL-safe alphabet (a hex key would use 16 of 64).
    assert len(alphabet) == 64


def test_hash_key_is_sha256_hex_of_str_or_bytes() -> None:
    assert hash_key("sk-i2a-abc") == hashlib.sha256(b"sk-i2a-abc").hexdigest()
    assert hash_key(b"sk-i2a-abc") == hash_key("sk-i2a-abc")
    assert hash_key("sk-i2a-abd") != hash_key("sk-i2a-abc")


def test_a_new_record_keeps_only_the_hash_and_a_short_prefix() -> None:
    key = new_key()
    before = time.time()
    rec = new_record("alice", key, admin=True, rpm=10, tokens_per_day=1000, models=["glm-*"])
    assert rec.key_hash == hash_key(key)
    assert rec.prefix == key[:11] + "…" and rec.prefix.startswith("sk-i2a-")
    secret_part = key[11:]
    assert all(secret_part not in str(value) for value in astuple(rec))
    assert key not in repr(rec)
    assert rec.id.startswith("key-") and len(rec.id) == len("key-") + 8
    assert (rec.name, rec.admin, rec.rpm, rec.tokens_per_day, rec.models) == (
        "alice",
        True,
        10,
        1000,
        ("glm-*",),
    )
    assert before <= rec.created_at <= time.time()
    assert new_record("alice", key).id != rec.id


def test_env_keys_are_admins_and_hashed() -> None:
    keys = ["first-secret-key-123456", "second-secret-key-654321"]
    records = env_records(keys)
    assert [r.name for r in records] == ["env-1", "env-2"]
    assert [r.id for r in records] == ["env-1", "env-2"]
    assert [r.key_hash for r in records] == [hash_key(k) for k in keys]
    assert all(r.admin and r.rpm is None and r.tokens_per_day is None and not r.models for r in records)
    assert all(key not in repr(records) for key in keys)
    assert records[0].prefix == "firs…"


# -- presenting a key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        (b"Bearer sk-i2a-abc", None, b"sk-i2a-abc"),
        (b"bearer sk-i2a-abc", None, b"sk-i2a-abc"),
        (b"BEARER  sk-i2a-abc ", None, b"sk-i2a-abc"),
        (None, b"sk-i2a-abc", b"sk-i2a-abc"),
        (None, b" sk-i2a-abc\t", b"sk-i2a-abc"),
        (b"Basic dXNlcjpwYXNz", b"sk-i2a-abc", b"sk-i2a-abc"),
        (b"Bearer sk-i2a-abc", b"sk-i2a-other", b"sk-i2a-abc"),
        (b"Basic dXNlcjpwYXNz", None, b""),
        (None, None, b""),
        (b"", b"", b""),
    ],
)
def test_offered_key(authorization: bytes | None, x_api_key: bytes | None, expected: bytes) -> None:
    assert offered_key(authorization, x_api_key) == expected


def test_authenticate_finds_the_record_by_bearer_or_x_api_key() -> None:
    alice_key, bob_key = new_key(), new_key()
    alice, bob = new_record("alice", alice_key), new_record("bob", bob_key)
    ring = KeyRing()
    ring.load([alice, bob])
    assert ring and len(ring) == 2 and ring.records == [alice, bob]
    assert ring.authenticate(offered_key(b"Bearer " + alice_key.encode(), None)) is alice
    assert ring.authenticate(offered_key(b"bearer " + bob_key.encode(), None)) is bob
    assert ring.authenticate(offered_key(None, bob_key.encode())) is bob
    assert ring.find(alice_key.encode()) is alice


@pytest.mark.parametrize("offered", [b"sk-i2a-wrong", b"", b" "])
def test_a_wrong_or_missing_key_is_refused(offered: bytes) -> None:
    ring = KeyRing()
    ring.load([record()])
    with pytest.raises(ClientAuthError) as caught:
        ring.authenticate(offered)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"
    assert "Authorization: Bearer" in caught.value.message


def test_no_keys_at_all_refuses_every_key() -> None:
    ring = KeyRing()
    assert not ring and len(ring) == 0
    with pytest.raises(ClientAuthError):
        ring.authenticate(new_key().encode())


def test_find_compares_with_every_record_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [new_key() for _ in range(5)]
    records = [new_record(f"k{n}", key) for n, key in enumerate(keys)]
    ring = KeyRing()
    ring.load(records)
    compare = hmac.compare_digest
    calls = 0

    def counting(a: bytes, b: bytes) -> bool:
        nonlocal calls
        calls += 1
        return bool(compare(a, b))

    monkeypatch.setattr("iflow2api.clientkeys.hmac.compare_digest", counting)
    for offered, expected in [(keys[0], records[0]), (keys[4], records[4]), ("sk-i2a-nobody", None)]:
        calls = 0
        assert ring.find(offered.encode()) is expected
        assert calls == len(records)


def test_reloading_forgets_removed_keys() -> None:
    key = new_key()
    ring = KeyRing()
    ring.load([new_record("alice", key)])
    ring.load([record("bob")])
    assert ring.find(key.encode()) is None


# -- limits ---------------------------------------------------------------------------------------


def test_rpm_is_a_sliding_minute() -> None:
    ring = KeyRing()
    alice = record(rpm=2)
    ring.admit(alice, now=100)
    ring.admit(alice, now=101)
    with pytest.raises(KeyLimitReached) as caught:
        ring.admit(alice, now=130)
    assert caught.value.status == 429
    assert caught.value.code == "key_rate_limit_exceeded"
    assert caught.value.retry_after == 30
    assert "2 requests per minute" in caught.value.message
    with pytest.raises(KeyLimitReached) as caught:
        ring.admit(alice, now=159.75)
    assert caught.value.retry_after == pytest.approx(0.25)
    ring.admit(alice, now=160)  # the request at 100 is a minute old: its slot is free
    # Refused requests took no slot: only 101 and 160 are in the window.
    with pytest.raises(KeyLimitReached) as caught:
        ring.admit(alice, now=160.5)
    assert caught.value.retry_after == pytest.approx(0.5)
    ring.admit(alice, now=161)


def test_rpm_is_counted_per_key_and_absent_means_unlimited() -> None:
    ring = KeyRing()
    alice, bob, carol = record("alice", rpm=1), record("bob", rpm=1), record("carol")
    ring.admit(alice, now=0)
    ring.admit(bob, now=0)
    for n in range(100):
        ring.admit(carol, now=n / 100)
    with pytest.raises(KeyLimitReached):
        ring.admit(alice, now=1)


def test_tokens_per_day_refuses_until_the_next_utc_midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    used = {"alice": 999}
    asked: list[str] = []

    def tokens_today(name: str) -> int:
        asked.append(name)
        return used.get(name, 0)

    ring = KeyRing(tokens_today=tokens_today)
    alice = record("alice", tokens_per_day=1000)
    ring.admit(alice, now=0)
    assert asked == ["alice"]
    used["alice"] = 1000
    # 2024-05-01 21:30 UTC: two and a half hours before the UTC day ends.
    evening = datetime(2024, 5, 1, 21, 30, tzinfo=UTC).timestamp()
    monkeypatch.setattr(clientkeys, "time", types.SimpleNamespace(time=lambda: evening))
    with pytest.raises(KeyLimitReached) as caught:
        ring.admit(alice, now=0)
    assert caught.value.status == 429
    assert caught.value.retry_after == 2.5 * 3600
    assert "1,000 tokens" in caught.value.message
    ring.admit(record("bob", tokens_per_day=1000), now=0)


def test_models_are_allowed_by_shell_patterns() -> None:
    limited = record(models=["glm-*", "qwen3-coder-plus"])
    for model in ("glm-4.7", "glm-4.6", "qwen3-coder-plus"):
        KeyRing.check_model(limited, model)
    for model in ("qwen3-max", "GLM-4.7", "deepseek-v3", "qwen3-coder-plus-2"):
        with pytest.raises(ModelNotAllowed) as caught:
            KeyRing.check_model(limited, model)
        assert caught.value.status == 403
        assert caught.value.code == "model_not_allowed"
        assert caught.value.param == "model"
        assert f"'{model}'" in caught.value.message and "glm-*, qwen3-coder-plus" in caught.value.message


def test_keys_without_model_patterns_and_no_key_may_use_any_model() -> None:
    KeyRing.check_model(record(), "anything")
    KeyRing.check_model(None, "anything")
