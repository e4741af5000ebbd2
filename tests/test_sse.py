"""The SSE framing, from the WHATWG rules, fed at every split point."""

from __future__ import annotations

import itertools
import json
import random
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._errors import LimitExceededError
from shenma_magic._sse import MAX_EVENT, MAX_LINE, LineDecoder, ServerSentEvent, SSEDecoder
from tests.relay import Relay, Scripted, chat_chunk, sse


def feed_all(pieces: list[bytes]) -> list[ServerSentEvent]:
    dec = SSEDecoder()
    out: list[ServerSentEvent] = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    dec.flush()  # the spec discards an event without its blank line (flush hands it back)
    return out


def lines_of(pieces: list[bytes]) -> list[str]:
    dec = LineDecoder()
    out: list[str] = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    out.extend(dec.flush())
    return out


def every_split(stream: bytes) -> list[list[bytes]]:
    """The stream whole, in two pieces at every position, in three at many, and one byte at a time."""
    splits = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
    for i in range(len(stream) + 1):
        splits.append([stream[:i], stream[i:]])
    rng = random.Random(7)
    for _ in range(200):
        a, b = sorted(rng.randrange(len(stream) + 1) for _ in range(2))
        splits.append([stream[:a], stream[a:b], stream[b:]])
    return splits


def data_of(events: list[ServerSentEvent]) -> list[str]:
    return [e.data for e in events]


CHINESE = "周树人和鲁迅是兄弟吗？😀"
FIXTURE = (
    "\ufeff: PING\r\n"
    "data: " + json.dumps({"c": CHINESE}, ensure_ascii=False) + "\r\n\r\n"
    'data:{"x":1}\r'
    "\r"
    "event: error\n"
    "data: first\n"
    "data: second\n"
    "\n"
    "data: [DONE]\n\n"
).encode()
EXPECTED = [json.dumps({"c": CHINESE}, ensure_ascii=False), '{"x":1}', "first\nsecond", "[DONE]"]


@pytest.mark.parametrize("pieces", every_split(FIXTURE))
def test_every_split_point_gives_the_same_events(pieces: list[bytes]) -> None:
    events = feed_all(pieces)
    assert data_of(events) == EXPECTED
    assert [e.event for e in events] == ["message", "message", "error", "message"]


def test_utf8_character_split_across_chunks() -> None:
    raw = ("data: " + CHINESE + "\n\n").encode()
    cut = raw.index("树".encode()) + 1  # inside the 3-byte sequence
    assert data_of(feed_all([raw[:cut], raw[cut:]])) == [CHINESE]


def test_unicode_line_separators_inside_data_are_not_line_breaks() -> None:
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    assert data_of(feed_all([("data: " + text + "\n\n").encode()])) == [text]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_all_three_line_endings(ending: bytes) -> None:
    raw = b"data: a" + ending + b"data: b" + ending + ending + b"data: c" + ending + ending
    for pieces in every_split(raw):
        assert data_of(feed_all(pieces)) == ["a\nb", "c"]


def test_cr_then_lf_in_next_chunk_is_one_ending_but_cr_cr_is_two() -> None:
    assert lines_of([b"a\r", b"\nb\r", b"\r", b"c\n"]) == ["a", "b", "", "c"]


def test_bom_stripped_once_and_only_at_start() -> None:
    bom = b"\xef\xbb\xbf"
    assert lines_of([bom[:1], bom[1:2], bom[2:] + b"data: x\n"]) == ["data: x"]
    assert lines_of([bom + bom + b"x\n"]) == ["\ufeffx"]
    assert lines_of([b"x\n" + bom + b"y\n"]) == ["x", "\ufeffy"]


def test_space_after_colon_removed_once_only() -> None:
    events = feed_all([b"data:no-space\n\ndata:  two-spaces\n\n"])
    assert data_of(events) == ["no-space", " two-spaces"]


def test_comments_unknown_fields_and_field_without_colon() -> None:
    raw = b": OPENROUTER PROCESSING\n\nfoo: bar\ndata\n\nid: 7\nretry: 100\ndata: x\n\n"
    events = feed_all([raw])
    # "data" alone is a data line with an empty value: the event is dispatched with data "".
    assert data_of(events) == ["", "x"]
    assert events[1].id == "7"


def test_blank_line_without_data_dispatches_nothing_and_resets_event_type() -> None:
    events = feed_all([b"event: error\n\ndata: x\n\n"])
    assert [(e.event, e.data) for e in events] == [("message", "x")]


