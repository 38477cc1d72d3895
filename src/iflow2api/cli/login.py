"""``iflow2api login`` and ``iflow2api logout``: the iFlow login from a terminal.

The flow is the page's (``auth.login``); here it only gets a browser or a pasted code.
"""

from __future__ import annotations

import asyncio
import webbrowser

import click

from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.callback_server import CallbackServer
from iflow2api.auth.login import LoginFlow
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.errors import ConsentDenied, LoginError
from iflow2api.pool.book import save_login
from iflow2api.settings import Settings
from iflow2api.state import open_store

#: How long ``login`` waits for the browser to come back.
LOGIN_WAIT_SECONDS = 300


async def login(settings: Settings, use_browser: bool) -> int:
    """Log in, in a browser or with a pasted code, and save it; the exit status (0: logged in)."""
    store = open_store(settings.data_dir, database_url=settings.database_url)
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
                raise ConsentDenied()
            user = await flow.finish(query.get("code", ""), query.get("state"))
        else:
            pending = flow.start(None)
            click.echo(
                "Open this link in any browser, log in, and paste the code the iFlow page shows "
                f"(or the whole address it went to):\n\n  {pending.url}\n"
            )
            text = await asyncio.get_running_loop().run_in_executor(None, read_code)
            user = await flow.finish_pasted(text, pending.state)
    except LoginError as exc:
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


def read_code() -> str:
    try:
        return str(click.prompt("Code", prompt_suffix=": ")).strip()
    except (click.Abort, EOFError):
        return ""


def logout(settings: Settings) -> None:
    """Remove the iFlow login in ``settings.iflow_home``, if there is one."""
    creds = settings.iflow_home / iflow_files.OAUTH_CREDS_FILE
    if not creds.exists():
        click.echo(f"No iFlow login in {settings.iflow_home}.")
        return
    iflow_files.remove_oauth_login(settings.iflow_home)
    click.echo(f"Logged out: removed {creds} and the login's key from settings.json.")
