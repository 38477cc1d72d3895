from __future__ import annotations

import logging
import sys

import pytest

from iflow2api.logs import RedactingFilter, redact

SECRETS = [
    "sk-0123456789abcdef0123456789abcdef",
    "Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
    "access_token=abcdef0123456789",
    '"refresh_token": "zyxwvu9876543210"',
]


@pytest.mark.parametrize("text", SECRETS)
def test_secrets_are_masked(text: str) -> None:
    secret = text.split()[-1].split("=")[-1].strip('"')
    cleaned = redact(f"before {text} after")
    assert secret not in cleaned
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


def test_ordinary_text_is_untouched() -> None:
    assert redact("POST /v1/chat/completions 200 3.1 ms model=glm-4.7") == (
        "POST /v1/chat/completions 200 3.1 ms model=glm-4.7"
    )


def test_filter_rewrites_the_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", ("sk-0123456789abcdef0123",), None)
    assert RedactingFilter().filter(record)
    assert "sk-0123456789abcdef0123" not in record.getMessage()


def test_formatter_masks_tracebacks_too() -> None:
    from iflow2api.logs import RedactingFormatter

    try:
        raise RuntimeError("failed with key sk-0123456789abcdef0123456789abcdef")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    line = RedactingFormatter("%(message)s").format(record)
    assert "RuntimeError" in line
    assert "sk-0123456789abcdef0123456789abcdef" not in line


def test_setup_writes_lines_from_a_thread_and_all_of_them_by_stop(capsys: pytest.CaptureFixture[str]) -> None:
    from iflow2api import logs

    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    handlers, level, disabled = root.handlers[:], root.level, access.disabled
    try:
        logs.setup("info")
        log = logging.getLogger("iflow2api.test")
        shown = ["before"]
        log.info("%s %s %s %.1f ms", "POST", "/v1/chat/completions", 200, 3.14)
        log.info("key sk-%s in %s", "abcdefghijklmnopqrstuvwxyz", shown)
        shown[0] = "after"  # a mutable argument is formatted as it was when logged
        logs.stop()
        lines = capsys.readouterr().err.splitlines()
    finally:
        logs.stop()
        root.handlers[:], root.level, access.disabled = handlers, level, disabled
    assert lines[0].endswith(" INFO    iflow2api.test: POST /v1/chat/completions 200 3.1 ms")
    assert "['before']" in lines[1] and "abcdefghijklmnopqrstuvwxyz" not in lines[1]
