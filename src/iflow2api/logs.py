"""Logging, with secrets masked before any line is written.

Every record passes through ``RedactingFilter``: API keys (``sk-…``), bearer tokens and anything
labelled as a token or key keep a few characters to be recognisable, never enough to be used
(``iflow2api.redact``).

Under ``iflow2api serve`` a record is only queued where it is logged: a thread formats, redacts
and writes it (``setup``), so the line per request costs the event loop little.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue

from iflow2api.redact import redact

__all__ = ["RedactingFilter", "RedactingFormatter", "redact", "setup", "stop"]


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


#: Arguments a queued record can keep: nothing can change them before the thread formats it.
_FIXED = (str, int, float, bool, type(None))


class _Queueing(logging.handlers.QueueHandler):
    """Queues a record as it is, unless formatting it later could tell another story."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if (
            record.exc_info is None
            and isinstance(record.msg, str)
            and (not args or (isinstance(args, tuple) and all(isinstance(arg, _FIXED) for arg in args)))
        ):
            return record
        # A mutable argument or a traceback: the message is made now, as the stdlib's handler does.
        prepared: logging.LogRecord = super().prepare(record)
        return prepared


_listener: logging.handlers.QueueListener | None = None


def stop() -> None:
    """Write every queued line and end the writing thread; ``setup`` makes this run at exit."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def setup(level: str) -> None:
    global _listener
    stop()
    handler = redacting_handler("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    # Nothing logged shows the process or thread: not looking them up makes each record cheaper.
    logging.logProcesses = logging.logMultiprocessing = logging.logThreads = False
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(lines, handler)
    _listener.start()
    atexit.register(stop)
    root = logging.getLogger()
    root.handlers[:] = [_Queueing(lines)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own line per request replaces uvicorn's access log (cheaper, and it knows the model).
    logging.getLogger("uvicorn.access").disabled = True
