from __future__ import annotations

from pathlib import Path

import pytest

from iflow2api.settings import SettingsError, load


def test_defaults(tmp_path: Path) -> None:
    settings = load(env={"IFLOW2API_DATA_DIR": str(tmp_path)}, flags={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.concurrency is None and settings.thinking_default is None
    assert settings.iflow_home == Path("~/.iflow").expanduser()


def test_precedence_default_config_env_flag(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('port = 7001\nhost = "127.0.0.2"\nlog_level = "debug"\nqueue_size = 3\n')
    env = {"IFLOW2API_DATA_DIR": str(tmp_path), "IFLOW2API_PORT": "7002", "IFLOW2API_HOST": "127.0.0.3"}
    settings = load(env=env, flags={"port": "7003"})
    assert settings.port == 7003  # flag beats env
    assert settings.host == "127.0.0.3"  # env beats config
    assert settings.log_level == "debug"  # config beats default
    assert settings.queue_size == 3
    assert settings.config == config


def test_iflow_home_uses_the_clis_variable(tmp_path: Path) -> None:
    assert load(env={"IFLOW_HOME": str(tmp_path)}, config_path=None).iflow_home == tmp_path


def test_explicit_config_path_and_toml_list(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('api_keys = ["key-aaaaaaaa", "key-bbbbbbbb"]\nconcurrency = 0\n')
    settings = load(env={"IFLOW2API_CONFIG": str(config)})
    assert settings.api_keys == ("key-aaaaaaaa", "key-bbbbbbbb")
    assert settings.concurrency == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IFLOW2API_PORT": "eighty"}, "port (IFLOW2API_PORT)"),
        ({"IFLOW2API_PORT": "70000"}, "port"),
        ({"IFLOW2API_LOG_LEVEL": "loud"}, "log_level"),
        ({"IFLOW2API_THINKING_DEFAULT": "maybe"}, "thinking_default"),
        ({"IFLOW2API_UPSTREAM_BASE_URL": "ftp://x"}, "upstream_base_url"),
        ({"IFLOW2API_API_KEYS": "short"}, "api_keys"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load(env=env, config_path=None)


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load(env={"IFLOW2API_CONFIG": str(config)})


def test_accounts_and_aliases_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[model_aliases]\n"gpt-4o" = "glm-4.7"\n"claude-*" = "glm-5"\n\n'
        '[[accounts]]\nlabel = "Team Key"\napi_key = "sk-team"\n\n'
        '[[accounts]]\nlabel = "deepseek"\nkind = "openai-compatible"\nbase_url = "https://api.deepseek.com/v1/"\n'
        'api_key = "sk-ds"\nmodels = ["deepseek-chat"]\nconcurrency = 4\nenabled = false\n'
    )
    settings = load(env={"IFLOW2API_CONFIG": str(config)})
    assert settings.model_aliases == (("gpt-4o", "glm-4.7"), ("claude-*", "glm-5"))
    team, deepseek = settings.accounts
    assert (team.id, team.kind, team.secret, team.base_url) == ("cfg-team-key", "iflow-key", "sk-team", "")
    assert deepseek.base_url == "https://api.deepseek.com/v1"
    assert (deepseek.models, deepseek.concurrency, deepseek.enabled) == (("deepseek-chat",), 4, False)


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ('label = "x"\n', "api_key is missing"),
        ('api_key = "sk"\n', "give it a label"),
        ('label = "x"\napi_key = "sk"\nkind = "other"\n', "kind must be"),
        ('label = "x"\napi_key = "sk"\nkind = "openai-compatible"\n', "needs a base_url"),
        ('label = "x"\napi_key = "sk"\nbase_url = "ftp://h"\n', "base_url"),
        ('label = "x"\napi_key = "sk"\nmodels = "m"\n', "models must be a list"),
        ('label = "x"\napi_key = "sk"\ncolour = "red"\n', "unknown field(s): colour"),
    ],
)
def test_bad_config_accounts_are_refused_with_a_reason(tmp_path: Path, table: str, complaint: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[[accounts]]\n" + table)
    with pytest.raises(SettingsError, match="accounts #1") as caught:
        load(env={"IFLOW2API_CONFIG": str(config)})
    assert complaint in str(caught.value)


def test_two_config_accounts_with_one_label_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[accounts]]\nlabel = "a"\napi_key = "1"\n[[accounts]]\nlabel = "A"\napi_key = "2"\n')
    with pytest.raises(SettingsError, match="same id or label"):
        load(env={"IFLOW2API_CONFIG": str(config)})


def test_an_account_table_may_not_name_the_iflow_profile(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[accounts]]\nlabel = "x"\napi_key = "sk-1"\nprovider = "iflow"\n')
    with pytest.raises(SettingsError, match="not iflow"):
        load(env={}, config_path=config)
