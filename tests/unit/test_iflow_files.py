"""Writing the iFlow CLI's files (protocol §5): atomic, 0600, unknown fields kept, never destroyed."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from iflow2api.auth import iflow_files
from iflow2api.auth.iflow_files import (
    read_json_object,
    remove_oauth_login,
    save_oauth_login,
    save_refreshed_tokens,
    update_json,
    write_json_atomic,
)
from iflow2api.auth.oauth import Tokens, UserInfo

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and flock")

OLD_KEY = "sk-" + "0" * 32
NEW_KEY = "sk-" + "1" * 32
TOKENS = Tokens("at-1", "rt-1", 1_900_000_000.5, "bearer", "read")
USER = UserInfo(NEW_KEY, "42", "Wang", "w@example.com", "138****0000", "https://img/a.png")
CHAT_BASE = "https://apis.iflow.cn/v1"
UNRELATED = {
    "theme": "GitHub",
    "mcpServers": {"fs": {"command": "npx", "args": ["-y", "fs"]}},
    "modelName": "glm-4.7",
}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------
# write_json_atomic


@posix_only
def test_write_is_pretty_json_and_0600_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "new" / "oauth_creds.json"
    modes: list[int] = []
    real_replace = os.replace

    def checking_replace(src: Any, dst: Any) -> None:
        modes.append(mode_of(Path(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", checking_replace)
    old_umask = os.umask(0)  # the most permissive umask must not matter
    try:
        write_json_atomic(target, {"b": 1, "a": {"x": [1, 2]}, "c": "中文"})
    finally:
        os.umask(old_umask)
    assert modes == [0o600]
    assert mode_of(target) == 0o600
    assert mode_of(target.parent) == 0o700
    # JSON.stringify(data, null, 2) + "\n": key order kept, UTF-8 as is.
    assert target.read_text(encoding="utf-8") == (
        '{\n  "b": 1,\n  "a": {\n    "x": [\n      1,\n      2\n    ]\n  },\n  "c": "中文"\n}\n'
    )


@posix_only
def test_temp_file_is_created_exclusive_with_the_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if str(path).endswith(".tmp"):
            opened.append((flags, mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    write_json_atomic(tmp_path / "settings.json", {"a": 1}, mode=0o640)
    [(flags, mode)] = opened
    assert flags & os.O_EXCL and flags & os.O_CREAT and mode == 0o640
    assert mode_of(tmp_path / "settings.json") == 0o640


def test_a_crash_before_the_replace_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"apiKey": "old"}')

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk on fire"):
        write_json_atomic(target, {"apiKey": "new"})
    with pytest.raises(OSError, match="disk on fire"):
        update_json(target, {"apiKey": "new"})
    assert target.read_text() == '{"apiKey": "old"}'
    assert leftovers(tmp_path) == []


def test_a_crash_while_writing_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"apiKey": "old"}')

    def crash(fd: int) -> None:
        raise OSError("no space left")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="no space left"):
        write_json_atomic(target, {"apiKey": "new"})
    assert target.read_text() == '{"apiKey": "old"}'
    assert leftovers(tmp_path) == []


def test_unserialisable_data_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text("{}")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert target.read_text() == "{}" and leftovers(tmp_path) == []


@posix_only
def test_a_symlinked_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text('{"theme": "x"}')
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    update_json(link, {"apiKey": "k"})
    assert link.is_symlink()
    assert json.loads(real.read_text()) == {"theme": "x", "apiKey": "k"}


# ---------------------------------------------------------------------------------------------
# update_json


def test_update_keeps_unknown_fields_in_place(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text(json.dumps({"theme": "dark", "apiKey": "old", "zeta": [1], "searchApiKey": "s"}))
    result = update_json(target, {"apiKey": "new", "baseUrl": "u"}, remove=["searchApiKey", "absent"])
    assert list(result.items()) == [("theme", "dark"), ("apiKey", "new"), ("zeta", [1]), ("baseUrl", "u")]
    assert json.loads(target.read_text()) == result
    assert list(json.loads(target.read_text())) == list(result)


def test_update_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "home" / "settings.json"
    assert update_json(target, {"a": 1}) == {"a": 1}
    assert read_json_object(target) == {"a": 1}


def test_update_tolerates_comments(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{\n  // my theme\n  "theme": "dark", /* the key */ "apiKey": "sk-//x"\n}\n')
    assert update_json(target, {"modelName": "m"}) == {"theme": "dark", "apiKey": "sk-//x", "modelName": "m"}


def test_an_update_that_changes_nothing_does_not_write(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"a": 1}')  # not our formatting: a write would show
    update_json(target, {"a": 1}, remove=["b"])
    assert target.read_text() == '{"a": 1}'


@pytest.mark.parametrize("content", ["{ half written", "", "[1, 2]", '"text"'])
def test_unreadable_json_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    monkeypatch.setattr(iflow_files, "_READ_RETRY_DELAY", 0.0)
    target = tmp_path / "settings.json"
    target.write_text(content)
    with pytest.raises(ValueError, match=r"settings\.json"):
        update_json(target, {"apiKey": "k"})
    assert target.read_text() == content
    assert leftovers(tmp_path) == []


def test_a_file_caught_mid_write_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI truncates, then writes: an empty file a moment later holds the settings."""
    target = tmp_path / "settings.json"
    target.write_text("")
    # The retry's pause is when the CLI finishes its write.
    monkeypatch.setattr(
        "iflow2api.auth.iflow_files.time.sleep", lambda _: target.write_text('{"theme": "dark"}')
    )
    assert update_json(target, {"apiKey": "k"}) == {"theme": "dark", "apiKey": "k"}


