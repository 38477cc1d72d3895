"""Logging, with secrets masked before any line is written.

Every record passes through ``RedactingFilter``: API keys (``sk-…``), bearer tokens and anything
labelled as a token or key keep a few characters to be recognisable, never enough to be used
(``iflow2api.redact``).
"""

from __future__ import annotations

import logging

from iflow2api.redact import redact

__all__ = ["RedactingFilter", "RedactingFormatter", "redact", "setup"]


#: What every secret ``redact`` masks holds one of (in ASCII, any case): its ``sk-`` or its label.
_MARKERS = ("sk-", "bearer", "token", "apikey", "api_key", "secret")


def _redacted(text: str) -> str:
    """``redact(text)``, without running its patterns over a plain ASCII line that holds none of
    their markers: a line per request goes through here, and most hold no secret.

    >>> _redacted("POST /v1/chat/completions 200 3.1 ms"), _redacted("Bearer abcdefgh123")
    ('POST /v1/chat/completions 200 3.1 ms', 'Bearer abcd…23')
    """
    if text.isascii():
        lowered = text.lower()
        if not any(marker in lowered for marker in _MARKERS):
            return text
    return redact(text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _redacted(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole line, tracebacks included (the filter sees only the message)."""

    def format(self, record: logging.LogRecord) -> str:
        return _redacted(super().format(record))


def redacting_handler(fmt: str, datefmt: str | None = None) -> logging.Handler:
    """A handler to stderr that never writes a secret."""
    stream = logging.StreamHandler()
    stream.setFormatter(RedactingFormatter(fmt, datefmt))
    stream.addFilter(RedactingFilter())
    return stream


def setup(level: str) -> None:
    handler = redacting_handler("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    # Nothing logged shows the process or thread: not looking them up makes each record cheaper.
    logging.logProcesses = logging.logMultiprocessing = logging.logThreads = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own line per request replaces uvicorn's access log (cheaper, and it knows the model).
    logging.getLogger("uvicorn.access").disabled = True
