"""A tiny forward HTTP proxy on 127.0.0.1:0, in a thread, that records what went through it.

Absolute-URI requests (``POST http://host:port/path HTTP/1.1``, how clients send plain HTTP through
a proxy) are relayed one per connection, with ``connection: close``. ``CONNECT host:port`` (how
HTTPS goes through a proxy) is recorded and refused with a 502: proving which tunnel a client asked
for needs no TLS server behind it.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = (b"connection:", b"proxy-connection:", b"proxy-authorization:", b"keep-alive:")


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b"", b""
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _content_length(lines: list[bytes]) -> int:
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class ForwardProxy:
    """``with ForwardProxy() as proxy:`` serves at ``proxy.url``; ``proxy.requests`` lists the
    request lines it received (``"CONNECT h:443 HTTP/1.1"``, ``"GET http://h/p HTTP/1.1"``)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.requests)

    def _handle(self, client: socket.socket) -> None:
        head, rest = _read_head(client)
        if not head:
            return
        request_line, *headers = head.split(b"\r\n")
        with self._lock:
            self.requests.append(request_line.decode("latin-1"))
        method, target, version = request_line.split(b" ")
        if method == b"CONNECT":
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            return
        url = urlsplit(target.decode("latin-1"))
        body = rest
        while len(body) < _content_length(headers):
            piece = client.recv(65536)
            if not piece:
                break
            body += piece
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [line for line in headers if not line.lower().startswith(_HOP_BY_HOP)]
        upstream_head = b"\r\n".join(
            [b"%s %s %s" % (method, path.encode("latin-1"), version), *kept, b"connection: close"]
        )
        with socket.create_connection((url.hostname or "", url.port or 80), timeout=30) as upstream:
            upstream.sendall(upstream_head + b"\r\n\r\n" + body)
            while piece := upstream.recv(65536):
                client.sendall(piece)
