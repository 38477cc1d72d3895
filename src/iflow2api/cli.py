"""The ``iflow2api`` command: ``serve`` (the default), ``status`` and ``models``.

Flags come from the settings table, one per setting, so the command line, the environment and the
config file can never disagree on names. No logic lives here beyond turning flags into settings.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from iflow2api import __version__, catalogue
from iflow2api.addresses import is_loopback
from iflow2api.auth.credentials import Account, CredentialSource, mask_secret
from iflow2api.auth.iflow_files import OAUTH_AUTH_TYPE
from iflow2api.auth.refresher import login_rejected
from iflow2api.settings import SETTINGS, Settings, SettingsError, load

if TYPE_CHECKING:
    import uvicorn

    from iflow2api.app import Gateway

F = Callable[..., Any]


def settings_options(command: F) -> F:
    for setting in reversed(SETTINGS):
        command = click.option(
            setting.flag,
            setting.name,
            default=None,
            metavar="VALUE",
            help=f"{setting.help} [env {setting.env_name}; default {setting.default or 'none'}]",
        )(command)
    return command


def _settings(flags: dict[str, Any]) -> Settings:
    try:
        return load(flags=flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


class DefaultToServe(click.Group):
    """``iflow2api`` alone, or with only flags, means ``iflow2api serve``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in {"--help", "-h", "--version"}):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultToServe, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iflow2api")
def main() -> None:
    """OpenAI-compatible gateway for iFlow models (and any OpenAI-compatible upstream)."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def has_display() -> bool:
    """Whether a browser can be opened here (a desktop, not an SSH session or a container)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


no_browser_option = click.option(
    "--no-browser", is_flag=True, default=False, help="Never open a browser (same as --open-browser false)."
)


@main.command()
@no_browser_option
@settings_options
def serve(no_browser: bool, **flags: Any) -> None:
    """Run the gateway (the default command)."""
    import uvicorn

    from iflow2api import logs
    from iflow2api.app import create_app
    from iflow2api.http_protocol import with_header_deadline

    settings = _settings({**flags, "open_browser": "false" if no_browser else flags.get("open_browser")})
    stored_keys, new_password = asyncio.run(_prepare_state(settings))
    if not is_loopback(settings.host) and not settings.api_keys and not stored_keys:
        raise click.UsageError(
            f"refusing to listen on {settings.host} without client API keys: anyone who can reach "
            "it could use your iFlow account. Create one first with `iflow2api keys create NAME` "
            "(or set IFLOW2API_API_KEYS to one or more long random keys)."
        )
    logs.setup(settings.log_level)
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    app = create_app(settings)
    account = app.credentials.current()
    config = uvicorn.Config(
        app,
        loop="auto",
        # httptools, plus a deadline for a request's headers, which uvicorn does not have.
        http=with_header_deadline(settings.request_read_timeout),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        # The gateway does not trust X-Forwarded-* headers; it never acts on the client's address.
        proxy_headers=False,
        # uvicorn's hard cancel comes a moment after our grace, so that the requests still open
        # when the grace is over (ended by ``Gateway.stop_soon``) can write their error events.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace) + 1,
    )
    where = (
        f"{account.kind} at {account.base_url}" if account else "no credentials yet (see `iflow2api status`)"
    )
    click.echo(f"iflow2api {__version__} listening on http://{shown}:{port}/v1 — upstream: {where}", err=True)
    if new_password is not None:
        click.echo(
            f"Admin password for the page (shown this once; change it with `iflow2api admin-password`): "
            f"{new_password}",
            err=True,
        )
    if account is None:
        page = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
        click.echo(
            f"Not logged in yet: open {page} to log in with iFlow, or run `iflow2api login`.", err=True
        )
        if settings.open_browser and has_display():
            threading.Timer(1.0, webbrowser.open, args=(page,)).start()
    _server(config, app).run(sockets=[sock])


