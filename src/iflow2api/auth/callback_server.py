"""The one-shot local web server ``iflow2api login`` waits on for iFlow's redirect (§4.3).

Like the CLI, it listens on a port the OS picks and accepts ``GET /oauth2callback?code&state`` (or
``?error``). It answers the browser with a short page and hands the query to the waiting login.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse

_PAGE = (
    "<!doctype html><meta charset='utf-8'><title>iflow2api</title>"
    "<body style='font:16px system-ui;margin:3em'><h1>{title}</h1><p>{text}</p></body>"
)


class CallbackServer:
    def __init__(self) -> None:
        self._result: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> CallbackServer:
        self._server = await asyncio.start_server(self._handle, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def redirect_uri(self) -> str:
        # The CLI's own form (protocol §4.3): localhost, the port, /oauth2callback.
        return f"http://localhost:{self.port}/oauth2callback"

    async def wait(self, seconds: float) -> dict[str, str]:
        """The callback's query parameters; TimeoutError when none came in time."""
        async with asyncio.timeout(seconds):
            return await asyncio.shield(self._result)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""
            parts = urllib.parse.urlsplit(target)
            if parts.path != "/oauth2callback":
                self._answer(writer, 404, "Not found", "This address only receives the iFlow login.")
                return
            query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
            if query.get("error") or not query.get("code"):
                self._answer(writer, 400, "Login not completed", "You can close this tab and try again.")
            else:
                self._answer(writer, 200, "Logged in", "You can close this tab and return to the terminal.")
            if not self._result.done():
                self._result.set_result(query)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()

    @staticmethod
    def _answer(writer: asyncio.StreamWriter, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=title, text=text).encode()
        writer.write(
            f"HTTP/1.1 {status} {title}\r\ncontent-type: text/html; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
