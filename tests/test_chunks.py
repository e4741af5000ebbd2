"""The OpenAI chunk layer: events -> deltas, with the shapes real relays send."""

from __future__ import annotations

import json
import pickle
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic import StreamError
from shenma_magic._chunks import ChunkDecoder, deltas_from_completion
from shenma_magic._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    NoticeDelta,
    ReasoningDelta,
    Reply,
    ReplyBuilder,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from shenma_magic._sse import ServerSentEvent
from tests.relay import Chunk, Relay, Scripted


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


# -- valid text whatever the JSON escapes ----------------------------------------------------------------


def escaped(units: list[int], upper: bool = False) -> str:
    """A JSON string literal spelling every UTF-16 code unit as an escape, as ensure_ascii servers do."""
    return '"' + "".join(f"\\u{u:04X}" if upper else f"\\u{u:04x}" for u in units) + '"'


def paired(units: list[int]) -> str:
    """The reference decoding: the code units as UTF-16, pairs joined and lone surrogates as U+FFFD."""
    return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", "replace")


def raw_event(kind: str | int, literal: str) -> ServerSentEvent:
    if kind in ("content", "reasoning_content"):
        delta = f'{{"{kind}":{literal}}}'
    else:
        delta = f'{{"tool_calls":[{{"index":{kind},"function":{{"arguments":{literal}}}}}]}}'
    return ServerSentEvent(f'{{"choices":[{{"index":0,"delta":{delta}}}]}}')


def all_strings(delta: Delta) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(tuple(delta))
    return found


UNIT = st.one_of(
    st.integers(0xD800, 0xDFFF),  # surrogates, high and low, in any order
    st.sampled_from([0xD83D, 0xDE00, 0xDC00, 0xDBFF, 0x0000, 0x0022, 0x005C, 0x4E2D, 0x0041]),
    st.integers(0, 0xFFFF),
)
KIND = st.sampled_from(["content", "reasoning_content", 0, 1])


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(st.tuples(KIND, st.lists(UNIT, max_size=6), st.booleans()), max_size=12),
    end=st.sampled_from(["finish", "done", "flush"]),
)
def test_any_escapes_split_any_way_give_the_paired_text(
    events: list[tuple[str | int, list[int], bool]], end: str
) -> None:
    dec = ChunkDecoder()
    out: list[Delta] = []
    for kind, units, upper in events:
        out.extend(dec.decode(raw_event(kind, escaped(units, upper))))
    if end == "finish":
        out.extend(dec.decode(ev(chunk({}, finish="stop"))))
    elif end == "done":
        out.extend(dec.decode(ev("[DONE]")))
    out.extend(dec.flush())
    for delta in out:
        for text in all_strings(delta):
            text.encode("utf-8")  # never raises
    got: dict[str | int, str] = {"content": "", "reasoning_content": "", 0: "", 1: ""}
    for delta in out:
        if isinstance(delta, TextDelta):
            got["content"] += delta.text
        elif isinstance(delta, ReasoningDelta):
            got["reasoning_content"] += delta.text
        elif isinstance(delta, ToolCallDelta):
            got[delta.call_index] += delta.arguments
    for kind in got:
        assert got[kind] == paired([u for k, units, _ in events if k == kind for u in units]), kind


@pytest.mark.parametrize(
    ("pieces", "text"),
    [
        ([[0xD83D], [0xDE00]], "😀"),  # a pair split across two events
        ([[0xD83D, 0xDE00]], "😀"),
        ([[0xDE00, 0xD83D]], "\ufffd\ufffd"),  # reversed
        ([[0xD83D], [0x41]], "\ufffdA"),  # a high half followed by something else
        ([[0x41, 0xDC00, 0x42]], "A\ufffdB"),  # a lone low half
        ([[0xD83D], [], [0xDE00]], "😀"),  # an empty piece in between keeps the half waiting
        ([[0x0000]], "\x00"),  # NUL is valid text and stays
        ([[0xD83D]], "\ufffd"),  # a half at the very end
    ],
)
def test_surrogate_table(pieces: list[list[int]], text: str) -> None:
    dec = ChunkDecoder()
    out = [d for units in pieces for d in dec.decode(raw_event("content", escaped(units)))]
    out += dec.decode(ev(chunk({}, finish="stop")))
    got = "".join(d.text for d in out if isinstance(d, TextDelta))
    assert got == text
    assert out[-1] == FinishDelta("stop")


def test_other_server_strings_are_made_valid_too() -> None:
    usage = '{"prompt_tokens":1,"completion_tokens":2,"note\\ud800":"\\udfff"}'
    data = f'{{"id":"c\\ud800","model":"m\\udc00","choices":[],"usage":{usage}}}'
    out = ChunkDecoder().decode(ServerSentEvent(data))
    assert out == [
        MetaDelta("m\ufffd", "c\ufffd"),
        UsageDelta({"prompt_tokens": 1, "completion_tokens": 2, "note\ufffd": "\ufffd"}),
    ]


@pytest.mark.parametrize(
    "data",
    [
        '{"error":{"message":"bad \\ud83d","type":"x\\udc00"}}',
        '{"object":"error","message":"\\ud800 lone"}',
    ],
)
def test_an_error_with_lone_surrogates_can_be_printed(data: str) -> None:
    with pytest.raises(StreamError) as info:
        ChunkDecoder().decode(ServerSentEvent(data))
    str(info.value).encode("utf-8")
    info.value.server_message.encode("utf-8")