def _server(config: uvicorn.Config, gateway: Gateway) -> uvicorn.Server:
    """uvicorn's server, telling the gateway at once when a stop is asked for (see
    ``Gateway.stop_soon``). Made here so that uvicorn is imported only by ``serve``.

    The first signal is uvicorn's graceful stop (no new connections, idle ones closed, the open
    ones waited for) and starts the gateway's grace. The second ends the open requests at once,
    each with its error; uvicorn's own answer to a second Ctrl+C (give up waiting and exit) would
    cut them off unwritten, so it is kept for a third.
    """
    import uvicorn

    class Server(uvicorn.Server):
        signals = 0

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.signals += 1
            if self.signals == 1:
                super().handle_exit(sig, frame)
            elif self.signals > 2:
                self.force_exit = True
            gateway.stop_soon()

    return Server(config)


async def _prepare_state(settings: Settings) -> tuple[int, str | None]:
    """How many client keys the store holds, and the admin password if this start created it.

    The password is made at the first start, and shown only when a person is there to see it (a
    terminal); a service's log never gets it, and `iflow2api admin-password` sets one any time.
    """
    from iflow2api import admin
    from iflow2api.state import StateFileError, open_store

    store = open_store(settings.data_dir)
    try:
        keys = len(await store.client_keys())
        password = None
        if await store.get_setting(admin.ADMIN_PASSWORD_SETTING) is None and sys.stderr.isatty():
            password = admin.new_password()
            await store.put_setting(admin.ADMIN_PASSWORD_SETTING, admin.hash_password(password))
        return keys, password
    except StateFileError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await store.close()


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    left = epoch - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    if left <= 0:
        return f"{stamp} (expired)"
    days, rest = divmod(int(left), 86400)
    return f"{stamp} (in {days} d {rest // 3600} h)"


def _account(settings: Settings) -> Account | None:
    return CredentialSource(settings.iflow_home, base_url_override=settings.upstream_base_url).current()


