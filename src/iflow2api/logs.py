"""Logging, with secrets masked before any line is written.

Every record passes through ``RedactingFilter``: API keys (``sk-…``), bearer tokens and anything
labelled as a token or key keep a few characters to be recognisable, never enough to be used.
"""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(
    r"(?P<sk>\bsk-[A-Za-z0-9_\-]{8,})"
    r"|(?P<bearer>(?i:bearer)\s+)(?P<token>[A-Za-z0-9._~+/\-]{8,}=*)"
    r"|(?P<label>(?i:access_token|refresh_token|api_?key|apiKey|client_secret)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[A-Za-z0-9._~+/\-]{6,})"
)


def _mask(text: str) -> str:
    return f"{text[:4]}…{text[-2:]}" if len(text) > 10 else "…"


def redact(text: str) -> str:
    """Mask every secret-looking value in ``text``.

    >>> redact("key sk-0123456789abcdef0123456789abcdef used")
    'key sk-0…ef used'
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("sk"):
            return _mask(match.group("sk"))
        if match.group("bearer"):
            return match.group("bearer") + _mask(match.group("token"))
        return match.group("label") + _mask(match.group("value"))

    return _SECRET.sub(replace, text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole line, tracebacks included (the filter sees only the message)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own line per request replaces uvicorn's access log (cheaper, and it knows the model).
    logging.getLogger("uvicorn.access").disabled = True