def test_a_whole_completion_with_a_lone_surrogate() -> None:
    obj = json.loads(
        '{"model":"m","choices":[{"index":0,"message":{"content":"a\\ud83d"},"finish_reason":"stop"}]}'
    )
    out = deltas_from_completion(obj)
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == "a\ufffd"
    assert out[-1] == FinishDelta("stop")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            {"index": 0, "id": 7, "function": {"name": 3, "arguments": {"x": 1}}},
            ToolCallDelta(0, None, None, '{"x": 1}'),
        ),
        ({"index": True, "function": {"name": "f", "arguments": None}}, ToolCallDelta(0, None, "f", "")),
        ({"index": 2, "function": "not an object"}, ToolCallDelta(2, None, None, "")),
    ],
)
def test_tool_call_fields_of_the_wrong_type_do_not_break_the_reply(
    call: dict[str, Any], expected: ToolCallDelta
) -> None:
    out, _ = run([ev(chunk({"tool_calls": [call]})), ev(chunk({}, finish="tool_calls"))])
    assert expected in out
    builder = ReplyBuilder()
    for d in out:
        builder.add(d)
    builder.build()


def test_text_parts_that_are_not_strings_are_skipped() -> None:
    out, _ = run(
        [ev(chunk({"content": [{"type": "text", "text": 5}, {"type": "text", "text": "ok"}, 3, "s"]}))]
    )
    assert [d for d in out if isinstance(d, TextDelta)] == [TextDelta("oks")]


def test_a_pair_split_across_events_from_a_real_server(relay: Relay) -> None:
    from shenma_magic import ChatClient

    body: list[Chunk] = [
        b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"\\u4f60\\ud83d"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"\\ude00!"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    ]
    relay.enqueue(Scripted(chunks=body))
    reply = ChatClient(relay.url, "sk-test-pair-000000000000").complete([{"role": "user", "content": "q"}])
    assert reply == "你😀!" and reply.complete
    reply.encode("utf-8")


# -- events separated by a single newline (some proxies) ------------------------------------------------


def line_of(text: str) -> str:
    return json.dumps(chunk({"content": text}), ensure_ascii=False)


PRETTY = json.dumps(chunk({"content": "整个"}), ensure_ascii=False, indent=2)  # one event, many lines


@pytest.mark.parametrize(
    ("data_lines", "texts", "done", "notices"),
    [
        ([line_of("a"), line_of("b")], ["a", "b"], False, 0),
        ([line_of("a"), line_of("b"), "[DONE]"], ["a", "b"], True, 0),
        ([line_of(str(i)) for i in range(10)], [str(i) for i in range(10)], False, 0),
        ([line_of("a"), "", "  ", line_of("b")], ["a", "b"], False, 0),  # blank data lines in between
        ([" " + line_of("a") + " ", "[DONE] "], ["a"], True, 0),
        (["[DONE]", line_of("after")], [], True, 0),  # nothing after [DONE] counts
        (PRETTY.split("\n"), ["整个"], False, 0),  # real multi-line JSON stays one event
        ([line_of("a"), '{"choices": [{"delta": {"content": "b"'], [], False, 1),  # one line cut: malformed
        ([line_of("a"), "not json"], [], False, 1),
        ([line_of("a"), "[1, 2]"], [], False, 1),  # a line that is JSON but not an object
    ],
)
def test_data_lines_that_are_chunks_each(
    data_lines: list[str], texts: list[str], done: bool, notices: int
) -> None:
    dec = ChunkDecoder()
    out = dec.decode(ServerSentEvent("\n".join(data_lines)))
    assert [d.text for d in out if isinstance(d, TextDelta)] == texts
    assert dec.done is done
    found = [d for d in out if isinstance(d, NoticeDelta)]
    assert len(found) == notices
    assert all(n.lossy for n in found if "malformed" in n.message)


@pytest.mark.parametrize("json_lines", [True, False])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("blank_at_end", [True, False])
def test_a_stream_with_single_newlines_between_events_reads_whole(
    ending: str, blank_at_end: bool, json_lines: bool
) -> None:
    from shenma_magic._sse import SSEDecoder

    lines = [line_of("周"), line_of("树"), line_of("人"), json.dumps(chunk({}, finish="stop")), "[DONE]"]
    raw = "".join(f"data: {line}{ending}" for line in lines) + (ending if blank_at_end else "")
    sse, dec, out = SSEDecoder(json_lines=json_lines), ChunkDecoder(), []
    for i in range(0, len(raw.encode()), 5):
        for event in sse.feed(raw.encode()[i : i + 5]):
            out.extend(dec.decode(event))
    live = "".join(d.text for d in out if isinstance(d, TextDelta))  # read before the stream ended
    for event in sse.flush():  # no blank line at all: the event the spec would discard
        out.extend(dec.decode(event))
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == "周树人"
    # json_lines reads each line as the next one starts: the answer streams, blank line or not
    assert live == ("周树人" if json_lines or blank_at_end else "")
    assert dec.done and dec.finish_reason == "stop"


# -- how a reply ended ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "complete", "truncated"),
    [
        ("stop", True, False),
        ("length", False, True),
        ("max_tokens", False, True),
        ("tool_calls", True, False),
        ("content_filter", True, False),
        (None, False, False),
    ],
)
def test_a_reply_cut_at_the_token_limit_is_not_complete(
    finish: str | None, complete: bool, truncated: bool
) -> None:
    builder = ReplyBuilder()
    for delta in run([ev(chunk({"content": "半"})), ev(chunk({}, finish=finish))])[0]:
        builder.add(delta)
    built = builder.build()
    plain = Reply("半", finish_reason=finish)  # the same rule when a Reply is made by hand
    for reply in (built, plain):
        assert (reply.complete, reply.truncated) == (complete, truncated)
        assert ("truncated=True" in repr(reply)) is truncated
    again = pickle.loads(pickle.dumps(built))
    assert (again.complete, again.truncated) == (complete, truncated)
