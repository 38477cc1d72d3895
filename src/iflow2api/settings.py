"""The gateway's settings: one frozen object, one table, one precedence order.

Precedence, lowest first: the defaults in ``SETTINGS`` < the config file (TOML) < ``IFLOW2API_*``
environment variables < command-line flags. ``IFLOW_HOME`` keeps the iFlow CLI's own name, because
the CLI honours it too and both must agree on where ``settings.json`` lives.

>>> s = load(env={"IFLOW2API_PORT": "9000"}, flags={"host": "0.0.0.0"}, config_path=None)
>>> (s.host, s.port)
('0.0.0.0', 9000)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iflow2api.state.records import AccountRecord


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the setting and where it came from."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _optional_bool(text: str) -> bool | None:
    return None if text.strip().lower() in {"", "auto"} else _bool(text)


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in {"", "auto"}:
        return None
    return _non_negative_int(text)


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError("expected debug, info, warning or error")
    return level


def _key_list(text: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    if any(len(key) < 8 for key in keys):
        raise ValueError("each key needs at least 8 characters")
    return keys


def _aliases(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        pattern, sep, target = item.partition("=")
        if not sep or not pattern.strip() or not target.strip():
            raise ValueError("expected pattern=model pairs, e.g. claude-*sonnet*=glm-4.7")
        pairs.append((pattern.strip(), target.strip()))
    return tuple(pairs)


def _provider_options(text: str) -> tuple[tuple[str, str, str], ...]:
    """``profile.option=value`` pairs, e.g. ``moonshot.reasoning_filler=``; each profile reads its own
    (``providers.base.Profile.options``), and an unknown one stops the start."""
    options = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        profile, dot, option = name.strip().partition(".")
        if not sep or not dot or not profile or not option:
            raise ValueError("expected profile.option=value pairs, e.g. moonshot.reasoning_filler=")
        options.append((profile, option, value.strip()))
    from iflow2api.providers import Profiles  # here: the profiles import much that imports settings

    Profiles(thinking_default=None, options=options)  # a ValueError names what is wrong
    return tuple(options)


def _provider_name(text: str) -> str:
    """A provider profile's name (``iflow2api.providers``), or empty: chosen by the base URL's host."""
    name = text.strip()
    if not name:
        return ""
    from iflow2api import providers  # here: the profiles import much that imports settings

    if name == providers.IFLOW:
        raise ValueError("iflow is the profile of iFlow accounts, not of an openai-compatible one")
    return providers.check_name(name)  # a ValueError lists the names


def _strategy(text: str) -> str:
    strategy = text.strip().lower()
    if strategy not in {"round-robin", "fill-first"}:
        raise ValueError("expected round-robin or fill-first")
    return strategy


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _database_url(text: str) -> str:
    text = text.strip()
    if text and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql:// URL (empty: SQLite in the data dir)")
    return text


def _redis_url(text: str) -> str:
    text = text.strip()
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return text


def _url(text: str) -> str:
    text = text.strip()
    if text and not text.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return text.rstrip("/")


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    parse: Callable[[str], Any]
    help: str
    env: str = ""

    @property
    def env_name(self) -> str:
        return self.env or "IFLOW2API_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _home(*parts: str) -> str:
    return str(Path("~", *parts))


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", str, "Address to listen on. Anything but loopback needs client API keys."),
    Setting("port", "8000", _port, "Port to listen on (0 picks a free one and logs it)."),
    Setting(
        "upstream_base_url",
        "",
        _url,
        "Upstream base URL, e.g. https://apis.iflow.cn/v1. Overrides `baseUrl` from the iFlow settings.",
    ),
    Setting(
        "upstream_provider",
        "",
        _provider_name,
        "The provider profile (e.g. deepseek) of the openai-compatible account in the iFlow CLI's "
        "settings.json. Empty: chosen by its base URL's host.",
    ),
    Setting(
        "iflow_home", _home(".iflow"), _path, "The iFlow CLI folder holding settings.json.", "IFLOW_HOME"
    ),
    Setting("data_dir", _home(".iflow2api"), _path, "iflow2api's own state folder."),
    Setting("config", "", _path, "Config file (TOML). Default: config.toml in the data dir, if present."),
    Setting(
        "api_keys",
        "",
        _key_list,
        "Comma-separated keys clients must send (Bearer or x-api-key). Required to listen beyond loopback.",
    ),
    Setting("log_level", "info", _log_level, "debug, info, warning or error."),
    Setting(
        "concurrency",
        "auto",
        _optional_int,
        "Requests in flight per upstream account. auto: 1 for iFlow (it allows one), "
        "unlimited for openai-compatible. 0 means unlimited.",
    ),
    Setting("queue_size", "64", _non_negative_int, "Requests that may wait per account; beyond it: 429."),
    Setting("queue_timeout", "300", _positive_float, "Seconds a request may wait in the queue before a 429."),
    Setting("max_body_bytes", str(32 * 1024 * 1024), _non_negative_int, "Largest request body; larger: 413."),
    Setting(
        "responses_store_max_bytes",
        str(64 * 1024 * 1024),
        _non_negative_int,
        "Bytes of stored Responses kept for previous_response_id, in memory and on disk; the "
        "oldest go first. 0 means no byte limit (the count limits stay).",
    ),
    Setting(
        "max_upstream_body",
        str(64 * 1024 * 1024),
        _positive_int,
        "Most bytes read of one upstream answer, decoded (gzip inflated), streamed or not; beyond: 502. "
        "One line of an event stream is capped at 16 MiB, or at this if smaller.",
    ),
    Setting(
        "request_read_timeout",
        "60",
        _positive_float,
        "Seconds a client may take to send a request's headers, and may go silent while sending its "
        "body; then it gets a 408 (or, before its headers are in, the connection is closed).",
    ),
    Setting("connect_timeout", "10", _positive_float, "Seconds to connect to the upstream."),
    Setting(
        "first_byte_timeout",
        "600",
        _positive_float,
        "Seconds to wait for the upstream's answer to start (a non-stream answer comes whole).",
    ),
    Setting(
        "stream_idle_timeout",
        "600",
        _positive_float,
        "Seconds a flowing stream may stay silent before it is cut. There is no overall deadline.",
    ),
    Setting(
        "thinking_default",
        "auto",
        _optional_bool,
        "Thinking when the client states no intent (reasoning_effort, Anthropic thinking): true or "
        "false forces it on every provider that has a switch; auto leaves it to each host's "
        "default (iFlow: on, as the iFlow CLI).",
    ),
    Setting(
        "models_cache_ttl", "300", _positive_float, "Seconds an openai-compatible /models list is cached."
    ),
    Setting(
        "model_aliases",
        "",
        _aliases,
        "Model names to rewrite, as pattern=model pairs (shell-style patterns), e.g. "
        "claude-*sonnet*=glm-5. Tried before the built-in Claude aliases.",
    ),
    Setting(
        "provider_options",
        "",
        _provider_options,
        "Per provider profile, what its host's documents leave open, as profile.option=value pairs "
        "(e.g. moonshot.reasoning_filler=); each profile's options are listed in docs/providers.md.",
    ),
    Setting(
        "oauth_base_url",
        "https://iflow.cn",
        _url,
        "The iFlow OAuth host (login page, token and user-info endpoints).",
    ),
    Setting(
        "open_browser",
        "true",
        _bool,
        "Open the login page in a browser when the gateway starts on a desktop without credentials "
        "(--no-browser turns it off).",
    ),
    Setting(
        "refresh_lead",
        "86400",
        _positive_float,
        "Refresh the OAuth token this many seconds before it expires (the iFlow CLI: one day).",
    ),
    Setting(
        "strategy",
        "round-robin",
        _strategy,
        "How requests are spread over the accounts: round-robin, or fill-first (the first listed "
        "account until it is busy or cooling down, which keeps its caches warm).",
    ),
    Setting(
        "session_affinity",
        "false",
        _bool,
        "Send a conversation's requests to the account that served it before, while that one is free.",
    ),
    Setting(
        "max_attempts",
        "3",
        _positive_int,
        "Upstream attempts per request, on different accounts, before its failure reaches the client.",
    ),
    Setting(
        "cooldown_base",
        "2",
        _positive_float,
        "Seconds an account rests after its first rate limit (429, 449); doubles with each one in a row.",
    ),
    Setting(
        "cooldown_max", "1800", _positive_float, "The longest a rate-limit cooldown grows to, in seconds."
    ),
    Setting(
        "error_cooldown",
        "15",
        _non_negative_float,
        "Seconds an account rests after a server error or a network failure.",
    ),
    Setting(
        "max_cooldown_wait",
        "30",
        _non_negative_float,
        "Seconds a request may wait for the end of a rest the upstream asked for (its Retry-After) "
        "when every account rests that way; a longer rest is a 429 with that Retry-After.",
    ),
    Setting(
        "keepalive_interval",
        "10",
        _non_negative_float,
        "Seconds between SSE comment pings while a streaming request waits for its first token "
        "(queue, failover, a slow upstream). 0 turns them off.",
    ),
    Setting("record_usage", "true", _bool, "Record every request (no content) in the usage database."),
    Setting(
        "usage_retention_days",
        "90",
        _non_negative_float,
        "Days usage records are kept; 0 keeps them forever.",
    ),
    Setting(
        "shutdown_grace",
        # Fits inside `docker stop`'s 10 s (with uvicorn's extra second), so the error events go out.
        "8",
        _non_negative_float,
        "Seconds a stop (SIGTERM, Ctrl+C) lets open requests finish; those still open then end "
        "with a 503 gateway_shutting_down (an error event, in a stream). A second signal ends them at once.",
    ),
    Setting(
        "database_url",
        "",
        _database_url,
        "A postgresql:// URL: accounts, client keys, settings, usage and memories in PostgreSQL, "
        "shared by every instance. Empty: SQLite in the data dir.",
    ),
    Setting(
        "redis_url",
        "",
        _redis_url,
        "A redis:// URL for the coordination of several instances (leases, health, key limits, "
        "locks). Needed by --workers above 1 and by several instances on one database_url.",
    ),
    Setting(
        "lease_ttl",
        "30",
        _positive_float,
        "Seconds an account's lease outlives its instance (renewed while a request runs): how soon "
        "the slots of a killed instance are free again. With redis_url only.",
    ),
    Setting(
        "workers",
        "1",
        _positive_int,
        "Processes serving one port (iflow2api serve only); above 1 needs redis_url.",
    ),
    Setting(
        "instance_name",
        "",
        str,
        "This instance's name among several (the instance label of /metrics). Empty: host name, process id.",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    upstream_base_url: str
    upstream_provider: str
    iflow_home: Path
    data_dir: Path
    config: Path
    api_keys: tuple[str, ...]
    log_level: str
    concurrency: int | None
    queue_size: int
    queue_timeout: float
    max_body_bytes: int
    responses_store_max_bytes: int
    max_upstream_body: int
    request_read_timeout: float
    connect_timeout: float
    first_byte_timeout: float
    stream_idle_timeout: float
    thinking_default: bool | None
    models_cache_ttl: float
    model_aliases: tuple[tuple[str, str], ...]
    provider_options: tuple[tuple[str, str, str], ...]
    oauth_base_url: str
    open_browser: bool
    refresh_lead: float
    strategy: str
    session_affinity: bool
    max_attempts: int
    cooldown_base: float
    cooldown_max: float
    error_cooldown: float
    max_cooldown_wait: float
    keepalive_interval: float
    record_usage: bool
    usage_retention_days: float
    shutdown_grace: float
    database_url: str
    redis_url: str
    lease_ttl: float
    workers: int
    instance_name: str
    #: Upstream accounts from the config file's ``[[accounts]]`` tables (read-only elsewhere).
    accounts: tuple[AccountRecord, ...] = ()

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse(setting: Setting, raw: object, source: str) -> Any:
    if isinstance(raw, bool):
        raw = str(raw).lower()
    elif isinstance(raw, list):  # a TOML array, e.g. api_keys = ["…", "…"]
        raw = ",".join(str(item) for item in raw)
    elif isinstance(raw, dict):  # a TOML table, e.g. [model_aliases] gpt-4o = "glm-4.7"
        # [provider_options.moonshot] reasoning_filler = "" is moonshot.reasoning_filler=
        raw = ",".join(
            ",".join(f"{name}.{key}={_toml_text(item)}" for key, item in value.items())
            if isinstance(value, dict)
            else f"{name}={value}"
            for name, value in raw.items()
        )
    try:
        return setting.parse(str(raw))
    except ValueError as exc:
        raise SettingsError(f"{setting.name} ({source}): {raw!r} is not valid: {exc}") from None


def _toml_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_BY_NAME) - {"accounts"})
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s): {', '.join(unknown)}")
    return data


def load(
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    config_path: Path | bool | None = True,
) -> Settings:
    """Build the settings from every source. ``config_path=True`` finds the file the usual way."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    values: dict[str, Any] = {}
    sources: dict[str, tuple[object, str]] = {s.name: (s.default, "default") for s in SETTINGS}

    for setting in SETTINGS:
        if setting.env_name in env:
            sources[setting.name] = (env[setting.env_name], setting.env_name)
        if setting.name in flags:
            sources[setting.name] = (flags[setting.name], setting.flag)

    if config_path is True:
        explicit = sources["config"]
        if explicit[1] != "default" and str(explicit[0]):
            config_file: Path | None = _path(str(explicit[0]))
        else:
            data_dir = _parse(_BY_NAME["data_dir"], *sources["data_dir"])
            candidate = data_dir / "config.toml"
            config_file = candidate if candidate.is_file() else None
    else:
        config_file = config_path or None

    accounts: tuple[AccountRecord, ...] = ()
    if config_file is not None:
        config = _read_config(config_file)
        accounts = config_accounts(config.pop("accounts", []), f"config file {config_file}")
        for name, raw in config.items():
            if sources[name][1] == "default":
                sources[name] = (raw, f"config file {config_file}")

    for name, (raw, source) in sources.items():
        values[name] = _parse(_BY_NAME[name], raw, source)
    values["config"] = config_file or Path("")
    return Settings(**values, accounts=accounts)


