"""The ``iflow2api`` command and its subcommands: ``serve`` (the default), ``status``, ``models``,
``login``, ``logout``, ``accounts``, ``keys`` and ``admin-password``.

Flags come from the settings table, one per setting, so the command line, the environment and the
config file can never disagree on names. No logic lives here beyond turning flags into settings:
each command hands them to the module that does its work (``serve``, ``status``, ``login``,
``manage``), imported only when it runs, so that ``--help`` or ``status`` never loads uvicorn.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable
from typing import Any

import click

from iflow2api import __version__, providers
from iflow2api.settings import SETTINGS, Settings, SettingsError, load

F = Callable[..., Any]


#: The settings a command that works on the state store reads: where it is. The rest only matter to
#: ``serve``; they still come from the environment and the config file, but are not offered as flags
#: where they would change nothing.
STATE = ("data_dir", "database_url", "config")
#: Commands that also show the account the iFlow CLI's files describe.
FILES = ("upstream_base_url", "upstream_provider", "iflow_home", *STATE)
#: ``models`` also asks the upstream.
ASKING = (*FILES, "connect_timeout", "first_byte_timeout")
#: ``login`` speaks to iFlow's login service and may open a browser.
LOGIN = ("iflow_home", "data_dir", "database_url", "config", "oauth_base_url", "open_browser")


def settings_options(command: F) -> F:
    """Every setting as a flag: ``serve``'s."""
    return only_settings(*(setting.name for setting in SETTINGS))(command)


def only_settings(*names: str) -> Callable[[F], F]:
    """These settings as flags, in the table's order."""

    def attach(command: F) -> F:
        for setting in reversed(SETTINGS):
            if setting.name in names:
                command = click.option(
                    setting.flag,
                    setting.name,
                    default=None,
                    metavar="VALUE",
                    help=f"{setting.help} [env {setting.env_name}; default {setting.default or 'none'}]",
                )(command)
        return command

    return attach


