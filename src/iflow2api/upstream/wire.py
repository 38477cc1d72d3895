"""The HTTP/1.1 wire, without I/O: an upstream's address, the bytes of a request, and the ways a
transport can fail (``TransportError`` and its kinds, which ``upstream.client`` maps to the
gateway's errors).

>>> build_request("GET", parse_url("http://127.0.0.1:8080/v1/models"), {}, None, False)
(b'GET /v1/models HTTP/1.1\\r\\nhost: 127.0.0.1:8080\\r\\n\\r\\n',)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit


class TransportError(Exception):
    """The upstream connection failed; the message says how, without any secret."""


class ConnectFailed(TransportError):
    pass


class ConnectTimeout(ConnectFailed):
    pass


class ReadTimeout(TransportError):
    pass


class BrokenResponse(TransportError):
    """The connection ended, or the bytes made no sense, before the response was complete."""


class StaleConnection(BrokenResponse):
    """A kept-alive connection closed before any of the response arrived: safe to try afresh."""


class BodyTooLarge(BrokenResponse):
    """The decoded body grew beyond the pool's ``max_body``; reading stopped, the connection closed."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@functools.lru_cache(maxsize=256)
def parse_url(url: str) -> Target:
    """What a URL names; cached, because the same few upstream URLs come back on every request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConnectFailed(f"the port in {url!r} is not a number") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path)


class InvalidHeader(ValueError):
    """A header name or value that cannot be written as-is (nothing was sent)."""


def _check_header(name: str, value: str) -> None:
    # A newline in a value would split the request: refuse it (the CLI calls this an apiKey error).
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
        raise InvalidHeader(f"header {name!r} holds a line break")


#: A body up to this size is sent in one piece with the head; a larger one after it, as it is,
#: rather than copied into one buffer with it (a conversation can be megabytes).
JOIN_LIMIT = 64 * 1024


def build_request(
    method: str, target: Target, headers: dict[str, str], body: bytes | None, absolute: bool
) -> tuple[bytes, ...]:
    """The request's bytes, as the pieces to write one after the other."""
    request_target = f"{target.scheme}://{target.host_header}{target.path}" if absolute else target.path
    lines = [f"{method} {request_target} HTTP/1.1", f"host: {target.host_header}"]
    for name, value in headers.items():
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if not body:
        return (head,)
    return (head + body,) if len(body) <= JOIN_LIMIT else (head, body)
