from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from iflow2api.auth import credentials
from iflow2api.auth.credentials import CredentialSource, account_from_files, mask_secret
from iflow2api.auth.iflow_files import strip_json_comments

KEY = "sk-" + "a" * 32
OAUTH_KEY = "sk-" + "b" * 32
CREDS = {"access_token": "at", "refresh_token": "rt", "expiry_date": 1_900_000_000_000, "apiKey": OAUTH_KEY}


@pytest.mark.parametrize(
    ("settings", "creds", "kind", "key", "base_url"),
    [
        ({"selectedAuthType": "iflow", "apiKey": KEY}, None, "iflow", KEY, "https://apis.iflow.cn/v1"),
        # §4.1: in iflow mode a complete oauth_creds.json wins.
        ({"selectedAuthType": "iflow", "apiKey": KEY}, CREDS, "iflow", OAUTH_KEY, "https://apis.iflow.cn/v1"),
        (
            {"selectedAuthType": "iflow", "apiKey": KEY},
            {"apiKey": OAUTH_KEY},
            "iflow",
            KEY,
            "https://apis.iflow.cn/v1",
        ),
        (
            {"selectedAuthType": "oauth-iflow", "apiKey": KEY},
            CREDS,
            "iflow",
            OAUTH_KEY,
            "https://apis.iflow.cn/v1",
        ),
        ({"selectedAuthType": "oauth-iflow", "apiKey": KEY}, None, "iflow", KEY, "https://apis.iflow.cn/v1"),
        (
            {"selectedAuthType": "api-key", "searchApiKey": KEY},
            None,
            "iflow",
            KEY,
            "https://apis.iflow.cn/v1",
        ),
        ({"apiKey": KEY, "baseUrl": "http://h/v1/"}, None, "iflow", KEY, "http://h/v1"),
        (
            {
                "selectedAuthType": "openai-compatible",
                "apiKey": "k",
                "baseUrl": "https://x.test/v1",
                "modelName": "m",
            },
            None,
            "openai-compatible",
            "k",
            "https://x.test/v1",
        ),
    ],
)
def test_account_from_files(
    settings: dict[str, Any], creds: dict[str, Any] | None, kind: str, key: str, base_url: str
) -> None:
    account = account_from_files(settings, creds)
    assert account is not None
    assert (account.kind, account.api_key, account.base_url) == (kind, key, base_url)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"selectedAuthType": "iflow"},
        {"selectedAuthType": "openai-compatible", "apiKey": "k"},  # no baseUrl
        {"selectedAuthType": "cloud-shell", "apiKey": KEY},
    ],
)
def test_unusable_settings(settings: dict[str, Any]) -> None:
    assert account_from_files(settings, None) is None


def test_base_url_override() -> None:
    account = account_from_files({"apiKey": KEY}, None, base_url_override="http://other/v1")
    assert account is not None and account.base_url == "http://other/v1"


def test_label_and_expiry_from_oauth_creds() -> None:
    account = account_from_files({"selectedAuthType": "oauth-iflow"}, {**CREDS, "phone": "138****0000"})
    assert account is not None
    assert account.label == "138****0000"
    assert account.token_expires_at == 1_900_000_000


def test_comments_are_stripped() -> None:
    text = '{\n  // the key\n  "apiKey": "sk-//not-a-comment", /* block */ "baseUrl": "http://x"\n}'
    assert json.loads(strip_json_comments(text)) == {"apiKey": "sk-//not-a-comment", "baseUrl": "http://x"}


def test_source_rereads_on_change_and_keeps_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "RECHECK_SECONDS", 0.0)
    source = CredentialSource(tmp_path)
    assert source.current() is None
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"selectedAuthType": "iflow", "apiKey": KEY}))
    first = source.current()
    assert first is not None and first.api_key == KEY
    path.write_text("{ half written")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert source.current() == first
    path.write_text(json.dumps({"selectedAuthType": "iflow", "apiKey": OAUTH_KEY}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    second = source.current()
    assert second is not None and second.api_key == OAUTH_KEY


def test_an_empty_settings_file_is_a_write_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI truncates before writing; that moment must not switch accounts (a review find)."""
    monkeypatch.setattr(credentials, "RECHECK_SECONDS", 0.0)
    settings = {"selectedAuthType": "openai-compatible", "apiKey": "k", "baseUrl": "https://x.test/v1"}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    (tmp_path / "oauth_creds.json").write_text(json.dumps(CREDS))
    source = CredentialSource(tmp_path)
    first = source.current()
    assert first is not None and first.kind == "openai-compatible"
    (tmp_path / "settings.json").write_text("")
    assert source.current() == first


def test_files_are_looked_at_again_only_after_a_short_while(tmp_path: Path) -> None:
    source = CredentialSource(tmp_path)
    assert source.current() is None
    (tmp_path / "settings.json").write_text(json.dumps({"selectedAuthType": "iflow", "apiKey": KEY}))
    assert source.current() is None  # within RECHECK_SECONDS: no stat calls, the old answer
    time.sleep(credentials.RECHECK_SECONDS + 0.01)
    account = source.current()
    assert account is not None and account.api_key == KEY


def test_mask_secret_never_shows_the_whole_key() -> None:
    masked = mask_secret(KEY)
    assert KEY not in masked and masked.startswith("sk-") and len(masked) < 12
    assert mask_secret(None) == "(none)"
