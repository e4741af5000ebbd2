"""The SSE framing, from the WHATWG rules, fed at every split point."""

from __future__ import annotations

import json
import random

import pytest

from shenma_magic._sse import LineDecoder, ServerSentEvent, SSEDecoder


def feed_all(pieces: list[bytes]) -> list[ServerSentEvent]:
    dec = SSEDecoder()
    out: list[ServerSentEvent] = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    out.extend(dec.flush())
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


def test_unfinished_event_at_end_of_stream_is_not_dispatched() -> None:
    assert data_of(feed_all([b"data: a\n\ndata: b\n"])) == ["a"]
    assert data_of(feed_all([b"data: a\n\ndata: b"])) == ["a"]


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