def test_a_write_by_the_cli_during_the_merge_is_merged_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI takes no lock: if it writes between our read and our replace, we merge again."""
    target = tmp_path / "settings.json"
    target.write_text('{"theme": "dark"}')
    real_write_temp = iflow_files._write_temp
    calls = 0

    def cli_writes_meanwhile(path: Path, data: Any, mode: int) -> Path:
        nonlocal calls
        calls += 1
        if calls == 1:
            target.write_text('{"theme": "dark", "modelName": "from-the-cli"}')
        return real_write_temp(path, data, mode)

    monkeypatch.setattr(iflow_files, "_write_temp", cli_writes_meanwhile)
    update_json(target, {"apiKey": "k"})
    assert calls == 2
    assert json.loads(target.read_text()) == {"theme": "dark", "modelName": "from-the-cli", "apiKey": "k"}
    assert leftovers(tmp_path) == []


def test_threads_lose_no_update(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"theme": "dark"}')

    def worker(name: str) -> None:
        for i in range(25):
            update_json(target, {f"{name}-{i}": i})

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    content = read_json_object(target)
    assert content is not None and len(content) == 1 + 4 * 25


def _process_worker(path: str, name: str, count: int) -> None:
    for i in range(count):
        update_json(Path(path), {f"{name}-{i}": i})


@posix_only
def test_processes_lose_no_update(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"theme": "dark"}')
    context = multiprocessing.get_context("spawn")  # no fork of a threaded test runner
    processes = [context.Process(target=_process_worker, args=(str(target), f"p{n}", 50)) for n in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    content = read_json_object(target)
    assert content is not None
    assert content == {"theme": "dark", **{f"p{n}-{i}": i for n in range(2) for i in range(50)}}


# ---------------------------------------------------------------------------------------------
# The OAuth login in the CLI's shapes


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


def read(path: Path) -> Any:
    return json.loads(path.read_text())


@posix_only
def test_save_oauth_login_writes_the_cli_shapes(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", {"selectedAuthType": "iflow", "apiKey": OLD_KEY, **UNRELATED})
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    creds = read(tmp_path / "oauth_creds.json")
    assert creds == {
        "access_token": "at-1",
        "refresh_token": "rt-1",
        "expiry_date": 1_900_000_000_500,
        "token_type": "bearer",
        "scope": "read",
        "apiKey": NEW_KEY,
        "userId": "42",
        "userName": "Wang",
        "avatar": "https://img/a.png",
        "email": "w@example.com",
        "phone": "138****0000",
    }
    assert isinstance(creds["expiry_date"], int)
    assert mode_of(tmp_path / "oauth_creds.json") == 0o600
    assert read(tmp_path / "settings.json") == {
        "selectedAuthType": "oauth-iflow",
        "apiKey": NEW_KEY,
        **UNRELATED,
        "baseUrl": CHAT_BASE,
        "searchApiKey": NEW_KEY,
    }


def test_a_new_login_keeps_unknown_fields_but_not_the_previous_user(tmp_path: Path) -> None:
    write(tmp_path / "oauth_creds.json", {"email": "previous@example.com", "custom": 1, "apiKey": OLD_KEY})
    save_oauth_login(tmp_path, TOKENS, UserInfo(NEW_KEY, phone="139"), base_url=CHAT_BASE)
    creds = read(tmp_path / "oauth_creds.json")
    assert creds["custom"] == 1 and creds["phone"] == "139" and creds["apiKey"] == NEW_KEY
    assert "email" not in creds and "userName" not in creds
    assert read(tmp_path / "settings.json")["selectedAuthType"] == "oauth-iflow"


def test_save_refreshed_tokens_updates_the_token_fields(tmp_path: Path) -> None:
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    settings_before = read(tmp_path / "settings.json")
    refreshed = Tokens("at-2", "", 1_900_100_000.0, "bearer")  # no new refresh token, no scope
    assert save_refreshed_tokens(tmp_path, refreshed, None)
    creds = read(tmp_path / "oauth_creds.json")
    assert (creds["access_token"], creds["refresh_token"], creds["expiry_date"]) == (
        "at-2",
        "rt-1",
        1_900_100_000_000,
    )
    assert (creds["scope"], creds["apiKey"], creds["email"]) == ("read", NEW_KEY, "w@example.com")
    assert read(tmp_path / "settings.json") == settings_before


def test_a_refresh_with_a_new_key_updates_both_files(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", UNRELATED)
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    newer = "sk-" + "2" * 32
    assert save_refreshed_tokens(tmp_path, Tokens("at-2", "rt-2", 1_900_100_000.0), newer)
    assert read(tmp_path / "oauth_creds.json")["apiKey"] == newer
    assert read(tmp_path / "oauth_creds.json")["refresh_token"] == "rt-2"
    settings = read(tmp_path / "settings.json")
    assert (settings["apiKey"], settings["searchApiKey"]) == (newer, newer)
    assert {k: settings[k] for k in UNRELATED} == UNRELATED


def test_a_new_key_leaves_a_hand_set_settings_key_alone(tmp_path: Path) -> None:
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    update_json(tmp_path / "settings.json", {"selectedAuthType": "openai-compatible", "apiKey": "mine"})
    assert save_refreshed_tokens(tmp_path, Tokens("at-2", "rt-2", 1.0), "sk-" + "2" * 32)
    settings = read(tmp_path / "settings.json")
    assert settings["apiKey"] == "mine" and settings["searchApiKey"] == "sk-" + "2" * 32


def test_a_new_key_fills_the_oauth_slot_even_when_the_old_key_is_unknown(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", {"selectedAuthType": "oauth-iflow", "apiKey": "stale", "theme": "x"})
    write(tmp_path / "oauth_creds.json", {"access_token": "a", "refresh_token": "r", "expiry_date": 1})
    assert save_refreshed_tokens(tmp_path, Tokens("at-2", "rt-2", 1.0), NEW_KEY)
    assert read(tmp_path / "settings.json") == {
        "selectedAuthType": "oauth-iflow",
        "apiKey": NEW_KEY,
        "theme": "x",
    }


def test_a_late_refresh_does_not_bring_a_login_back(tmp_path: Path) -> None:
    assert not save_refreshed_tokens(tmp_path, Tokens("at-2", "rt-2", 1.0), None)
    assert not (tmp_path / "oauth_creds.json").exists()
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    # Someone refreshed (or logged in) meanwhile: the file no longer holds our refresh token.
    assert not save_refreshed_tokens(
        tmp_path, Tokens("at-3", "rt-3", 1.0), None, previous_refresh_token="rt-0"
    )
    assert read(tmp_path / "oauth_creds.json")["access_token"] == "at-1"
    assert save_refreshed_tokens(tmp_path, Tokens("at-3", "rt-3", 1.0), None, previous_refresh_token="rt-1")
    assert read(tmp_path / "oauth_creds.json")["access_token"] == "at-3"


def test_remove_oauth_login_undoes_only_the_login(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", UNRELATED)
    save_oauth_login(tmp_path, TOKENS, USER, base_url=CHAT_BASE)
    remove_oauth_login(tmp_path)
    assert not (tmp_path / "oauth_creds.json").exists()
    assert read(tmp_path / "settings.json") == {**UNRELATED, "baseUrl": CHAT_BASE}


def test_remove_oauth_login_keeps_keys_that_are_not_the_logins(tmp_path: Path) -> None:
    write(
        tmp_path / "settings.json", {"selectedAuthType": "iflow", "apiKey": OLD_KEY, "searchApiKey": NEW_KEY}
    )
    write(tmp_path / "oauth_creds.json", {"access_token": "a", "apiKey": NEW_KEY})
    remove_oauth_login(tmp_path)
    assert read(tmp_path / "settings.json") == {"selectedAuthType": "iflow", "apiKey": OLD_KEY}
    assert not (tmp_path / "oauth_creds.json").exists()


def test_remove_oauth_login_with_nothing_there(tmp_path: Path) -> None:
    remove_oauth_login(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_remove_oauth_login_with_unreadable_creds_keeps_settings_keys(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", {"selectedAuthType": "oauth-iflow", "apiKey": NEW_KEY, "theme": "x"})
    (tmp_path / "oauth_creds.json").write_text("{ torn")
    remove_oauth_login(tmp_path)
    assert read(tmp_path / "settings.json") == {"apiKey": NEW_KEY, "theme": "x"}
    assert not (tmp_path / "oauth_creds.json").exists()


def test_stale_temps_go_and_everything_else_stays(tmp_path: Path) -> None:
    now = 1_000_000.0
    stale = [tmp_path / ".settings.json.00112233aabb.tmp", tmp_path / ".oauth_creds.json.ffeeddccbbaa.tmp"]
    kept = [
        tmp_path / ".settings.json.00112233aabb.tmp.keep",
        tmp_path / ".settings.json.00112233AABB.tmp",
        tmp_path / ".settings.json.0011.tmp",
        tmp_path / ".mine.json.00112233aabb.tmp",
        tmp_path / "settings.json",
    ]
    for path in [*stale, *kept]:
        path.write_text("{}")
        os.utime(path, (now - 61, now - 61))
    young = tmp_path / ".settings.json.445566778899.tmp"
    young.write_text("{}")
    os.utime(young, (now - 5, now - 5))

    removed = iflow_files.remove_stale_temps(tmp_path, now=now)

    assert sorted(removed) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in [*kept, young])
    assert iflow_files.remove_stale_temps(tmp_path / "missing", now=now) == []


@posix_only
def test_stale_temps_beside_a_symlinked_settings_file_go_too(tmp_path: Path) -> None:
    home, dotfiles = tmp_path / "home", tmp_path / "dotfiles"
    home.mkdir()
    dotfiles.mkdir()
    (dotfiles / "settings.json").write_text("{}")
    (home / "settings.json").symlink_to(dotfiles / "settings.json")
    stale = [dotfiles / ".settings.json.00112233aabb.tmp", home / ".oauth_creds.json.00112233aabb.tmp"]
    for path in stale:
        path.write_text("{}")
        os.utime(path, (0, 0))

    removed = iflow_files.remove_stale_login_temps(home)

    assert sorted(removed) == sorted(stale)
    assert (dotfiles / "settings.json").exists()