def test_unfinished_event_at_end_of_stream_is_not_dispatched_but_handed_back_by_flush() -> None:
    assert data_of(feed_all([b"data: a\n\ndata: b\n"])) == ["a"]
    assert data_of(feed_all([b"data: a\n\ndata: b"])) == ["a"]
    for raw, pending in [
        (b"data: a\n\ndata: b\n", [ServerSentEvent("b")]),
        (b"event: x\ndata: b\r\ndata: c\r", [ServerSentEvent("b\nc", "x")]),
        # a last line without its ending is taken too (a proxy that closes right after the last "}")
        (b"id: 9\ndata: b\ndata: unfinished", [ServerSentEvent("b\nunfinished", id="9")]),
        (b"data: a\n\ndata: b", [ServerSentEvent("b")]),
        (b"data: a\n\n", []),
        (b"event: x\n", []),
        (b"event: x", []),
        (b"", []),
    ]:
        for pieces in every_split(raw):
            dec = SSEDecoder()
            for piece in pieces:
                dec.feed(piece)
            assert dec.flush() == pending, (raw, pieces)
            assert dec.flush() == []  # and the decoder starts over


# -- json_lines: proxies that end each event with a single newline ------------------------------------------

_CHUNK = b'{"choices": [{"delta": {"content": "x"}}]}'
_PRETTY = b'{\ndata: "choices": []\ndata: }'  # one JSON object over three data lines: one event


@pytest.mark.parametrize(
    ("raw", "live", "at_end"),
    [
        # each line a chunk: each is dispatched as soon as the next line starts, [DONE] at once
        (b"data: " + _CHUNK + b"\ndata: " + _CHUNK + b"\ndata: [DONE]\n", [_CHUNK, _CHUNK, b"[DONE]"], []),
        (b"data: " + _CHUNK + b"\rdata: " + _CHUNK + b"\r", [_CHUNK], [_CHUNK]),
        (b"data: " + _CHUNK + b"\r\ndata: " + _CHUNK + b"\r\n\r\n", [_CHUNK, _CHUNK], []),
        # not whole objects: the spec's one event
        (b"data: {\ndata: " + _CHUNK + b"\n\n", [b"{\n" + _CHUNK], []),
        (b"data: " + _PRETTY + b"\n\n", [_PRETTY.replace(b"data: ", b"")], []),
        (b"data: text\ndata: more\n\n", [b"text\nmore"], []),
        (b"data: [1, 2]\ndata: " + _CHUNK + b"\n\n", [b"[1, 2]\n" + _CHUNK], []),
        # a blank line between is the normal stream
        (b"data: " + _CHUNK + b"\n\ndata: [DONE]\n\n", [_CHUNK, b"[DONE]"], []),
    ],
)
def test_json_lines_dispatches_each_whole_object_line_as_it_is_followed(
    raw: bytes, live: list[bytes], at_end: list[bytes]
) -> None:
    for pieces in every_split(raw):
        dec = SSEDecoder(json_lines=True)
        got = [e.data for piece in pieces for e in dec.feed(piece)]
        assert got == [b.decode() for b in live], pieces
        assert [e.data for e in dec.flush()] == [b.decode() for b in at_end], pieces


