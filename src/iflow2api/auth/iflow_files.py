"""The iFlow CLI's own files: ``settings.json`` and ``oauth_creds.json`` (protocol §5).

Reading: the CLI strips comments from settings.json when it reads it, so we do too.

Writing: these files belong to the CLI as much as to us, so every write

- merges into what is there, keeping every field we do not know, in its place;
- refuses to touch a file it cannot read (never destroy the user's settings);
- is atomic: a temporary file (mode 0600 from its first byte), fsync, ``os.replace``; a crash leaves
  the old file or the new one, never half of one;
- is serialised with other iflow2api processes by an advisory lock on ``<name>.lock``. The CLI
  takes no lock; against it the atomic replace, and a last look at the file just before replacing
  it, are what protect.

The CLI writes 2-space-indented JSON; so do we. Comments in settings.json do not survive a write
(the CLI drops them too when it saves).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson

from iflow2api.auth.oauth import Tokens, UserInfo

if sys.platform != "win32":
    import fcntl

SETTINGS_FILE = "settings.json"
OAUTH_CREDS_FILE = "oauth_creds.json"
#: What ``selectedAuthType`` says after a login with iFlow (§4.1). The iFlow CLI's word, kept as it
#: is in its files and wherever the gateway shows that setting; the gateway's own name for an
#: account made by such a login is ``state.records.OAUTH_KIND``.
OAUTH_AUTH_TYPE = "oauth-iflow"

#: Tries at reading a file that is not valid JSON before giving up: the CLI truncates, then writes,
#: so for a moment its files are empty or cut short.
_READ_ATTEMPTS = 3
_READ_RETRY_DELAY = 0.05
#: Tries at a merge that someone else's write (the CLI's) overtook; the last one writes regardless.
_MERGE_ATTEMPTS = 5


def strip_json_comments(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments outside strings, keeping every other character where
    it was, so that a JSON error's line and column point into the file as the user sees it.

    >>> strip_json_comments('{"a": "//x" // note\\n}')
    '{"a": "//x"        \\n}'
    """
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join(c if c == "\n" else " " for c in text[i:end]))
            i = end
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The file's JSON object, or None when the file does not exist.

    Raises ``ValueError`` when it exists but is not a JSON object (for example half-written), with
    a message that says where it goes wrong and never quotes the file (it holds keys).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        # The CLI truncates, then writes: an empty file is one caught mid-write, not "no settings".
        raise ValueError(f"{path.name} is empty")
    try:
        data = orjson.loads(strip_json_comments(text))
    except orjson.JSONDecodeError as exc:
        raise ValueError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# Writing


