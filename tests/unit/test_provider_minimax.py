"""The minimax profile: the ``<think>`` splitter, the stream rewriter, the body, the errors."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from iflow2api import errors
from iflow2api.dialects.intent import Intent
from iflow2api.providers import Profiles, for_host
from iflow2api.providers.minimax import Minimax, MinimaxRewriter
from iflow2api.providers.think_tags import ThinkSplitter, split_think
from tests.fake_iflow.hosts.minimax import error_body

TEXT = "<think>\nfirst, think\n</think>\n\nThe answer"
REASONING = "\nfirst, think\n"


def split_in(text: str, cuts: list[int]) -> tuple[str, str, list[tuple[str, str]]]:
    splitter = ThinkSplitter()
    bounds = [0, *cuts, len(text)]
    outs = [splitter.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    outs.append(splitter.finish())
    return "".join(r for r, _ in outs), "".join(a for _, a in outs), outs


@pytest.mark.parametrize("cut", range(1, len(TEXT)))
def test_a_tag_cut_anywhere_is_still_found(cut: int) -> None:
    reasoning, answer, _ = split_in(TEXT, [cut])
    assert (reasoning, answer) == (REASONING, "The answer")


def test_one_character_at_a_time() -> None:
    reasoning, answer, outs = split_in(TEXT, list(range(1, len(TEXT))))
    assert (reasoning, answer) == (REASONING, "The answer")
    # No piece of a tag ever reaches either side.
    assert not any("<" in r or "<" in a for r, a in outs)


def test_text_without_tags_is_all_answer() -> None:
    assert split_in("Just an answer", [3, 7]) == (
        "",
        "Just an answer",
        [("", "Jus"), ("", "t an"), ("", " answer"), ("", "")],
    )


def test_a_tag_later_in_the_answer_is_the_answer_own_text() -> None:
    text = "Use <think> tags like <think>x</think>"
    assert split_in(text, [5, 9])[:2] == ("", text)


def test_a_lone_less_than_sign_is_answer() -> None:
    assert split_in("<b>bold</b>", [1])[:2] == ("", "<b>bold</b>")
    assert split_in("<", [])[:2] == ("", "<")


def test_an_unclosed_block_at_the_end_is_reasoning() -> None:
    assert split_in("<think>cut short by max_tokens</th", [9])[:2] == ("cut short by max_tokens</th", "")


def test_whole_answers_split_the_same_way() -> None:
    assert split_think(TEXT) == (REASONING, "The answer")
    assert split_think("no tags") == (None, "no tags")


# --- the profile ------------------------------------------------------------------------------


def profile(**options: object) -> Minimax:
    return Minimax(options=options)


def rewriter(**options: object) -> MinimaxRewriter:
    made = profile(**options).rewriter(CHAT)
    assert isinstance(made, MinimaxRewriter)
    return made


CHAT: dict[str, Any] = {"model": "MiniMax-M3", "messages": [{"role": "user", "content": "hi"}]}


def test_hosts_name_the_profile() -> None:
    assert for_host("https://api.minimax.io/v1") == "minimax"
    assert for_host("https://api.minimaxi.com/v1") == "minimax"


@pytest.mark.parametrize(
    ("model", "intent", "thinking", "header"),
    [
        ("MiniMax-M3", Intent("on", "high"), {"type": "adaptive"}, "adaptive"),
        ("MiniMax-M3", Intent("adaptive"), {"type": "adaptive"}, "adaptive"),
        ("MiniMax-M3", Intent("off"), {"type": "disabled"}, "disabled"),
        ("MiniMax-M3", Intent(), None, None),
        ("MiniMax-M2.7", Intent("off"), None, "always on (the M2 family cannot turn thinking off)"),
        ("MiniMax-M2.7", Intent("on", "low"), None, "always on (the M2 family cannot turn thinking off)"),
    ],
)
def test_thinking_per_model(model: str, intent: Intent, thinking: object, header: str | None) -> None:
    prepared = profile().build_body({**CHAT, "model": model, "reasoning_effort": "high"}, intent)
    assert prepared.body.get("thinking") == thinking
    assert prepared.thinking == header
    assert "reasoning_effort" not in prepared.body
    assert prepared.body["reasoning_split"] is True


def test_effort_is_sent_only_when_the_option_says() -> None:
    prepared = profile(send_reasoning_effort=True).build_body({**CHAT, "reasoning_effort": "low"}, None)
    assert prepared.body["reasoning_effort"] == "low"
    assert prepared.thinking == "adaptive; reasoning_effort=low"


def test_a_client_enabled_switch_becomes_adaptive() -> None:
    prepared = profile().build_body({**CHAT, "thinking": {"type": "enabled"}}, None)
    assert prepared.body["thinking"] == {"type": "adaptive"}


def test_parameters_are_brought_into_minimax_ranges() -> None:
    function: dict[str, Any] = {"name": "f", "parameters": {}, "strict": True}
    tool = {"type": "function", "function": function}
    request = {**CHAT, "max_tokens": 900_000, "temperature": 0, "top_p": 1.5, "tools": [tool]}
    body = profile().build_body(request, None).body
    assert "max_tokens" not in body and body["max_completion_tokens"] == 524_288
    assert (body["temperature"], body["top_p"]) == (0.01, 1.0)
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert function["strict"] is True  # the client's request is left alone
    assert request["max_tokens"] == 900_000


def test_reasoning_goes_back_as_reasoning_details_or_think() -> None:
    turn = {"role": "assistant", "content": "", "reasoning_content": "R\n", "tool_calls": [{"id": "c"}]}
    request = {**CHAT, "messages": [*CHAT["messages"], turn, {"role": "tool", "content": "x"}]}
    split = profile().build_body(request, None).body["messages"][1]
    assert "reasoning_content" not in split
    assert split["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "id": "reasoning-text-1",
            "format": "MiniMax-response-v1",
            "index": 0,
            "text": "R\n",
        }
    ]
    tagged = profile(reasoning_split=False).build_body(request, None).body["messages"][1]
    assert tagged["content"] == "<think>R\n</think>\n\n"
    assert "reasoning_split" not in profile(reasoning_split=False).build_body(request, None).body
    assert "reasoning_content" in turn  # never edited in place


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "model": "MiniMax-M3",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def run(rewriter: Any, chunks: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    out = [c for piece in chunks for c in rewriter.feed(piece)] + rewriter.finish()
    deltas = [choice["delta"] for c in out for choice in c.get("choices") or ()]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    return reasoning, "".join(d.get("content", "") for d in deltas), out


def test_a_stream_with_tags_across_chunks() -> None:
    pieces = [TEXT[i : i + 4] for i in range(0, len(TEXT), 4)]
    reasoning, answer, out = run(rewriter(), [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
    assert (reasoning, answer) == (REASONING, "The answer")
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_an_unclosed_block_is_flushed_by_the_finish_chunk_or_the_end() -> None:
    reasoning, answer, out = run(
        rewriter(), [chunk({"content": "<think>so"}), chunk({"content": "me </thi"})]
    )
    assert (reasoning, answer) == ("some </thi", "")
    reasoning, _, out = run(rewriter(), [chunk({"content": "<think>a</th"}), chunk({}, "length")])
    assert reasoning == "a</th" and out[-1]["choices"][0]["delta"] == {"reasoning_content": "</th"}


def test_reasoning_details_become_reasoning_content() -> None:
    detail = {"type": "reasoning.text", "text": "step"}
    chunks = [chunk({"reasoning_details": [{**detail, "text": t}]}) for t in ("a", "b")] + [
        chunk({"content": "ok"})
    ]
    assert run(rewriter(), chunks)[:2] == ("ab", "ok")
    cumulative = [chunk({"reasoning_details": [{**detail, "text": t}]}) for t in ("a", "ab", "abc")]
    assert run(rewriter(reasoning_details_stream="cumulative"), cumulative)[0] == "abc"


def test_reasoning_sent_twice_is_relayed_once() -> None:
    both = chunk({"reasoning_content": "r", "reasoning_details": [{"type": "reasoning.text", "text": "r"}]})
    tagged = chunk({"content": "<think>r</think>answer"})
    assert run(rewriter(), [both, tagged])[:2] == ("r", "answer")


def test_an_error_chunk_loses_its_choices_so_it_is_judged() -> None:
    failed = {"choices": [], "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}
    (out,) = rewriter().feed(failed)
    assert "choices" not in out
    assert isinstance(profile().business_error(out), errors.UpstreamRateLimited)
    ok = rewriter().feed(chunk({"content": "x"}, base_resp={"status_code": 0, "status_msg": ""}))
    assert "base_resp" not in ok[0] and profile().business_error({"base_resp": {"status_code": 0}}) is None


def test_whole_answers_are_normalized() -> None:
    completion: dict[str, Any] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT, "name": "MiniMax AI"}}],
        "usage": {"prompt_tokens": 9, "total_characters": 0, "cache_read_input_tokens": 4},
        "base_resp": {"status_code": 0, "status_msg": ""},
    }
    assert profile().normalize_completion(completion) is True
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "The answer",
        "reasoning_content": REASONING,
    }
    assert completion["usage"] == {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}
    assert "base_resp" not in completion
    split = {
        "choices": [
            {"message": {"content": "ok", "reasoning_details": [{"type": "reasoning.text", "text": "r"}]}}
        ]
    }
    profile().normalize_completion(split)
    assert split["choices"][0]["message"] == {"content": "ok", "reasoning_content": "r"}


@pytest.mark.parametrize(
    ("status", "kind", "message", "error", "client_status"),
    [
        (401, "authorized_error", "login fail: bad key (1004)", errors.UpstreamAuthError, 401),
        (402, "insufficient_balance_error", "insufficient balance (1008)", errors.OutOfCredit, 429),
        (500, "api_error", "insufficient balance (1008)", errors.OutOfCredit, 429),
        (400, "bad_request_error", "invalid params, unknown model 'x' (2013)", errors.ModelNotFound, 404),
        (
            400,
            "bad_request_error",
            "invalid params, context window exceeds limit (2013)",
            errors.ContextTooLong,
            400,
        ),
        (400, "bad_request_error", "invalid params, binding: missing (2013)", errors.InvalidRequest, 400),
        (429, "rate_limit_error", "too many requests (1002)", errors.UpstreamRateLimited, 429),
        (500, "api_error", "internal error (1024)", errors.UpstreamError, 502),
    ],
)
def test_http_errors_by_their_code(
    status: int, kind: str, message: str, error: type[errors.GatewayError], client_status: int
) -> None:
    import orjson

    found = profile().http_error(status, orjson.dumps(error_body(kind, message, status)), None, None)
    assert type(found) is error
    assert found.status == client_status
    assert message in found.message


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1002, errors.UpstreamRateLimited),
        (1004, errors.UpstreamAuthError),
        (1008, errors.OutOfCredit),
        (2013, errors.InvalidRequest),
        (1000, errors.UpstreamError),
    ],
)
def test_errors_inside_a_200(code: int, error: type[errors.GatewayError]) -> None:
    found = profile().business_error(
        {"choices": None, "base_resp": {"status_code": code, "status_msg": "why"}}
    )
    assert type(found) is error and "why" in found.message


def test_options_reach_the_profile_through_the_setting() -> None:
    profiles = Profiles(thinking_default=None, options=[("minimax", "reasoning_split", "false")])
    assert profiles._instances["minimax"].option_values["reasoning_split"] is False