@main.command()
@settings_options
def status(**flags: Any) -> None:
    """Show who is logged in and which upstream is used (secrets are masked)."""
    settings = _settings(flags)
    account = _account(settings)
    rows = [("iFlow folder", str(settings.iflow_home)), ("Data folder", str(settings.data_dir))]
    if account is None:
        rows.append(("Logged in", "no: no usable credentials in settings.json"))
    else:
        rows += [
            ("Logged in", f"yes ({account.auth_type}{', ' + account.label if account.label else ''})"),
            ("Upstream", f"{account.kind} at {account.base_url}"),
            ("API key", mask_secret(account.api_key)),
        ]
        if account.auth_type == OAUTH_AUTH_TYPE or account.token_expires_at:
            rows.append(("Token expires", _when(account.token_expires_at)))
            rejected = login_rejected(settings.iflow_home, settings.data_dir)
            if rejected:
                rows.append(("Attention", f"iFlow refused this login ({rejected}); run `iflow2api login`"))
        if account.kind == "iflow":
            rows.append(
                ("Key expiry", "iFlow API keys last 7 days from issue; the issue date is not recorded")
            )
        if account.model_name:
            rows.append(("Default model", account.model_name))
    others = len(settings.accounts) + _stored_accounts(settings)
    if others:
        rows.append(("Other accounts", f"{others} more in the pool (see `iflow2api accounts list`)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name.ljust(width)}  {value}")
    sys.exit(0 if account or others else 1)


def _stored_accounts(settings: Settings) -> int:
    from iflow2api.state import StateFileError, open_store

    async def count() -> int:
        store = open_store(settings.data_dir)
        try:
            return len(await store.accounts())
        finally:
            await store.close()

    try:
        return asyncio.run(count())
    except StateFileError:
        return 0


@main.command()
@settings_options
def models(**flags: Any) -> None:
    """List the models the current upstream serves."""
    settings = _settings(flags)
    account = _account(settings)
    if account is None or account.kind == "iflow":
        click.echo(f"{'id':<24} {'name':<22} {'context':>9} {'max out':>8}")
        for model in catalogue.IFLOW_MODELS:
            if not model.hidden:
                context = f"{model.context_window:,}" if model.context_window else "?"
                out = f"{model.max_output:,}" if model.max_output else "?"
                click.echo(f"{model.id:<24} {model.label:<22} {context:>9} {out:>8}")
        if account is None:
            click.echo("(not logged in: this is iFlow's catalogue)", err=True)
        return
    click.echo("\n".join(asyncio.run(_upstream_models(settings, account))))


async def _upstream_models(settings: Settings, account: Account) -> list[str]:
    from iflow2api.upstream.client import UpstreamClient
    from iflow2api.upstream.models import ModelDirectory

    client = UpstreamClient(connect_timeout=settings.connect_timeout, first_byte_timeout=30, idle_timeout=30)
    await client.start()
    try:
        listing = await ModelDirectory(client, settings.models_cache_ttl).models(account)
    finally:
        await client.close()
    if not listing.complete:
        click.echo("(the upstream did not list its models; showing modelName from settings.json)", err=True)
    return list(listing.ids)


@main.command()
@no_browser_option
@settings_options
def login(no_browser: bool, **flags: Any) -> None:
    """Log in with iFlow (opens a browser; --no-browser prints a link and takes the code)."""
    settings = _settings(flags)
    use_browser = not no_browser and settings.open_browser and has_display()
    sys.exit(asyncio.run(_login(settings, use_browser)))


async def _login(settings: Settings, use_browser: bool) -> int:
    from iflow2api.auth import oauth
    from iflow2api.auth.callback_server import CallbackServer
    from iflow2api.auth.login import LoginFlow
    from iflow2api.auth.oauth_client import OAuthClient
    from iflow2api.pool.book import save_login
    from iflow2api.state import open_store

    store = open_store(settings.data_dir)
    saved_as: list[str] = []

    async def save(tokens: oauth.Tokens, user: oauth.UserInfo) -> None:
        saved_as.append(await save_login(settings.iflow_home, store, tokens, user))

    client = OAuthClient(settings.oauth_base_url)
    flow = LoginFlow(settings.iflow_home, client, save=save)
    server: CallbackServer | None = None
    try:
        if use_browser:
            server = await CallbackServer().start()
            pending = flow.start(server.redirect_uri)
            click.echo(
                f"Opening your browser to log in with iFlow. If it does not open, visit:\n\n  {pending.url}\n"
            )
            # In a thread: some browser commands only return once the browser closes, and the
            # callback must be answered meanwhile.
            asyncio.get_running_loop().run_in_executor(None, webbrowser.open, pending.url)
            try:
                query = await server.wait(LOGIN_WAIT_SECONDS)
            except TimeoutError:
                click.echo(f"No login came back within {LOGIN_WAIT_SECONDS // 60} minutes.", err=True)
                return 1
            if query.get("error"):
                raise oauth.ConsentDenied()
            user = await flow.finish(query.get("code", ""), query.get("state"))
        else:
            pending = flow.start(None)
            click.echo(
                "Open this link in any browser, log in, and paste the code the iFlow page shows "
                f"(or the whole address it went to):\n\n  {pending.url}\n"
            )
            text = await asyncio.get_running_loop().run_in_executor(None, _read_code)
            user = await flow.finish_pasted(text, pending.state)
    except oauth.OAuthError as exc:
        click.echo(f"Login failed: {exc}", err=True)
        return 1
    finally:
        if server is not None:
            await server.close()
        await client.close()
        await store.close()
    who = f" as {user.label}" if user.label else ""
    if saved_as and saved_as[0] != "iflow-cli":
        click.echo(
            f"Logged in{who}. Added as another account ({saved_as[0]}) to the gateway's pool, next to "
            f"the login in {settings.iflow_home}; a running gateway uses it within a second."
        )
    else:
        click.echo(f"Logged in{who}. Saved to {settings.iflow_home}; a running gateway uses it at once.")
    return 0


#: How long ``login`` waits for the browser to come back.
LOGIN_WAIT_SECONDS = 300


def _read_code() -> str:
    try:
        return str(click.prompt("Code", prompt_suffix=": ")).strip()
    except (click.Abort, EOFError):
        return ""


@main.command()
@settings_options
def logout(**flags: Any) -> None:
    """Remove the iFlow login that `login` (or the iFlow CLI) saved."""
    from iflow2api.auth import iflow_files

    settings = _settings(flags)
    creds = settings.iflow_home / iflow_files.OAUTH_CREDS_FILE
    if not creds.exists():
        click.echo(f"No iFlow login in {settings.iflow_home}.")
        return
    iflow_files.remove_oauth_login(settings.iflow_home)
    click.echo(f"Logged out: removed {creds} and the login's key from settings.json.")


# -- the pool, client keys and the admin password (see cli_manage) --------------------------------------


@main.group()
def accounts() -> None:
    """Upstream accounts: list, add, remove, enable, disable."""


@accounts.command("list")
@settings_options
def accounts_list(**flags: Any) -> None:
    """Every account, where it comes from and its state (keys masked)."""
    from iflow2api import cli_manage

    cli_manage.list_accounts(_settings(flags))


@accounts.command("add")
@click.option("--kind", type=click.Choice(["iflow-key", "openai-compatible"]), default="iflow-key")
@click.option("--label", required=True, help="A name for it.")
@click.option("--key", "api_key", required=True, help="Its API key (use '-' to type it at a prompt).")
@click.option("--base-url", default="", help="Its base URL (needed for openai-compatible).")
@click.option("--models", default="", help="Models it serves, comma-separated (default: ask its /models).")
@click.option("--limit", "concurrency", type=int, default=None, help="Requests at once (0: unlimited).")
@settings_options
def accounts_add(
    kind: str, label: str, api_key: str, base_url: str, models: str, concurrency: int | None, **flags: Any
) -> None:
    """Add an iFlow API key or an OpenAI-compatible upstream (iFlow logins: `iflow2api login`)."""
    from iflow2api import cli_manage

    if api_key == "-":
        api_key = click.prompt("API key", hide_input=True)
    fields = {
        "kind": kind,
        "label": label,
        "api_key": api_key,
        "base_url": base_url,
        "models": models,
        "concurrency": concurrency,
    }
    cli_manage.add_account(_settings(flags), fields)


def _account_action(action: str, help_text: str) -> None:
    @accounts.command(action, help=help_text)
    @click.argument("account_id")
    @settings_options
    def command(account_id: str, **flags: Any) -> None:
        from iflow2api import cli_manage

        cli_manage.change_account(_settings(flags), account_id, action)


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
@settings_options
def keys_create(
    name: str, admin_key: bool, rpm: int | None, tokens_per_day: int | None, models: str, **flags: Any
) -> None:
    """Create a named key; it is shown once."""
    from iflow2api import cli_manage

    cli_manage.create_key(
        _settings(flags), name, admin_key=admin_key, rpm=rpm, tokens_per_day=tokens_per_day, models=models
    )


@keys.command("list")
@settings_options
def keys_list(**flags: Any) -> None:
    """The keys, by name (never the keys themselves)."""
    from iflow2api import cli_manage

    cli_manage.list_keys(_settings(flags))


@keys.command("revoke")
@click.argument("name_or_id")
@settings_options
def keys_revoke(name_or_id: str, **flags: Any) -> None:
    """Revoke a key by name or id."""
    from iflow2api import cli_manage

    cli_manage.revoke_key(_settings(flags), name_or_id)


@main.command("admin-password")
@click.password_option("--password", prompt="New admin password", help="The new password (prompted).")
@settings_options
def admin_password(password: str, **flags: Any) -> None:
    """Set the password that opens the page when client keys exist."""
    from iflow2api import cli_manage

    if len(password) < 8:
        raise click.UsageError("use at least 8 characters")
    cli_manage.set_admin_password(_settings(flags), password)
