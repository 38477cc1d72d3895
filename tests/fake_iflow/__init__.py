"""A fake iFlow server for tests: real HTTP on 127.0.0.1, scriptable replies, a record of requests."""

from tests.fake_iflow.checks import (
    BASIC_AUTH,
    CATALOGUE_IDS,
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_KEY,
    HIDDEN_IDS,
    IFLOW_MODEL_IDS,
    OPENAI_MODEL_IDS,
    signature,
)
from tests.fake_iflow.oauth import (
    BUSY_BODY,
    FakeOAuth,
    Login,
    TokenFailure,
    TokenRequest,
    UserInfoFailure,
    UserInfoRequest,
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
    "BASIC_AUTH",
    "BUSY_BODY",
    "CATALOGUE_IDS",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DEFAULT_CONTENT",
    "DEFAULT_KEY",
    "DEFAULT_USAGE",
    "HIDDEN_IDS",
    "IFLOW_MODEL_IDS",
    "OPENAI_MODEL_IDS",
    "BusinessError",
    "Completion",
    "FakeIflow",
    "FakeOAuth",
    "Hang",
    "HttpError",
    "JsonOnStream",
    "Login",
    "ReceivedRequest",
    "Reply",
    "Stream",
    "TokenFailure",
    "TokenRequest",
    "UserInfoFailure",
    "UserInfoRequest",
    "signature",
]
