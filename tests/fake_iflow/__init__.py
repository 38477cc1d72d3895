"""A fake iFlow server for tests: real HTTP on 127.0.0.1, scriptable replies, a record of requests."""

from tests.fake_iflow.checks import (
    CATALOGUE_IDS,
    DEFAULT_KEY,
    HIDDEN_IDS,
    IFLOW_MODEL_IDS,
    OPENAI_MODEL_IDS,
    signature,
)
from tests.fake_iflow.replies import (
    DEFAULT_CONTENT,
    DEFAULT_USAGE,
    BusinessError,
    Completion,
    Hang,
    HttpError,
    JsonOnStream,
    Reply,
    Stream,
)
from tests.fake_iflow.server import FakeIflow, ReceivedRequest

__all__ = [
    "CATALOGUE_IDS",
    "DEFAULT_CONTENT",
    "DEFAULT_KEY",
    "DEFAULT_USAGE",
    "HIDDEN_IDS",
    "IFLOW_MODEL_IDS",
    "OPENAI_MODEL_IDS",
    "BusinessError",
    "Completion",
    "FakeIflow",
    "Hang",
    "HttpError",
    "JsonOnStream",
    "ReceivedRequest",
    "Reply",
    "Stream",
    "signature",
]
