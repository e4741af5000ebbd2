"""The requests client against a real HTTP server on 127.0.0.1 (tests/relay.py): no mocks."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from shenma_magic import (
    APIStatusError,
    APITimeoutError,
    ChatClient,
    ConnectError,
    ConnectionLostError,
    InsecureTransportError,
    NoticeDelta,
    ProtocolError,
    StreamError,
    TextDelta,
)
from shenma_magic._models import ReplyBuilder
from shenma_magic._urls import parse_base_url
from tests.relay import Chunk, Framing, Relay, Scripted, chat_chunk, error_body, sse, stream_of

KEY = "sk-TESTKEY0123456789abcdefSECRET9f3a"
MESSAGES = [{"role": "user", "content": "周树人和鲁迅是兄弟吗？"}]


def client_for(relay: Relay, **kw: Any) -> ChatClient:
    client = ChatClient(relay.url, KEY, **kw)
    client._sleep = lambda s: None  # retries are tested for their decisions, not their wall-clock waits
    return client


def arrivals_of(client: ChatClient, **kw: Any) -> list[tuple[str, float]]:
    """Each answer piece of a stream and when it arrived, in seconds from the request."""
    start = time.monotonic()
    return [
        (delta.text, time.monotonic() - start)
        for delta in client.stream(MESSAGES, **kw)
        if isinstance(delta, TextDelta)
    ]


def collect(client: ChatClient, **kw: Any) -> tuple[ReplyBuilder, list[Any]]:
    builder = ReplyBuilder()
    seen: list[Any] = []
    for delta in client.stream(MESSAGES, **kw):
        builder.add(delta)
        seen.append(delta)
    return builder, seen


@pytest.mark.parametrize(
    "url",
    [
        "https://api.whatai.cc",
        "https://api.whatai.cc/",
        "https://api.whatai.cc/v1",
        "https://api.whatai.cc/v1/",
        "https://api.whatai.cc/v1/chat/completions",
        " api.whatai.cc ",
    ],
)
def test_base_url_forms_are_one(url: str) -> None:
    assert parse_base_url(url).url == "https://api.whatai.cc/v1"


def test_request_shape_and_streamed_reply(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=stream_of(["鲁迅", "就是", "周树人"], usage={"prompt_tokens": 9, "completion_tokens": 3})
        )
    )
    builder, _ = collect(client_for(relay), model="gpt-4o-mini", temperature=0.3, max_tokens=50)
    reply = builder.build()
    assert reply == "鲁迅就是周树人" and reply.complete and reply.finish_reason == "stop"
    assert reply.usage == {"prompt_tokens": 9, "completion_tokens": 3}
    req = relay.chat_requests[0]
    assert req.route == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.3,
        "max_tokens": 50,
    }


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_chunks_arrive_incrementally(relay: Relay, framing: Framing) -> None:
    chunks: list[Chunk] = [sse(chat_chunk("first")), 0.8, *stream_of(["second"])]
    relay.enqueue(Scripted(chunks=chunks, framing=framing))
    arrivals = arrivals_of(client_for(relay))
    # The key redactor may hold back the last characters of a delta that could start a key ("d" is in KEY):
    # compare the text, and when it arrived.
    assert "".join(t for t, _ in arrivals) == "firstsecond"
    assert arrivals[0][0] == "first" and arrivals[0][1] < 0.5, arrivals
    assert all(at >= 0.5 for _, at in arrivals[1:]), arrivals


def test_utf8_split_across_network_chunks(relay: Relay) -> None:
    body = b"".join(c for c in stream_of(["周树人", "😀"]) if isinstance(c, bytes))
    relay.enqueue(Scripted(chunks=[body[i : i + 1] for i in range(len(body))]))
    builder, _ = collect(client_for(relay))
    assert builder.text == "周树人😀"


def test_done_stops_reading_even_if_the_connection_stays_open(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[*stream_of(["ok"]), sse(chat_chunk("after done")), 30.0]))
    start = time.monotonic()
    builder, _ = collect(client_for(relay, timeout=20))
    assert builder.text == "ok"
    assert time.monotonic() - start < 2


def test_connection_reused_across_requests(relay: Relay) -> None:
    client = client_for(relay)
    for _ in range(3):
        builder, _ = collect(client)
        assert builder.text.startswith("echo:")
    assert relay.connections == 1


def test_plain_json_answer_to_a_streaming_request(relay: Relay) -> None:
    relay.enqueue(
        Scripted.json_body(
            {
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "整段回答"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
    )
    builder, _ = collect(client_for(relay))
    assert builder.text == "整段回答" and builder.finish_reason == "stop"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expect_in_message", "expect_hint"),
    [
        (
            401,
            error_body("无效的令牌 (request id: 20251121abc)", "new_api_error"),
            {},
            "无效的令牌",
            "check the API key",
        ),
        (403, error_body("该令牌无权访问模型 gpt-5", "new_api_error"), {}, "无权访问模型", "group"),
        (429, b"", {}, "HTTP 429", "rate limit"),
        (
            503,
            error_body("当前分组 default 下对于模型 x 无可用渠道", "new_api_error"),
            {},
            "无可用渠道",
            "channel",
        ),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            {"Content-Type": "text/html"},
            "502 Bad Gateway",
            "gateway",
        ),
        (
            524,
            b"<!DOCTYPE html><html><title>A timeout occurred | Cloudflare</title></html>",
            {"Content-Type": "text/html"},
            "timeout occurred",
            "timed out",
        ),
        (
            400,
            b'{"object":"error","message":"model not found","type":"NotFoundError","code":404}',
            {},
            "model not found",
            "model",
        ),
    ],
)
def test_error_statuses_become_one_clear_message(
    relay: Relay, status: int, body: bytes, headers: dict[str, str], expect_in_message: str, expect_hint: str
) -> None:
    for _ in range(3):  # enough for any retries
        relay.enqueue(Scripted(status=status, chunks=[body], framing="length", headers=headers))
    with pytest.raises(APIStatusError) as info:
        collect(client_for(relay, max_retries=2))
    err = info.value
    assert err.status_code == status
    assert expect_in_message in str(err)
    assert expect_hint in err.hint
    assert "\n" not in str(err) and "<html" not in str(err).lower()
    if status == 401:
        assert err.request_id == "20251121abc"


def test_retry_after_is_honoured_then_success(relay: Relay) -> None:
    relay.enqueue(
        Scripted.error(429, "slow down", headers={"Retry-After": "2"}), Scripted(chunks=stream_of(["ok"]))
    )
    waits: list[float] = []
    client = client_for(relay)
    client._sleep = waits.append
    builder, seen = collect(client)
    assert builder.text == "ok"
    assert waits == [2.0]
    assert any(isinstance(d, NoticeDelta) and "retrying in 2.0 s" in d.message for d in seen)
    assert len(relay.chat_requests) == 2


def test_retries_are_bounded_and_no_channel_is_not_retried(relay: Relay) -> None:
    for _ in range(5):
        relay.enqueue(Scripted.error(502, "bad gateway"))
    with pytest.raises(APIStatusError):
        collect(client_for(relay, max_retries=2))
    assert len(relay.chat_requests) == 3
    relay.clear()
    relay.enqueue(
        Scripted.error(503, "当前分组 vip 下对于模型 o3 无可用渠道"), Scripted(chunks=stream_of(["no"]))
    )
    with pytest.raises(APIStatusError):
        collect(client_for(relay))
    assert len(relay.chat_requests) == 1


def test_retry_after_beyond_the_cap_is_reported_not_waited(relay: Relay) -> None:
    relay.enqueue(Scripted.error(429, "quota", headers={"Retry-After": "3600"}))
    with pytest.raises(APIStatusError) as info:
        collect(client_for(relay))
    assert "retry after 3600 s" in info.value.hint


def test_stream_that_showed_text_is_never_retried(relay: Relay) -> None:
    relay.enqueue(
        Scripted(chunks=[sse(chat_chunk("partial "))], drop=True), Scripted(chunks=stream_of(["again"]))
    )
    builder = ReplyBuilder()
    with pytest.raises(ConnectionLostError):
        for delta in client_for(relay).stream(MESSAGES):
            builder.add(delta)
    assert builder.text == "partial "
    assert len(relay.chat_requests) == 1


def test_error_event_inside_stream(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[
                sse(chat_chunk("half")),
                'event: error\ndata: {"error":{"message":"upstream 超时"}}\n\n'.encode(),
            ]
        )
    )
    builder = ReplyBuilder()
    with pytest.raises(StreamError, match="upstream 超时"):
        for delta in client_for(relay).stream(MESSAGES):
            builder.add(delta)
    assert builder.text == "half"


def test_stall_hits_the_read_timeout_and_keeps_the_partial_answer(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("so far")), 5.0, *stream_of(["late"])]))
    builder = ReplyBuilder()
    start = time.monotonic()
    with pytest.raises(APITimeoutError, match="went silent"):
        for delta in client_for(relay).stream(MESSAGES, timeout=0.5):
            builder.add(delta)
    assert builder.text == "so far"
    assert time.monotonic() - start < 3


def test_truncated_stream_without_finish_reason_is_incomplete(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=stream_of(["cut"], finish_reason=None)))
    builder, seen = collect(client_for(relay))
    assert builder.build().complete is False
    assert any(isinstance(d, NoticeDelta) and "cut off" in d.message for d in seen)


def test_html_page_with_200_is_a_protocol_error(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[b"<html><body>login</body></html>"],
            framing="length",
            headers={"Content-Type": "text/html"},
        )
    )
    with pytest.raises(ProtocolError, match="HTML page"):
        collect(client_for(relay))


def test_connection_refused_and_unresolvable_host() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = ChatClient(f"http://127.0.0.1:{port}/v1", KEY, max_retries=1)
    client._sleep = lambda s: None
    with pytest.raises(ConnectError, match="refused"):
        list(client.stream(MESSAGES))
    bad = ChatClient("http://nonexistent-host.invalid/v1", None, max_retries=0)
    with pytest.raises(ConnectError, match="resolve"):
        list(bad.stream(MESSAGES))


def test_key_never_sent_over_plain_http_to_a_remote_host() -> None:
    with pytest.raises(InsecureTransportError) as info:
        ChatClient("http://api.whatai.cc/v1", KEY)
    assert KEY not in str(info.value)
    ChatClient("http://localhost:1/v1", KEY)  # this machine is fine
    ChatClient("http://api.whatai.cc/v1", None)  # and so is no key at all


def test_key_echoed_by_the_server_is_redacted(relay: Relay) -> None:
    relay.enqueue(Scripted.error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(APIStatusError) as info:
        collect(client_for(relay))
    assert KEY not in str(info.value) and KEY not in info.value.server_message
    assert "sk-…9f3a" in str(info.value)
    assert KEY not in repr(client_for(relay))


def test_authorization_not_forwarded_when_a_redirect_leaves_the_host(relay: Relay) -> None:
    with Relay(host="127.0.0.2") as other:
        relay.enqueue(
            Scripted(status=307, headers={"Location": other.url + "/chat/completions"}, framing="length")
        )
        builder, _ = collect(client_for(relay))
        assert builder.text.startswith("echo:")
        assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert "authorization" not in other.chat_requests[0].headers


def test_models_list(relay: Relay) -> None:
    assert "gpt-4o-mini" in client_for(relay).models()


def test_stopping_early_closes_the_response(relay: Relay) -> None:
    # Text that shares no character with KEY: the redactor holds back a tail that could start a key, and
    # held text would reach the caller only when the 30 s pause ends, so the loop would not stop early.
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("第一")), 0.2, sse(chat_chunk("第二")), 30.0]))
    start = time.monotonic()
    stream = client_for(relay).stream(MESSAGES)
    for delta in stream:
        if isinstance(delta, TextDelta):
            break
    stream.close()  # what run_turn does on Ctrl-C
    assert relay.wait(lambda: relay.chat_requests[0].outcome != "pending", timeout=5)
    assert time.monotonic() - start < 10  # stopped at the first text, not at the end of the stream


def test_gzip_encoded_stream_is_decoded_as_it_arrives(relay: Relay) -> None:
    import zlib

    body = b"".join(c for c in stream_of(["压缩", "的流"]) if isinstance(c, bytes))
    gz = zlib.compressobj(wbits=31)
    cut = body.index(b"\n\n") + 2  # the first event, whole
    first = gz.compress(body[:cut]) + gz.flush(zlib.Z_SYNC_FLUSH)
    rest = gz.compress(body[cut:]) + gz.flush()
    relay.enqueue(Scripted(chunks=[first, 0.5, rest], headers={"Content-Encoding": "gzip"}))
    seen = arrivals_of(client_for(relay))
    assert "".join(t for t, _ in seen) == "压缩的流"
    assert seen[0][1] < 0.4  # the first compressed piece was decoded before the rest arrived


@pytest.mark.parametrize("ctype", ["text/event-stream", "application/json", "text/plain"])
def test_error_object_with_200_is_reported_whatever_the_content_type(relay: Relay, ctype: str) -> None:
    relay.enqueue(
        Scripted(
            chunks=[error_body("该令牌额度已用尽", "new_api_error")],
            framing="length",
            headers={"Content-Type": ctype},
        )
    )
    with pytest.raises(StreamError, match="额度已用尽") as info:
        collect(client_for(relay))
    assert "quota" in info.value.hint


def test_html_with_200_and_a_wrong_content_type_is_a_protocol_error(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[b"<!DOCTYPE html><html>captive portal</html>"], headers={"Content-Type": "text/plain"}
        )
    )
    with pytest.raises(ProtocolError):
        collect(client_for(relay))


def _line(text: str, finish: str | None = None) -> bytes:
    return json.dumps(chat_chunk(text, finish_reason=finish), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b"data: " + _line("你") + b"\n\ndata: " + _line("好", "stop") + b"\n",
            id="no blank line at the end",
        ),
        pytest.param(
            b"data: " + _line("你") + b"\n\ndata: " + _line("好", "stop"), id="no line break at the end"
        ),
        pytest.param(
            b"data: " + _line("你") + b"\ndata: " + _line("好", "stop") + b"\n",
            id="single newlines, no [DONE]",
        ),
        pytest.param(
            b"data: " + _line("你") + b"\rdata: " + _line("好", "stop") + b"\rdata: [DONE]\r",
            id="single CRs and [DONE]",
        ),
    ],
)
def test_a_proxy_that_never_sends_the_blank_line_loses_nothing(relay: Relay, body: bytes) -> None:
    relay.enqueue(Scripted(chunks=[body], framing="close"))
    builder, _ = collect(client_for(relay))
    reply = builder.build()
    assert reply.text == "你好" and reply.complete


def test_single_newline_events_stream_as_they_come(relay: Relay) -> None:
    """A proxy that ends each event with one newline: each chunk is read when the next line starts,
    not when the stream ends (by the spec the whole reply would be one event)."""
    lines = [b"data: " + _line(t) + b"\n" for t in ["第", "一", "段"]]
    relay.enqueue(Scripted(chunks=[lines[0], lines[1], 1.0, lines[2], b"data: [DONE]\n"], framing="close"))
    seen = arrivals_of(client_for(relay))
    assert "".join(t for t, _ in seen) == "第一段"
    assert seen[0][1] < 0.8  # "第" was shown before the pause ended, not with the rest


@pytest.mark.parametrize("before", [b"\n", b"\r\n  ", b" "])
def test_a_whole_json_answer_after_blank_space_in_its_own_chunk_is_read(relay: Relay, before: bytes) -> None:
    body = json.dumps(
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "整段"}, "finish_reason": "stop"}
            ]
        },
        ensure_ascii=False,
    ).encode()
    relay.enqueue(
        Scripted(chunks=[before, 0.05, body], framing="close", headers={"Content-Type": "application/json"})
    )
    builder, _ = collect(client_for(relay))
    reply = builder.build()
    assert reply.text == "整段" and reply.complete