def write_json_atomic(path: Path, data: Mapping[str, Any], *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` as pretty JSON, all at once; the folder is made (0700) if missing.

    On any failure the temporary file is removed and the old file is untouched.
    """
    target = _real_target(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = _write_temp(target, data, mode)
    _replace(temp, target)


def update_json(
    path: Path, changes: Mapping[str, Any], *, remove: Iterable[str] = (), mode: int = 0o600
) -> dict[str, Any]:
    """Merge ``changes`` into the JSON object in ``path`` (created if missing), drop ``remove``.

    Every other field is kept, in its place; new ones go at the end. Returns the new content.
    Raises ``ValueError`` naming the file when it holds something other than a JSON object: then
    it is left exactly as it is.
    """
    removed = tuple(remove)

    def merge(current: dict[str, Any] | None) -> dict[str, Any]:
        new = dict(current or {})
        new.update(changes)
        for key in removed:
            new.pop(key, None)
        return new

    result = _update(path, merge, mode)
    assert result is not None  # merge never declines
    return result


def _update(
    path: Path, merge: Callable[[dict[str, Any] | None], dict[str, Any] | None], mode: int
) -> dict[str, Any] | None:
    """Read, ``merge``, write, under the lock. ``merge`` returns None to leave the file alone.

    Returns what the file holds afterwards (None when it does not exist).
    """
    target = _real_target(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(target):
        for attempt in range(1, _MERGE_ATTEMPTS + 1):
            seen = _fingerprint(target)
            current = _read_for_update(target)
            new = merge(current)
            if new is None or new == current:
                return current
            temp = _write_temp(target, new, mode)
            # The CLI takes no lock: if it wrote while we merged, merge again over its version.
            if attempt < _MERGE_ATTEMPTS and _fingerprint(target) != seen:
                _remove(temp)
                continue
            _replace(temp, target)
            return new
    raise AssertionError("unreachable")


def _real_target(path: Path) -> Path:
    # Replacing a symlink (a dotfiles manager's, say) would cut it; write where it points instead.
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<name>.lock`` next to ``path`` (where fcntl exists).

    The lock file stays behind: deleting it would let a waiter lock a file nobody else sees.
    """
    if sys.platform == "win32":
        yield
        return
    fd = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # per open file: also keeps our own threads apart
        yield
    finally:
        os.close(fd)  # releases the lock


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_for_update(path: Path) -> dict[str, Any] | None:
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            return read_json_object(path)
        except ValueError as exc:
            if attempt == _READ_ATTEMPTS:
                raise ValueError(
                    f"{path} does not hold a readable JSON object ({exc}); leaving it as it is. "
                    "Fix or remove it, then try again."
                ) from None
            time.sleep(_READ_RETRY_DELAY)  # most likely the CLI is halfway through writing it
    raise AssertionError("unreachable")


def _write_temp(path: Path, data: Mapping[str, Any], mode: int) -> Path:
    """A fully written, fsynced sibling of ``path`` holding ``data``, never readable by others."""
    payload = orjson.dumps(dict(data), option=orjson.OPT_INDENT_2) + b"\n"
    temp = path.with_name(_temp_name(path.name, secrets.token_hex(_TEMP_TOKEN_BYTES)))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, mode)  # created with `mode` (less the umask): no readable instant
    try:
        try:
            if sys.platform != "win32":
                os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(temp)
        raise
    return temp


_TEMP_TOKEN_BYTES = 6
#: A temporary file this old was left by a writer that died (``kill -9``, a power cut): a live
#: write lasts milliseconds.
STALE_TEMP_SECONDS = 60.0


def _temp_name(name: str, token: str) -> str:
    return f".{name}.{token}.tmp"


def _is_our_temp(file_name: str, names: Iterable[str]) -> bool:
    """Whether ``file_name`` is exactly what ``_write_temp`` makes for one of ``names``.

    >>> _is_our_temp(".settings.json.0123456789ab.tmp", ["settings.json"])
    True
    >>> _is_our_temp(".settings.json.tmp", ["settings.json"])
    False
    """
    width = 2 * _TEMP_TOKEN_BYTES
    for name in names:
        prefix, suffix = f".{name}.", ".tmp"
        token = file_name[len(prefix) : -len(suffix)]
        if (
            file_name.startswith(prefix)
            and file_name.endswith(suffix)
            and len(file_name) == len(prefix) + width + len(suffix)
            and all(c in "0123456789abcdef" for c in token)
        ):
            return True
    return False


def remove_stale_temps(
    folder: Path,
    names: Iterable[str] = (SETTINGS_FILE, OAUTH_CREDS_FILE),
    *,
    older_than: float = STALE_TEMP_SECONDS,
    now: float | None = None,
) -> list[Path]:
    """Delete the temporary files a killed writer of ``names`` left in ``folder``; return them.

    They hold a whole settings file (the API key with it), so they must not stay around. Only
    files named exactly as ``_write_temp`` names them go, and only once ``older_than`` seconds
    old, so a write in progress in another process is never disturbed.
    """
    wanted = tuple(names)
    cutoff = (time.time() if now is None else now) - older_than
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet (nobody logged in), or unreadable: nothing of ours to clean
        return removed
    for entry in entries:
        if not _is_our_temp(entry.name, wanted):
            continue
        try:
            if (
                not entry.is_file(follow_symlinks=False)
                or entry.stat(follow_symlinks=False).st_mtime > cutoff
            ):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def remove_stale_login_temps(iflow_home: Path) -> list[Path]:
    """``remove_stale_temps`` for the iFlow folder, and wherever its files' symlinks point (the
    temporary files are made next to the real file, see ``_real_target``)."""
    names = (SETTINGS_FILE, OAUTH_CREDS_FILE)
    folders = {iflow_home, *(_real_target(iflow_home / name).parent for name in names)}
    return [path for folder in sorted(folders) for path in remove_stale_temps(folder, names)]


def _replace(temp: Path, target: Path) -> None:
    try:
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; best effort (impossible on Windows, refused by some mounts)."""
    if sys.platform == "win32":
        return
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


# ---------------------------------------------------------------------------------------------
# The OAuth login, as the CLI stores it (§5)


def _expiry_ms(tokens: Tokens) -> int:
    return round(tokens.expires_at * 1000)


#: getUserInfo's fields in oauth_creds.json, in the CLI's order (§5).
_USER_FIELDS = ("userId", "userName", "avatar", "email", "phone")


def save_oauth_login(iflow_home: Path, tokens: Tokens, user: UserInfo, *, base_url: str) -> None:
    """Store a fresh login the way the CLI does (§4.3 step 8, §5), keeping every other field.

    ``oauth_creds.json`` (0600) gets the tokens (``expiry_date`` in epoch milliseconds) and the user
    info; a user field the server did not send is removed, so a previous account's email cannot
    linger. ``settings.json`` gets ``selectedAuthType=oauth-iflow``, ``apiKey``, ``baseUrl`` (the
    chat API's, e.g. ``https://apis.iflow.cn/v1``) and ``searchApiKey``.
    """
    user_fields = {
        "userId": user.user_id,
        "userName": user.user_name,
        "avatar": user.avatar,
        "email": user.email,
        "phone": user.phone,
    }
    update_json(
        iflow_home / OAUTH_CREDS_FILE,
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expiry_date": _expiry_ms(tokens),
            "token_type": tokens.token_type,
            "scope": tokens.scope,
            "apiKey": user.api_key,
            **{name: value for name, value in user_fields.items() if value is not None},
        },
        remove=[name for name, value in user_fields.items() if value is None],
    )
    # Second, so that a crash in between leaves a login the CLI itself would still use (§4.1).
    update_json(
        iflow_home / SETTINGS_FILE,
        {
            "selectedAuthType": OAUTH_AUTH_TYPE,
            "apiKey": user.api_key,
            "baseUrl": base_url,
            "searchApiKey": user.api_key,
        },
    )


def save_refreshed_tokens(
    iflow_home: Path, tokens: Tokens, api_key: str | None, *, previous_refresh_token: str | None = None
) -> bool:
    """Store the result of a refresh (§4.6); ``api_key`` when getUserInfo was asked again (as CPA does).

    Writes nothing, and returns False, when ``oauth_creds.json`` is gone (a logout happened
    meanwhile) or, given ``previous_refresh_token``, holds a different one (someone else refreshed
    or logged in meanwhile): a late refresh must not bring back or overwrite a login.

    A new key replaces ``apiKey`` / ``searchApiKey`` in settings.json where they hold the login's
    previous key, and ``apiKey`` whenever ``selectedAuthType`` is ``oauth-iflow``; a key the user
    put there by hand for another mode is never touched. A missing settings.json is not created.
    """
    old_key: str | None = None

    def merge_creds(current: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal old_key
        if current is None:
            return None
        if previous_refresh_token is not None and current.get("refresh_token") != previous_refresh_token:
            return None
        old_key = current.get("apiKey") if isinstance(current.get("apiKey"), str) else None
        new = dict(current)
        new["access_token"] = tokens.access_token
        if tokens.refresh_token:  # an answer without one means: keep using the old one
            new["refresh_token"] = tokens.refresh_token
        new["expiry_date"] = _expiry_ms(tokens)
        new["token_type"] = tokens.token_type
        if tokens.scope:
            new["scope"] = tokens.scope
        if api_key:
            new["apiKey"] = api_key
        return new

    written = _update(iflow_home / OAUTH_CREDS_FILE, merge_creds, 0o600)
    if written is None or written.get("access_token") != tokens.access_token:
        return False
    if api_key and api_key != old_key:

        def merge_settings(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return None
            new = dict(current)
            for name in ("apiKey", "searchApiKey"):
                if old_key is not None and current.get(name) == old_key:
                    new[name] = api_key
            if current.get("selectedAuthType") == OAUTH_AUTH_TYPE:
                new["apiKey"] = api_key  # in this mode the slot is the login's, whatever it held
            return new

        _update(iflow_home / SETTINGS_FILE, merge_settings, 0o600)
    return True


def remove_oauth_login(iflow_home: Path) -> None:
    """Log out: delete ``oauth_creds.json`` and undo what the login put in settings.json.

    ``apiKey`` / ``searchApiKey`` go only if they are the login's key, ``selectedAuthType`` only if
    it is ``oauth-iflow``; everything else stays. An unreadable oauth_creds.json is still deleted
    (it is ours), but then settings.json keeps its keys, since we cannot tell whose they are.
    """
    creds_path = _real_target(iflow_home / OAUTH_CREDS_FILE)
    with _locked(creds_path):
        try:
            creds = read_json_object(creds_path)
        except (OSError, ValueError):
            creds = None
        login_key = creds.get("apiKey") if creds else None

        def merge_settings(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return None
            new = dict(current)
            for name in ("apiKey", "searchApiKey"):
                if isinstance(login_key, str) and login_key and new.get(name) == login_key:
                    del new[name]
            if new.get("selectedAuthType") == OAUTH_AUTH_TYPE:
                del new["selectedAuthType"]
            return new

        # Settings first: if we stop halfway, the credentials are still there to log out again.
        _update(iflow_home / SETTINGS_FILE, merge_settings, 0o600)
        _remove(creds_path)
