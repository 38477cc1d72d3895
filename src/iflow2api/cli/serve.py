"""``iflow2api serve``: the listening socket, uvicorn set up for the gateway, the first start.

uvicorn is imported here only when the gateway is really served, so the other commands start fast.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import sys
import threading
import webbrowser
from types import FrameType
from typing import TYPE_CHECKING

import click

from iflow2api import __version__
from iflow2api.addresses import is_loopback
from iflow2api.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from iflow2api.app import Gateway
    from iflow2api.auth.credentials import CredentialSource


def serve(settings: Settings) -> None:
    """Check the settings are safe to serve with, bind, say where, and run until stopped."""
    from iflow2api import logs
    from iflow2api.app import create_app
    from iflow2api.cli.status import file_serving
    from iflow2api.services.serving import next_step

    if settings.workers > 1 and not settings.redis_url:
        raise WorkersNeedRedis(
            f"--workers {settings.workers} needs redis_url: the workers must share each account's one "
            "request in flight and the key limits. Set IFLOW2API_REDIS_URL (or --redis-url) to a "
            "Redis, or serve with --workers 1."
        )
    stored_keys, new_password = asyncio.run(prepare_state(settings))
    if not is_loopback(settings.host) and not settings.api_keys and not stored_keys:
        raise click.UsageError(
            f"refusing to listen on {settings.host} without client API keys: anyone who can reach "
            "it could use your iFlow account. Create one first with `iflow2api keys create NAME` "
            "(or set IFLOW2API_API_KEYS to one or more long random keys)."
        )
    logs.setup(settings.log_level)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    app = create_app(settings) if settings.workers == 1 else None
    account = (app.credentials if app is not None else cli_credentials(settings)).current()
    ready = file_serving(settings, account)
    click.echo(f"iflow2api {__version__} listening on http://{shown}:{port}/v1; {ready.summary()}", err=True)
    if new_password is not None:
        click.echo(
            f"Admin password for the page (shown this once; change it with `iflow2api admin-password`): "
            f"{new_password}",
            err=True,
        )
    page = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
    # One line that says what to do; an account added meanwhile serves without a restart.
    if ready.connected and not ready.serving:
        click.echo(f"see why on {page}#accounts or with `iflow2api accounts list`", err=True)
    if not ready.connected:
        click.echo(next_step(page), err=True)
        if settings.open_browser and has_display():
            threading.Timer(1.0, webbrowser.open, args=(page,)).start()
    if app is None:
        from iflow2api.cli.workers import Workers

        sys.exit(Workers(settings, sock).run())
    server(uvicorn_config(settings, app), app).run(sockets=[sock])


def cli_credentials(settings: Settings) -> CredentialSource:
    """The iFlow CLI's login as the gateway reads it (the workers' parent makes no gateway)."""
    from iflow2api.auth.credentials import CredentialSource

    return CredentialSource(
        settings.iflow_home, base_url_override=settings.upstream_base_url, provider=settings.upstream_provider
    )


class WorkersNeedRedis(click.ClickException):
    """Several workers without a coordination store: refused, as a usage error (exit code 2)."""

    exit_code = 2


def uvicorn_config(settings: Settings, app: Gateway) -> uvicorn.Config:
    """uvicorn set up for the gateway (one process, or each worker of ``--workers``)."""
    import uvicorn

    from iflow2api.http_protocol import with_header_deadline

    return uvicorn.Config(
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


def bind(host: str, port: int) -> socket.socket:
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


def server(config: uvicorn.Config, gateway: Gateway) -> uvicorn.Server:
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


async def prepare_state(settings: Settings) -> tuple[int, str | None]:
    """How many client keys the store holds, and the admin password if this start created it.

    The password is made at the first start, and shown only when a person is there to see it (a
    terminal); a service's log never gets it, and `iflow2api admin-password` sets one any time.
    """
    from iflow2api import admin
    from iflow2api.state import StateFileError, open_store

    # As the instance it is about to be: a second instance on one database without redis_url is
    # refused here, before it says it listens (the gateway's own start checks again).
    store = open_store(
        settings.data_dir,
        database_url=settings.database_url,
        instance=settings.instance_name,
        coordinated=bool(settings.redis_url),
    )
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