_ACCOUNT_KINDS = {"iflow-key", "openai-compatible"}
_ACCOUNT_FIELDS = {
    "id",
    "label",
    "kind",
    "provider",
    "base_url",
    "api_key",
    "models",
    "enabled",
    "concurrency",
}


def config_accounts(tables: object, source: str) -> tuple[AccountRecord, ...]:
    """The ``[[accounts]]`` tables of a config file, as pool accounts with ids of their own.

    >>> [a.id for a in config_accounts([{"label": "Work", "kind": "iflow-key", "api_key": "sk-1"}], "t")]
    ['cfg-work']
    """
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SettingsError(f"accounts ({source}): expected [[accounts]] tables")
    records: list[AccountRecord] = []
    for number, table in enumerate(tables, 1):
        where = f"accounts #{number} ({source})"
        unknown = sorted(set(table) - _ACCOUNT_FIELDS)
        if unknown:
            raise SettingsError(f"{where}: unknown field(s): {', '.join(unknown)}")
        provider = table.get("provider")
        # Naming a provider makes an OpenAI-compatible account of its host.
        kind = table.get("kind", "iflow-key" if provider is None else "openai-compatible")
        label = table.get("label")
        key = table.get("api_key")
        if kind not in _ACCOUNT_KINDS:
            raise SettingsError(f"{where}: kind must be iflow-key or openai-compatible, not {kind!r}")
        if not isinstance(label, str) or not label.strip():
            raise SettingsError(f"{where}: give it a label")
        if not isinstance(key, str) or not key.strip():
            raise SettingsError(f"{where}: api_key is missing")
        if provider is not None:
            from iflow2api import providers  # here: the profiles import much that imports settings

            if kind != "openai-compatible" or not isinstance(provider, str) or provider == providers.IFLOW:
                raise SettingsError(
                    f"{where}: provider names the profile of an openai-compatible account (not iflow: "
                    'an iFlow key is kind = "iflow-key")'
                )
            try:
                profile = providers.PROFILES[providers.check_name(provider)]
            except ValueError as exc:
                raise SettingsError(f"{where}: {exc}") from None
            # Without a base URL of its own, the provider's public one.
            table = {"base_url": profile.base_url, **table}
        base_url = table.get("base_url", "")
        try:
            base_url = _url(str(base_url))
        except ValueError as exc:
            raise SettingsError(f"{where}: base_url {base_url!r}: {exc}") from None
        if kind == "openai-compatible" and not base_url:
            raise SettingsError(f"{where}: an openai-compatible account needs a base_url")
        models = table.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise SettingsError(f"{where}: models must be a list of model names")
        concurrency = table.get("concurrency")
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 0):
            raise SettingsError(f"{where}: concurrency must be a whole number, 0 for unlimited")
        slug = "".join(c if c.isalnum() else "-" for c in label.strip().lower()).strip("-")
        records.append(
            AccountRecord(
                id=str(table.get("id") or f"cfg-{slug or number}"),
                label=label.strip(),
                kind=kind,
                base_url=base_url,
                secret=key.strip(),
                models=tuple(models),
                enabled=bool(table.get("enabled", True)),
                concurrency=concurrency,
                provider=provider,
            )
        )
    ids = [record.id for record in records]
    if len(set(ids)) != len(ids):
        raise SettingsError(f"accounts ({source}): two accounts have the same id or label")
    return tuple(records)
