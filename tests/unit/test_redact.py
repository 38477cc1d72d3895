"""Upstream text made safe: an account's own secrets removed whole, whatever their shape, and
anything shaped like a key or a bearer token masked, before it is logged, stored or sent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from iflow2api.dialects.anthropic import errors as anthropic_errors
from iflow2api.dialects.anthropic import stream as anthropic_stream
from iflow2api.dialects.openai_chat import errors as chat_errors
from iflow2api.dialects.openai_chat import stream as chat_chunks
from iflow2api.dialects.responses import errors as responses_errors
from iflow2api.dialects.responses import stream as responses_stream
from iflow2api.errors import GatewayError, UpstreamAuthError
from iflow2api.providers import openai_wire as openai_compatible
from iflow2api.providers.generic import Generic
from iflow2api.providers.iflow import rules as iflow
from iflow2api.redact import redact

SK_KEY = "sk-4f1c9a0b7e2d4c6a8b1e3f5a7c9d0e2f"
ODD_KEY = "AKIAzq9mV7xR2pL4tN8wK3jH6"  # an account secret no pattern recognises
QUOTED = f"Incorrect API key provided: Bearer {SK_KEY}. You can find your API key at ..."


def test_an_accounts_own_secret_is_removed_whatever_its_shape() -> None:
    text = f"Incorrect API key provided: {ODD_KEY}; again: {ODD_KEY}."
    cleaned = redact(text, [ODD_KEY])
    assert ODD_KEY not in cleaned
    assert ODD_KEY[:6] not in cleaned  # removed whole, not masked
    assert cleaned.startswith("Incorrect API key provided: ") and cleaned.endswith(".")


def test_key_shaped_text_is_masked_without_being_named() -> None:
    cleaned = redact(QUOTED)
    assert SK_KEY not in cleaned
    assert "Incorrect API key provided" in cleaned


def test_the_longest_secret_goes_first() -> None:
    # A secret that holds another must not leave its remainder behind.
    cleaned = redact("token abcdefgh12345678-rest", ["abcdefgh12345678", "abcdefgh12345678-rest"])
    assert "rest" not in cleaned


@pytest.mark.parametrize("secret", ["", "short"])
def test_empty_and_very_short_secrets_do_not_erase_ordinary_words(secret: str) -> None:
    assert redact("a short answer", [secret]) == "a short answer"


def test_ordinary_text_is_untouched() -> None:
    assert redact("The model glm-4.7 is busy.", [ODD_KEY]) == "The model glm-4.7 is busy."


# -- where upstream text becomes an error ----------------------------------------------------------


def upstream_401(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


@pytest.mark.parametrize(
    "make",
    [
        lambda raw: iflow.http_error(401, raw, None, available_models=[]),
        lambda raw: iflow.http_error(500, raw, None, available_models=[]),
        lambda raw: iflow.http_error(
            401, b"<html>" + QUOTED.encode() + b"</html>", None, available_models=[]
        ),
        lambda raw: iflow.business_error(orjson.loads(raw), available_models=[]),
        lambda raw: iflow.business_error({"status": "434", "msg": QUOTED}, available_models=[]),
        lambda raw: iflow.business_error({"status": "500", "msg": QUOTED}, available_models=[]),
        lambda raw: iflow.http_error(400, orjson.dumps({"msg": QUOTED}), None, available_models=[]),
        lambda raw: openai_compatible.http_error(401, raw),
        lambda raw: openai_compatible.http_error(502, QUOTED.encode()),
        lambda raw: openai_compatible.business_error(orjson.loads(raw)),
    ],
)
def test_upstream_errors_mask_key_shaped_text(make: Any) -> None:
    error = make(upstream_401(QUOTED))
    assert isinstance(error, GatewayError)
    assert SK_KEY not in error.message
    assert SK_KEY[6:] not in str(error)


# -- the last line of defence: the renderers -------------------------------------------------------


@pytest.mark.parametrize(
    "render",
    [
        chat_errors.error_body,
        chat_errors.error_frame,
        anthropic_errors.error_body,
        responses_errors.error_body,
        lambda error: b"".join(anthropic_stream.StreamTranslator(model="m").error(error)),
        lambda error: b"".join(
            responses_stream.StreamTranslator(
                request={"model": "m", "input": "hi"}, response_id="resp_1", created_at=1
            ).error(error)
        ),
    ],
)
def test_renderers_mask_key_shaped_text(render: Any) -> None:
    error = UpstreamAuthError(f"made elsewhere: {QUOTED}")
    shown = render(error).decode()
    assert SK_KEY not in shown
    assert "made elsewhere: Incorrect API key provided" in shown


def test_an_error_event_mid_stream_is_masked_before_it_is_passed_on() -> None:
    relay = chat_chunks.StreamRelay(include_usage=False, classify=Generic().business_error)
    relay.feed(b'{"choices": [{"index": 0, "delta": {"content": "hi"}}]}')
    relay.feed(upstream_401(QUOTED))
    shown = b"".join(relay.finish())  # the error event that ends the stream
    assert b"Incorrect API key provided" in shown
    assert SK_KEY.encode() not in shown


def test_an_upstreams_code_and_param_are_masked_too() -> None:
    raw = orjson.dumps({"error": {"message": "bad", "code": f"key_{SK_KEY}", "param": f"Bearer {SK_KEY}"}})
    error = openai_compatible.http_error(400, raw)
    assert SK_KEY not in f"{error.code} {error.param}"


def test_words_that_merely_end_in_sk_are_left_alone() -> None:
    assert redact("the disk-usage-abcdefghij report") == "the disk-usage-abcdefghij report"


def test_a_key_cut_in_half_by_a_short_quote_is_removed_too() -> None:
    from iflow2api.services.answers import parse_json
    from iflow2api.services.redaction import redacted

    key = "AKIAZXCVBNMASDFGHJKLQWERTY0123456789"
    body = b"x" * 185 + f"key={key} and more".encode()  # not JSON: quoted, cut at 200 bytes
    with pytest.raises(GatewayError) as caught:
        parse_json(body)
    assert key[:10] in caught.value.message  # the cut fell inside the key
    shown = redacted(caught.value, (key,)).message
    assert key[:8] not in shown and "[redacted]" in shown