_FIELDS = [b": ping", b"event: e", b"id: 1", b"retry: 5"]
_DATA = [b"data: " + _CHUNK, b"data: [DONE]", b"data: x", b"data:", b"data: {"]


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.lists(st.sampled_from(_FIELDS), max_size=3),
            st.lists(st.sampled_from(_DATA), max_size=1),
            st.sampled_from([b"\n", b"\r", b"\r\n"]),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=6),
)
def test_json_lines_reads_a_stream_of_one_data_line_events_as_the_spec_does(
    events: list[tuple[list[bytes], list[bytes], bytes]], cuts: list[int]
) -> None:
    """Where every event has at most one data line (after its other fields) and ends in a blank line,
    json_lines changes nothing, at any split."""
    raw = b"".join(b"".join(line + end for line in [*fields, *data]) + end for fields, data, end in events)
    points = sorted({min(c, len(raw)) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    plain, lines = SSEDecoder(), SSEDecoder(json_lines=True)
    a = [e for p in pieces for e in plain.feed(p)] + plain.flush()
    b = [e for p in pieces for e in lines.feed(p)] + lines.flush()
    assert a == b


def test_invalid_utf8_becomes_replacement_character_not_an_exception() -> None:
    assert data_of(feed_all([b"data: a\xff\xfeb\n\n"])) == ["a\ufffd\ufffdb"]


def test_long_line_in_many_small_chunks_is_joined_once() -> None:
    payload = b"x" * 200_000
    raw = b"data: " + payload + b"\n\n"
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    assert data_of(feed_all(pieces)) == [payload.decode()]


def test_linear_time_for_many_events_in_one_chunk() -> None:
    """Not a timing test: it checks the decoder does no per-event copying of the remaining buffer by
    feeding 20k events in one chunk and counting that the decoder keeps no leftover state."""
    raw = b"".join(b'data: {"i": %d}\n\n' % i for i in range(20_000))
    dec = SSEDecoder()
    events = dec.feed(raw)
    assert len(events) == 20_000
    assert events[-1].data == '{"i": 19999}'
    assert dec._lines._parts == []


# -- bounded memory ------------------------------------------------------------------------------------------


def endless(piece: bytes, count: int) -> Iterator[bytes]:
    """``count`` fresh copies of ``piece`` (new objects, so holding them costs memory as a socket's would)."""
    for _ in range(count):
        yield bytes(bytearray(piece))


def fed_until_limit(dec: SSEDecoder, chunks: Iterable[bytes]) -> tuple[int, LimitExceededError]:
    fed = 0
    for raw in chunks:
        fed += len(raw)
        try:
            dec.feed(raw)
        except LimitExceededError as exc:
            return fed, exc
    raise AssertionError(f"no LimitExceededError after {fed} bytes")


@pytest.mark.parametrize("prefix", [b"", b"data: x\n\n", b"data: x\r\r", b"data: x\r\n\r\n", b": hi\r"])
@pytest.mark.parametrize("size", [1, 7, 999, 1000, 1001, 4096])
def test_a_line_that_never_ends_stops_one_chunk_after_the_limit(prefix: bytes, size: int) -> None:
    limit = 1000
    dec = SSEDecoder(max_line=limit)
    stream = itertools.chain([prefix], endless(b"a" * size, 10_000))
    fed, exc = fed_until_limit(dec, stream)
    assert limit < fed - len(prefix) <= limit + size
    assert "a line longer than the 1,000 bytes limit" in str(exc)
    assert "\n" not in str(exc) and exc.hint
    assert dec._lines._parts == []  # what was held is let go


def test_the_default_line_limit_holds_memory_to_about_the_limit() -> None:
    dec = SSEDecoder()
    tracemalloc.start()
    try:
        fed, exc = fed_until_limit(dec, itertools.chain([b"data: "], endless(b"x" * 65536, 10_000)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert MAX_LINE < fed <= MAX_LINE + 65536 + 6
    assert peak < MAX_LINE + 4 * 65536
    assert "16 MiB" in exc.message


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_a_line_of_exactly_the_limit_passes_and_one_more_byte_does_not(ending: bytes) -> None:
    limit = 40
    ok = b"data: " + b"y" * (limit - 6) + ending + ending
    too_long = b"data: " + b"y" * (limit - 5) + ending + ending
    for pieces in every_split(ok):
        dec = SSEDecoder(max_line=limit)
        assert [e.data for p in pieces for e in dec.feed(p)] == ["y" * (limit - 6)]
    for pieces in every_split(too_long):
        dec = SSEDecoder(max_line=limit)
        with pytest.raises(LimitExceededError):
            for piece in pieces:
                dec.feed(piece)


@pytest.mark.parametrize(
    ("line", "each"),
    [(b"data: " + b"z" * 94 + b"\n", 94), (b"data:" + b"z" * 95 + b"\r\n", 95), (b"data\n", 0)],
)
def test_data_lines_without_a_blank_line_stop_at_the_event_limit(line: bytes, each: int) -> None:
    dec = SSEDecoder(max_event=1000)
    fed, exc = fed_until_limit(dec, endless(line, 100_000))
    assert "an event longer than the 1,000 bytes limit" in str(exc)
    lines = fed // len(line)
    joined = lines * (each + 1) - 1
    assert joined > 1000 >= joined - (each + 1)  # the line that passed the limit was the last one read
    assert dec._data == []


def test_the_default_event_limit_holds_memory_to_about_the_limit() -> None:
    dec = SSEDecoder()
    line = b"data: " + b"q" * 1018 + b"\n"  # 1 KiB a line
    tracemalloc.start()
    try:
        fed, exc = fed_until_limit(dec, endless(line * 64, 100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert MAX_EVENT < fed <= MAX_EVENT * 1.01 + 65536
    assert peak < MAX_EVENT * 1.2 + 4 * 65536  # the data held as str, plus the list holding it
    assert "32 MiB" in exc.message


def test_an_event_of_exactly_the_limit_passes() -> None:
    # Three data lines joined by two newlines: 4 + 1 + 4 + 1 + 4 = 14 characters.
    raw = b"data: abcd\ndata: efgh\ndata: ijkl\n\n"
    assert data_of(feed_all([raw])) == ["abcd\nefgh\nijkl"]
    assert [e.data for e in SSEDecoder(max_event=14).feed(raw)] == ["abcd\nefgh\nijkl"]
    with pytest.raises(LimitExceededError):
        SSEDecoder(max_event=13).feed(raw)


# Streams made of the pieces that matter for the limits: data and other fields, comments, all three endings.
_TOKENS = [b"data: ", b"data:", b"data", b"event: e", b": c", b"id: 1", b"x", b"yyyy", b"\xe4\xb8\xad"]
_ENDINGS = [b"\n", b"\r", b"\r\n"]


def reference(raw: bytes) -> tuple[int, int]:
    """The longest line (bytes) and the largest event (characters, a pending one included) of ``raw``,
    from an unbounded decoder and bytes.splitlines, which breaks on exactly the three SSE endings."""
    longest = max((len(line) for line in raw.splitlines()), default=0)
    dec = LineDecoder(max_line=1 << 40)
    lines = dec.feed(raw) + dec.flush()
    largest, size = 0, 0
    for line in lines:
        if line == "":
            size = 0
            continue
        name, _, value = line.partition(":")
        if name == "data":
            size += len(value[1:] if value[:1] == " " else value) + 1
            largest = max(largest, size - 1)
    return longest, largest


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.lists(st.sampled_from(_TOKENS), max_size=6), st.sampled_from(_ENDINGS)), max_size=30
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    max_line=st.integers(min_value=1, max_value=40),
    max_event=st.integers(min_value=1, max_value=80),
)
def test_limits_raise_exactly_when_a_line_or_an_event_passes_them(
    parts: list[tuple[list[bytes], bytes]], cuts: list[int], max_line: int, max_event: int
) -> None:
    raw = b"".join(b"".join(tokens) + ending for tokens, ending in parts)
    points = sorted({min(c, len(raw)) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    longest, largest = reference(raw)
    dec = SSEDecoder(max_line=max_line, max_event=max_event)
    try:
        for piece in pieces:
            dec.feed(piece)
        dec.flush()
    except LimitExceededError:
        assert longest > max_line or largest > max_event
    else:
        assert longest <= max_line and largest <= max_event


def test_a_never_ending_line_from_a_real_server_ends_the_reply_with_the_text_kept(relay: Relay) -> None:
    from shenma_magic import ChatClient
    from shenma_magic._models import ReplyBuilder

    relay.enqueue(Scripted(chunks=[sse(chat_chunk("周树人")), b"data: ", *([b"x" * 65536] * 260)]))
    builder = ReplyBuilder()
    client = ChatClient(relay.url, "sk-test-limit-0000000000")
    with pytest.raises(LimitExceededError) as info:
        for delta in client.stream([{"role": "user", "content": "q"}]):
            builder.add(delta)
    assert builder.text == "周树人"
    assert "16 MiB" in str(info.value) and "\n" not in str(info.value)


_BAD = b'{"choices": [{"delta": {"content": "cut'


@pytest.mark.parametrize(
    ("raw", "live"),
    [
        # a blank keep-alive data line between chunks does not stop the streaming
        (b"data: " + _CHUNK + b"\ndata: \ndata: " + _CHUNK + b"\ndata: " + _CHUNK + b"\n", [_CHUNK, _CHUNK]),
        (
            b"data: " + _CHUNK + b"\ndata:\ndata:\ndata: " + _CHUNK + b"\ndata: [DONE]\n",
            [_CHUNK, _CHUNK, b"[DONE]"],
        ),
        # a bare "data" (no colon) is an empty data line too
        (b"data: " + _CHUNK + b"\ndata\ndata: " + _CHUNK + b"\ndata: " + _CHUNK + b"\n", [_CHUNK, _CHUNK]),
        # once the stream has shown its single newlines, a broken line is an event of its own
        (
            b"data: " + _CHUNK + b"\ndata: " + _BAD + b"\ndata: " + _CHUNK + b"\ndata: [DONE]\n",
            [_CHUNK, _BAD, _CHUNK, b"[DONE]"],
        ),
    ],
)
def test_json_lines_keeps_streaming_past_blank_and_broken_lines(raw: bytes, live: list[bytes]) -> None:
    for pieces in every_split(raw):
        dec = SSEDecoder(json_lines=True)
        got = [e.data for piece in pieces for e in dec.feed(piece)]
        assert got == [b.decode() for b in live], pieces


def test_json_lines_sends_a_held_line_out_under_its_own_fields() -> None:
    """An ``event: error`` after a chunk names the next event, not the chunk before it."""
    raw = b"data: " + _CHUNK + b'\nevent: error\ndata: {"error": {"message": "quota"}}\nid: 7\ndata: [DONE]\n'
    for pieces in every_split(raw):
        dec = SSEDecoder(json_lines=True)
        got = [(e.event, e.data, e.id) for piece in pieces for e in dec.feed(piece)]
        assert got == [
            ("message", _CHUNK.decode(), ""),
            ("error", '{"error": {"message": "quota"}}', ""),
            ("error", "[DONE]", "7"),
        ], pieces
