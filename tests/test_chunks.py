"""The OpenAI chunk layer: events -> deltas, with the shapes real relays send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shenma_magic import StreamError
from shenma_magic._chunks import ChunkDecoder, deltas_from_completion
from shenma_magic._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    NoticeDelta,
    ReasoningDelta,
    ReplyBuilder,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from shenma_magic._sse import ServerSentEvent


def ev(obj: Any, event: str = "message") -> ServerSentEvent:
    return ServerSentEvent(obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False), event)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **extra,
    }


def run(events: list[ServerSentEvent]) -> tuple[list[Delta], ChunkDecoder]:
    dec = ChunkDecoder()
    out: list[Delta] = []
    for e in events:
        out.extend(dec.decode(e))
        if dec.done:
            break
    return out, dec


def test_content_and_finish_and_usage_chunk_with_empty_choices() -> None:
    out, dec = run(
        [
            ev(chunk({"role": "assistant", "content": ""})),
            ev(chunk({"content": "鲁迅"})),
            ev(chunk({"content": None})),
            ev(chunk({}, finish="stop")),
            ev({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
            ev("[DONE]"),
            ev(chunk({"content": "after done"})),
        ]
    )
    assert [d for d in out if not isinstance(d, MetaDelta)] == [
        TextDelta("鲁迅"),
        FinishDelta("stop"),
        UsageDelta({"prompt_tokens": 5, "completion_tokens": 2}),
    ]
    assert out[0] == MetaDelta("gpt-4o-mini", "c1")
    assert dec.done and dec.finish_reason == "stop"


@pytest.mark.parametrize("done", ["[DONE]", " [DONE] ", "[DONE]\n"])
def test_done_with_whitespace(done: str) -> None:
    _, dec = run([ev(done)])
    assert dec.done


def test_null_and_missing_choices_are_not_errors() -> None:
    out, _ = run([ev({"id": "x", "choices": None}), ev({"id": "x"}), ev({"choices": [{"index": 0}]})])
    assert out == []


def test_empty_payload_is_skipped() -> None:
    out, _ = run([ev(""), ev("   ")])
    assert out == []


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_is_its_own_kind_of_delta(key: str) -> None:
    out, _ = run([ev(chunk({key: "think", "content": None})), ev(chunk({"content": "answer"}))])
    texts = [d for d in out if isinstance(d, (TextDelta, ReasoningDelta))]
    assert texts == [ReasoningDelta("think"), TextDelta("answer")]


def test_reasoning_content_preferred_over_reasoning() -> None:
    out, _ = run([ev(chunk({"reasoning_content": "a", "reasoning": "a"}))])
    assert [d for d in out if isinstance(d, ReasoningDelta)] == [ReasoningDelta("a")]


def test_tool_calls_are_not_content_and_assemble() -> None:
    events = [
        ev(chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]})),
        ev(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]})),
        ev(chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]})),
        ev(chunk({}, finish="tool_calls")),
    ]
    out, _ = run(events)
    assert not [d for d in out if isinstance(d, TextDelta)]
    assert next(d for d in out if isinstance(d, ToolCallDelta)) == ToolCallDelta(0, "call_1", "f", "")
    builder = ReplyBuilder()
    for d in out:
        builder.add(d)
    reply = builder.build()
    assert reply.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]
    assert reply.finish_reason == "tool_calls" and reply == ""


def test_only_choice_zero_is_shown() -> None:
    obj = {"choices": [{"index": 1, "delta": {"content": "B"}}, {"index": 0, "delta": {"content": "A"}}]}
    out, _ = run([ev(obj)])
    assert out == [TextDelta("A")]


def test_malformed_json_is_skipped_with_a_notice_and_the_stream_goes_on() -> None:
    out, _ = run([ev('{"choices": [{"delta": {"content": "a"'), ev(chunk({"content": "b"}))])
    assert isinstance(out[0], NoticeDelta) and "malformed" in out[0].message
    assert TextDelta("b") in out


@pytest.mark.parametrize(
    "event",
    [
        ev({"error": {"message": "当前分组 default 下对于模型 x 无可用渠道", "type": "new_api_error"}}),
        ev(
            {
                "object": "error",
                "message": "当前分组 default 下对于模型 x 无可用渠道",
                "type": "BadRequestError",
                "code": 400,
            }
        ),
        ev({"message": "当前分组 default 下对于模型 x 无可用渠道"}, event="error"),
        ev("当前分组 default 下对于模型 x 无可用渠道", event="error"),
    ],
)
def test_errors_inside_the_stream_carry_the_server_message(event: ServerSentEvent) -> None:
    with pytest.raises(StreamError) as info:
        run([ev(chunk({"content": "partial"})), event])
    assert "无可用渠道" in info.value.server_message
    assert "无可用渠道" in str(info.value)
    assert info.value.hint  # something to do


def test_content_as_list_of_parts() -> None:
    out, _ = run([ev(chunk({"content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}))])
    assert TextDelta("hi") in out


def test_reply_without_finish_reason_is_incomplete_even_after_done() -> None:
    out, dec = run([ev(chunk({"content": "cut"})), ev("[DONE]")])
    builder = ReplyBuilder()
    for d in out:
        builder.add(d)
    reply = builder.build()
    assert dec.done and reply == "cut" and reply.complete is False and reply.finish_reason is None


def test_whole_completion_object() -> None:
    obj = {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "整段"}, "finish_reason": "stop"}
        ],
        "usage": {"total_tokens": 3},
    }
    out = deltas_from_completion(obj)
    assert TextDelta("整段") in out and FinishDelta("stop") in out and UsageDelta({"total_tokens": 3}) in out