def _settings(flags: dict[str, Any]) -> Settings:
    try:
        return load(flags=flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def summary(help_text: str) -> str:
    """A command's help's first paragraph, on one line.

    >>> summary("Add an account.\\n\\n    For example: iflow2api accounts add")
    'Add an account.'
    """
    return " ".join(inspect.cleandoc(help_text).split("\n\n")[0].split())


class Command(click.Command):
    """Its summary in its group's list is whole: click would cut it at ~45 characters."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary(self.short_help or self.help or "")


class Group(click.Group):
    """A group of such commands, and itself summarised whole."""

    command_class = Command
    group_class: type[click.Group] | type[type] | None = type  # its groups are Groups too

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary(self.short_help or self.help or "")


class DefaultToServe(Group):
    """``iflow2api`` alone, or with only flags, means ``iflow2api serve``."""

    group_class = Group

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in {"--help", "-h", "--version"}):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultToServe, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iflow2api")
def main() -> None:
    """OpenAI-compatible gateway for iFlow models (and any OpenAI-compatible upstream)."""


no_browser_option = click.option(
    "--no-browser", is_flag=True, default=False, help="Never open a browser (same as --open-browser false)."
)


@main.command("serve")
@no_browser_option
@settings_options
def serve_command(no_browser: bool, **flags: Any) -> None:
    """Run the gateway (the default command)."""
    from iflow2api.cli.serve import serve

    serve(_settings({**flags, "open_browser": "false" if no_browser else flags.get("open_browser")}))


@main.command("status")
@only_settings("host", "port", *FILES)  # host and port: the page's address
def status_command(**flags: Any) -> None:
    """Show who is logged in and which upstream is used (secrets are masked)."""
    from iflow2api.cli.status import show_status

    show_status(_settings(flags))


@main.command("models")
@only_settings(*ASKING)
def models_command(**flags: Any) -> None:
    """List the models the current upstream serves."""
    from iflow2api.cli.status import list_models

    list_models(_settings(flags))


@main.command("login")
@no_browser_option
@only_settings(*LOGIN)
def login_command(no_browser: bool, **flags: Any) -> None:
    """Log in with iFlow (opens a browser; --no-browser prints a link and takes the code)."""
    from iflow2api.cli.login import login
    from iflow2api.cli.serve import has_display

    settings = _settings(flags)
    use_browser = not no_browser and settings.open_browser and has_display()
    sys.exit(asyncio.run(login(settings, use_browser)))


@main.command("logout")
@only_settings("iflow_home", "config")
def logout_command(**flags: Any) -> None:
    """Remove the iFlow login that `login` (or the iFlow CLI) saved."""
    from iflow2api.cli.login import logout

    logout(_settings(flags))


# -- the pool, client keys and the admin password (see cli.manage) --------------------------------------


@main.group()
def accounts() -> None:
    """Upstream accounts: list, add, test, remove, enable, disable."""


@accounts.command("list")
@only_settings(*FILES)
def accounts_list(**flags: Any) -> None:
    """Every account, where it comes from and its state (keys masked)."""
    from iflow2api.cli import manage

    manage.list_accounts(_settings(flags))


@accounts.command("add")
@click.option(
    "--kind",
    type=click.Choice(["iflow-key", "openai-compatible"]),
    default=None,
    help="iflow-key (the default), or openai-compatible (the default with --provider).",
)
@click.option(
    "--provider",
    # As pool.directory.provider_names, which would load the pool for every command's --help.
    type=click.Choice([name for name in providers.names() if name != providers.IFLOW]),
    default=None,
    help="The provider profile it is spoken to with (default: its base URL's host's).",
)
@click.option("--label", required=True, help="A name for it.")
@click.option("--key", "api_key", required=True, help="Its API key (use '-' to type it at a prompt).")
@click.option(
    "--base-url",
    default="",
    help="Its base URL (needed for openai-compatible; with --provider, default: the provider's public one).",
)
@click.option("--models", default="", help="Models it serves, comma-separated (default: ask its /models).")
@click.option("--limit", "concurrency", type=int, default=None, help="Requests at once (0: unlimited).")
@click.option("--no-check", is_flag=True, default=False, help="Save it without testing it first.")
@only_settings(*FILES, "connect_timeout", "first_byte_timeout")
def accounts_add(
    kind: str | None,
    provider: str | None,
    label: str,
    api_key: str,
    base_url: str,
    models: str,
    concurrency: int | None,
    no_check: bool,
    **flags: Any,
) -> None:
    """Add an iFlow API key or an OpenAI-compatible upstream (iFlow logins: `iflow2api login`).

    An OpenAI-compatible one is tested first (its /models and a one-token request); it is saved
    even when the test fails, and shown as failing until `iflow2api accounts test` passes.

    For example: iflow2api accounts add --provider deepseek --label work --key -
    """
    from iflow2api.cli import manage

    if provider and kind == "iflow-key":
        raise click.UsageError("--provider is for openai-compatible accounts")
    if api_key == "-":
        api_key = click.prompt("API key", hide_input=True)
    fields = {
        "kind": kind or ("openai-compatible" if provider else "iflow-key"),
        "provider": provider,
        "label": label,
        "api_key": api_key,
        "base_url": base_url,
        "models": models,
        "concurrency": concurrency,
    }
    manage.add_account(_settings(flags), fields, check=not no_check)


@accounts.command("test")
@click.argument("label", required=False)
@only_settings(*FILES, "connect_timeout", "first_byte_timeout", "redis_url")
def accounts_test(label: str | None, **flags: Any) -> None:
    """Test OpenAI-compatible accounts (one by label or id, else all): list their models and send
    a one-token request. Exits 1 when any fails; a pass puts a failing account back in rotation."""
    from iflow2api.cli import manage

    if not manage.test_accounts(_settings(flags), label):
        sys.exit(1)


def _account_action(action: str, help_text: str) -> None:
    @accounts.command(action, help=help_text)
    @click.argument("account_id")
    @only_settings(*FILES, "redis_url")
    def command(account_id: str, **flags: Any) -> None:
        from iflow2api.cli import manage

        manage.change_account(_settings(flags), account_id, action)


_account_action("remove", "Remove an account added with `accounts add` or `login`.")
_account_action("enable", "Use an account again (also lifts a quarantine).")
_account_action("disable", "Stop using an account, keeping it.")


@main.group()
def keys() -> None:
    """Client API keys: create, list, revoke."""


@keys.command("create")
@click.argument("name")
@click.option("--admin", "admin_key", is_flag=True, help="May also manage the gateway (page, /metrics).")
@click.option("--rpm", type=int, default=None, help="Requests per minute, at most.")
@click.option("--tokens-per-day", type=int, default=None, help="Tokens per UTC day, at most.")
@click.option("--models", default="", help="Models it may use, comma-separated patterns (default: all).")
@only_settings(*STATE)
def keys_create(
    name: str, admin_key: bool, rpm: int | None, tokens_per_day: int | None, models: str, **flags: Any
) -> None:
    """Create a named key; it is shown once."""
    from iflow2api.cli import manage

    manage.create_key(
        _settings(flags), name, admin_key=admin_key, rpm=rpm, tokens_per_day=tokens_per_day, models=models
    )


@keys.command("list")
@only_settings(*STATE)
def keys_list(**flags: Any) -> None:
    """The keys, by name (never the keys themselves)."""
    from iflow2api.cli import manage

    manage.list_keys(_settings(flags))


@keys.command("revoke")
@click.argument("name_or_id")
@only_settings(*STATE, "redis_url")
def keys_revoke(name_or_id: str, **flags: Any) -> None:
    """Revoke a key by name or id."""
    from iflow2api.cli import manage

    manage.revoke_key(_settings(flags), name_or_id)


@main.command("admin-password")
@click.password_option("--password", prompt="New admin password", help="The new password (prompted).")
@only_settings(*STATE)
def admin_password(password: str, **flags: Any) -> None:
    """Set the password that opens the page when client keys exist."""
    from iflow2api.cli import manage

    if len(password) < 8:
        raise click.UsageError("use at least 8 characters")
    manage.set_admin_password(_settings(flags), password)
