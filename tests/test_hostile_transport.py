"""The client against hostile servers of our own on loopback (tests/relay.py and tests/hostile.py).

What must hold: a known key never leaves in a request body and never comes back unmasked; a key a header
cannot carry is refused with one line; no traceback shows the key; a reply is bounded in bytes and in
time, ending with one line after the partial answer; retries are announced briefly; request ids are found
in the response headers.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

import pytest
from IPython.core.ultratb import VerboseTB

from shenma_magic import (
    APIStatusError,
    APITimeoutError,
    ChatClient,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    KeyInRequestError,
    LimitExceededError,
    NoticeDelta,
    ProtocolError,
    ShenmaError,
    StreamError,
    TextDelta,
)
from shenma_magic._client import ChatStream
from shenma_magic._keys import KeyStore
from shenma_magic._models import ReplyBuilder
from tests import hostile
from tests.relay import Relay, Scripted, chat_chunk, sse, stream_of

KEY = "sk-HOSTILE0123456789abcdefghijKLMN"
OTHER = "sk-OPENAIKEY9876543210zyxwvutsrqPQ"
MESSAGES = [{"role": "user", "content": "hello"}]


def shows_run(text: str, key: str = KEY, run: int = 10) -> bool:
    return any(key[i : i + run] in text for i in range(len(key) - run + 1))


def client_for(url: str, **kw: Any) -> ChatClient:
    client = ChatClient(url, KEY, **{"max_retries": 0, **kw})
    client._sleep = lambda s: None
    return client


def drain(stream: Any) -> tuple[ReplyBuilder, list[Any], ShenmaError | None]:
    builder = ReplyBuilder()
    seen: list[Any] = []
    error: ShenmaError | None = None
    try:
        for delta in stream:
            builder.add(delta)
            seen.append(delta)
    except ShenmaError as exc:
        error = exc
    return builder, seen, error


def everything_shown(seen: list[Any], error: BaseException | None) -> str:
    """Every text the caller could show, bind or save from a reply."""
    parts = [repr(d) for d in seen]
    if error is not None:
        parts += [str(error), repr(error), repr(vars(error)), repr(error.args)]
    return "\n".join(parts)


# ------------------------------------------------------------------------ keys echoed in a 200 answer


def _key_everywhere() -> list[bytes]:
    pieces = [KEY[i : i + 3] for i in range(0, len(KEY), 3)]
    events = [
        sse(chat_chunk(role="assistant", model=f"gpt-{KEY}", completion_id=f"chatcmpl-{KEY}")),
        *(sse(chat_chunk(reasoning=p)) for p in pieces),
        *(sse(chat_chunk(p)) for p in pieces),
        sse(chat_chunk(f" and whole {KEY} and cut {KEY[4:20]}.")),
        sse(
            chat_chunk(
                tool_calls=[
                    {
                        "index": 0,
                        "id": f"call_{KEY}",
                        "type": "function",
                        "function": {"name": f"tool{KEY[:12]}", "arguments": ""},
                    }
                ]
            )
        ),
        *(
            sse(chat_chunk(tool_calls=[{"index": 0, "function": {"arguments": p}}]))
            for p in ['{"k": "', *pieces, '"}']
        ),
        f"data: not json {KEY}\n\n".encode(),
        sse(chat_chunk(finish_reason=f"stop{KEY}")),
        sse(
            {
                "choices": [],
                "model": "m",
                "usage": {"prompt_tokens": 1, "note": KEY, "nested": {"k": [KEY]}},
            }
        ),
        sse("[DONE]"),
    ]
    return events


@pytest.mark.parametrize("size", [None, 1, 7, 64])
def test_keys_echoed_in_a_normal_answer_are_masked_everywhere(relay: Relay, size: int | None) -> None:
    body = b"".join(_key_everywhere())
    chunks = [body] if size is None else [body[i : i + size] for i in range(0, len(body), size)]
    relay.enqueue(Scripted(chunks=list(chunks)))
    builder, seen, error = drain(client_for(relay.url).stream(MESSAGES))
    assert error is None
    reply = builder.build()
    shown = everything_shown(seen, None) + repr(reply) + str(reply) + reply.reasoning
    shown += json.dumps(reply.tool_calls) + json.dumps(reply.usage) + reply.model + repr(reply.notices)
    assert not shows_run(shown)
    assert "sk-…KLMN" in reply and "sk-…KLMN" in reply.reasoning  # masked, not dropped
    assert reply.text.startswith("sk-…KLMN and whole sk-…KLMN and cut sk-…KLMN.")


def test_values_shown_on_one_line_arrive_on_one_line(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[
                sse(chat_chunk("two\nlines", model="gpt\n\n[fake status]", completion_id="id\r\nx")),
                sse(chat_chunk(finish_reason="stop\nnow")),
                b"data: not json\n\n",
                sse("[DONE]"),
            ]
        )
    )
    builder, seen, error = drain(client_for(relay.url).stream(MESSAGES))
    assert error is None
    assert builder.text == "two\nlines"  # the answer keeps its line breaks
    for delta in seen:
        if not isinstance(delta, TextDelta):
            assert all("\n" not in v and "\r" not in v for v in delta if isinstance(v, str)), delta
    assert builder.model == "gpt [fake status]" and builder.finish_reason == "stop now"


def test_keys_in_errors_and_ids_are_masked_whatever_cuts_them(relay: Relay) -> None:
    # _errors cuts plain bodies at 300 characters: put the key across the cut, at every offset near it.
    for offset in range(270, 300, 3):
        body = ("x" * offset + KEY + " tail").encode()
        relay.enqueue(
            Scripted(status=400, chunks=[body], framing="length", headers={"x-request-id": f"req-{KEY}"})
        )
        _, seen, error = drain(client_for(relay.url).stream(MESSAGES))
        assert isinstance(error, APIStatusError)
        assert not shows_run(everything_shown(seen, error)), offset
        assert "\n" not in str(error)


def test_keys_in_a_mid_stream_error_are_masked(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[
                sse(chat_chunk("partial ")),
                sse({"error": {"message": f"bad\n\nkey {KEY}\n", "code": KEY, "request_id": KEY[3:30]}}),
            ]
        )
    )
    builder, seen, error = drain(client_for(relay.url).stream(MESSAGES))
    assert isinstance(error, StreamError)
    assert builder.text == "partial "
    assert not shows_run(everything_shown(seen, error))
    assert "\n" not in error.message and "  " not in error.message


def test_model_list_is_masked(relay: Relay) -> None:
    relay.enqueue(Scripted.json_body({"data": [{"id": "gpt-4o"}, {"id": f"leak-{KEY}"}]}, path="/v1/models"))
    models = client_for(relay.url).models()
    assert "gpt-4o" in models and not shows_run(repr(models))


# -------------------------------------------------------------------------- keys in the request body


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": f"my key is {KEY}"}],
        [{"role": "user", "content": f'headers = {{"Authorization": "Bearer {KEY}"}}'}],
        [{"role": "user", "content": f"only part of it: {KEY[6:18]}"}],
        [{"role": "system", "content": f"key={KEY}"}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": [{"type": "text", "text": f"look {KEY}"}]}],
        [
            {"role": "user", "content": "call it"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": f"env: SHENMA_API_KEY={KEY}"},
        ],
        [{"role": "user", "content": f"the other key {OTHER}"}],
        [{"role": "user", "content": f"spread: {OTHER[:10]} x {OTHER[10:22]}"}],
    ],
)
def test_a_request_carrying_a_known_key_is_not_sent(
    relay: Relay, tmp_path: Path, messages: list[dict[str, Any]]
) -> None:
    store = KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path), "OPENAI_API_KEY": OTHER})
    client = client_for(relay.url, known_keys=store.key_sources)
    _, _, error = drain(client.stream(messages))
    assert isinstance(error, KeyInRequestError), error
    assert relay.requests == []
    text = str(error)
    assert "\n" not in text and not shows_run(text) and not shows_run(text, OTHER)
    assert "nothing was sent" in text
    assert ("$OPENAI_API_KEY" in text) == (OTHER[:10] in json.dumps(messages))


def test_known_keys_as_plain_strings_and_json_escaped_forms(relay: Relay) -> None:
    quoted = 'sk-with"quote\\and-backslash-000000'
    client = client_for(relay.url, known_keys=lambda: [quoted])
    _, _, error = drain(client.stream([{"role": "user", "content": f"see {quoted}"}]))
    assert isinstance(error, KeyInRequestError)
    assert relay.requests == []
    assert not shows_run(str(error), quoted)


def test_a_key_in_extra_options_is_not_sent_either(relay: Relay) -> None:
    _, _, error = drain(client_for(relay.url).stream(MESSAGES, extra={"user": KEY}))
    assert isinstance(error, KeyInRequestError) and relay.requests == []


def test_a_short_piece_or_a_different_key_goes_through(relay: Relay) -> None:
    _, _, error = drain(client_for(relay.url).stream([{"role": "user", "content": f"{KEY[:9]} is fine"}]))
    assert error is None and len(relay.chat_requests) == 1


def test_a_broken_surrogate_in_the_conversation_still_goes_out(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=stream_of(["ok"])))  # the relay's echo could not encode it either
    _, _, error = drain(client_for(relay.url).stream([{"role": "user", "content": "half \ud83d emoji"}]))
    assert error is None and len(relay.chat_requests) == 1
    assert relay.chat_requests[0].json["messages"][0]["content"] in ("half \ud83d emoji", "half \ufffd emoji")


# ------------------------------------------------------------------- keys a header cannot carry (8.8)

BAD_KEYS = [
    "sk-abc\u200bdef0123456789ABCDEFGH",
    "sk-ａｂｃdef0123456789ABCDEFGH",
    "sk-abc def0123456789ABCDEFGH",
    "sk-abc\tdef0123456789ABCDEFGH",
    "sk-abc\u3000def0123456789ABCDEFGH",
    "sk-abcédef0123456789ABCDEFGH",
    "sk-abc\x7fdef0123456789ABCDEFGH",
    "sk-abc\ndef0123456789ABCDEFGH",
    "\ufeffsk-abcdef0123456789ABCDEFGH",
]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_key_a_header_cannot_carry_is_refused_with_one_line(relay: Relay, tmp_path: Path, bad: str) -> None:
    shown: list[str] = []
    with pytest.raises(ConfigError) as info:
        ChatClient(relay.url, bad)
    shown.append(str(info.value))
    with pytest.raises(ConfigError) as info:
        KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path)}).set(relay.url, bad)
    shown.append(str(info.value))
    assert "entered" in shown[-1]
    store = KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path), "SHENMA_API_KEY": bad})
    with pytest.raises(ConfigError) as info:
        store.resolve(relay.url)
    shown.append(str(info.value))
    assert "$SHENMA_API_KEY" in shown[-1]
    for line in shown:
        assert "\n" not in line and "header" in line
        assert not shows_run(line, bad.strip(), run=6)
    assert relay.requests == []


def test_a_bad_key_elsewhere_does_not_stop_a_good_one(relay: Relay, tmp_path: Path) -> None:
    store = KeyStore(
        environ={"XDG_CONFIG_HOME": str(tmp_path), "SHENMA_API_KEY": KEY, "OPENAI_API_KEY": BAD_KEYS[0]}
    )
    assert store.resolve(relay.url)[0] is not None  # SHENMA_API_KEY comes first for this machine


# ---------------------------------------------------------------------- no traceback shows the key


def _formatted(exc: BaseException) -> str:
    verbose = VerboseTB(theme_name="nocolor", include_vars=True)
    text = verbose.text(type(exc), exc, exc.__traceback__)
    locals_too = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    return text + locals_too + "".join(traceback.format_exception(exc))


def _interrupt_main_soon(seconds: float) -> threading.Timer:
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    return timer


def _refused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "failure",
    [
        "refused",
        "echo-401",
        "dropped",
        "silent",
        "max-time",
        "ctrl-c-waiting",
        "ctrl-c-reading",
        "bad-env-key",
    ],
)
def test_no_traceback_shows_the_key(relay: Relay, tmp_path: Path, failure: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    caught: BaseException | None = None
    try:
        if failure == "refused":
            list(client_for(f"http://127.0.0.1:{_refused_port()}/v1").stream(MESSAGES))
        elif failure == "echo-401":
            relay.enqueue(Scripted.error(401, f"invalid key {KEY}"))
            list(client_for(relay.url).stream(MESSAGES))
        elif failure == "dropped":
            relay.enqueue(Scripted(chunks=[sse(chat_chunk("half"))], drop=True))
            list(client_for(relay.url).stream(MESSAGES))
        elif failure == "silent":
            relay.enqueue(Scripted(chunks=[sse(chat_chunk("half")), 5.0]))
            list(client_for(relay.url, timeout=0.3).stream(MESSAGES))
        elif failure == "max-time":
            with hostile.RawServer(hostile.pings(0.1)) as server:
                list(client_for(server.url, max_time=0.5).stream(MESSAGES))
        elif failure in ("ctrl-c-waiting", "ctrl-c-reading"):
            script = hostile.never_answer if failure == "ctrl-c-waiting" else hostile.pings(0.1)
            with hostile.RawServer(script) as server:
                timer = _interrupt_main_soon(0.4)
                try:
                    list(client_for(server.url, timeout=5).stream(MESSAGES))
                finally:
                    timer.join()
        elif failure == "bad-env-key":
            store = KeyStore(environ={"XDG_CONFIG_HOME": str(tmp_path), "SHENMA_API_KEY": KEY + "\u200b"})
            store.resolve(relay.url)
    except (ShenmaError, KeyboardInterrupt) as exc:
        caught = exc
    assert caught is not None, failure
    if failure.startswith("ctrl-c"):
        assert isinstance(caught, KeyboardInterrupt)
    text = _formatted(caught)
    assert "Traceback" in text and len(text) > 500  # the formatting really ran, with its frames
    where = next((text.find(KEY[i : i + 10]) for i in range(len(KEY) - 9) if KEY[i : i + 10] in text), -1)
    assert where < 0, (failure, text[max(where - 400, 0) : where + 40])


def test_the_authorization_header_masks_itself(relay: Relay) -> None:
    import requests

    client = client_for(relay.url)
    assert client._auth is not None
    prepared = client._auth(requests.Request("POST", relay.url).prepare())
    header = prepared.headers["Authorization"]
    assert header == f"Bearer {KEY}"  # what goes on the wire
    assert not shows_run(repr(prepared.headers)) and not shows_run(repr(dict(prepared.headers)))
    assert not shows_run(repr(vars(client))) and not shows_run(repr(client._auth))
    list(client.stream(MESSAGES))
    assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


# ------------------------------------------------------------------------------------- max time (8.10)


@pytest.mark.parametrize(
    ("script", "has_partial"),
    [
        (hostile.pings(0.3), True),
        (hostile.trickle(b"".join(c for c in stream_of(["x" * 200]) if isinstance(c, bytes))), False),
        (
            hostile.trickle(
                b"".join(c for c in stream_of(["x" * 200]) if isinstance(c, bytes)), framing="chunked"
            ),
            False,
        ),
        (hostile.chunk_extension_trickle(), True),
        (hostile.never_answer, False),
        (hostile.header_trickle, False),
    ],
    ids=[
        "ping-every-0.3s",
        "2-bytes-a-second",
        "2-bytes-a-second-chunked",
        "endless-chunk-size",
        "silent",
        "endless-headers",
    ],
)
def test_max_time_ends_a_reply_that_keeps_the_connection_busy(script: Any, has_partial: bool) -> None:
    with hostile.RawServer(script) as server:
        client = client_for(server.url, timeout=5, max_time=1.5)
        start = time.monotonic()
        builder, _, error = drain(client.stream(MESSAGES))
        elapsed = time.monotonic() - start
    assert isinstance(error, APITimeoutError), error
    assert error.phase == "max_time"
    assert 1.3 <= elapsed < 2.5, elapsed
    assert "1.5 s" in str(error) and "\n" not in str(error)
    assert (builder.text == "partial ") == has_partial


def test_max_time_per_call_overrides_the_client() -> None:
    with hostile.RawServer(hostile.pings(0.1)) as server:
        client = client_for(server.url, max_time=30)
        start = time.monotonic()
        _, _, error = drain(client.stream(MESSAGES, max_time=0.6))
        assert isinstance(error, APITimeoutError) and time.monotonic() - start < 1.5


def test_a_retry_that_would_pass_the_max_time_is_not_waited(relay: Relay) -> None:
    relay.enqueue(Scripted.error(503, "busy", headers={"Retry-After": "5"}))
    client = ChatClient(relay.url, KEY, max_retries=3, max_time=2, max_retry_wait=60)
    start = time.monotonic()
    _, _, error = drain(client.stream(MESSAGES))
    assert isinstance(error, APIStatusError) and time.monotonic() - start < 1.5
    assert len(relay.chat_requests) == 1


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon"])
def test_timeouts_must_be_positive_finite_seconds(bad: Any) -> None:
    for kw in ("timeout", "max_time", "connect_timeout"):
        with pytest.raises(ConfigError):
            ChatClient("http://127.0.0.1:1/v1", None, **{kw: bad})
    client = ChatClient("http://127.0.0.1:1/v1", None)
    for kw in ("timeout", "max_time"):
        with pytest.raises(ConfigError):
            client.stream(MESSAGES, **{kw: bad})


@pytest.mark.parametrize(
    "script", [hostile.never_answer, hostile.header_trickle], ids=["silent", "endless-headers"]
)
def test_abort_ends_a_reply_still_waiting_for_its_headers(script: Any) -> None:
    with hostile.RawServer(script) as server:
        client = client_for(server.url, timeout=30)
        failure: list[BaseException] = []

        def read() -> None:
            try:
                list(client.stream(MESSAGES))
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        client.abort()
        thread.join(3)
        assert not thread.is_alive() and time.monotonic() - started < 1.0
    (error,) = failure
    # Headers cut mid-line read as a (bodiless) response to http.client: then the reply is what stops.
    assert isinstance(error, (ConnectError, ConnectionLostError)) and "stopped" in str(error), error


# ------------------------------------------------------------------------------------ reply size (8.4)


@pytest.mark.parametrize(
    "script",
    [
        hostile.endless(b"x" * 65536),
        hostile.endless(b"data: x\n" * 4096),
        hostile.gzip_bomb(64 * 1024 * 1024),
        hostile.endless(b"a" * 65536, first=b'{"choices": [{"message": {"content": "'),
    ],
    ids=["no-newline", "data-lines-no-blank", "gzip-bomb", "endless-json"],
)
def test_a_reply_past_the_byte_limit_stops_with_one_line(script: Any) -> None:
    with hostile.RawServer(script) as server:
        client = client_for(server.url, max_reply_bytes=2 * 1024 * 1024)
        builder, _, error = drain(client.stream(MESSAGES))
    assert isinstance(error, LimitExceededError), error
    assert "2 MiB" in str(error) and "\n" not in str(error)
    assert builder.text in ("partial ", "")  # the JSON path has no partial answer to keep


def test_the_partial_answer_is_yielded_before_the_limit_error() -> None:
    with hostile.RawServer(hostile.endless(b"y" * 65536)) as server:
        events = client_for(server.url, max_reply_bytes=1024 * 1024).stream(MESSAGES)
        first = next(events)
        while not isinstance(first, TextDelta):
            first = next(events)
        assert first.text == "partial "
        with pytest.raises(LimitExceededError):
            next(events)


def test_gzip_answers_still_stream_and_decode(relay: Relay) -> None:
    body = b"".join(c for c in stream_of(["压缩", "的流"]) if isinstance(c, bytes))
    for wbits in (31, 15, -15):  # gzip, zlib-wrapped deflate, raw deflate
        packer = zlib.compressobj(wbits=wbits)
        data = packer.compress(body) + packer.flush()
        encoding = "gzip" if wbits == 31 else "deflate"
        relay.enqueue(Scripted(chunks=[data[:10], data[10:]], headers={"Content-Encoding": encoding}))
        builder, _, error = drain(client_for(relay.url).stream(MESSAGES))
        assert error is None and builder.text == "压缩的流", wbits
    assert relay.chat_requests[0].headers["accept-encoding"] == "gzip, deflate"


# ------------------------------------------------------------------------- retries and request ids (9)


def test_retry_notices_say_what_and_when_and_reach_on_retry(relay: Relay) -> None:
    wordy = "Rate limit reached for gpt-4o\n\nin organization org-x on tokens per min.\nPlease try again."
    relay.enqueue(Scripted.error(429, wordy), Scripted.error(429, wordy), Scripted(chunks=stream_of(["ok"])))
    heard: list[str] = []
    client = ChatClient(relay.url, KEY, max_retries=2)
    client._sleep = lambda s: None
    builder, seen, error = drain(client.stream(MESSAGES, on_retry=heard.append))
    assert error is None and builder.text == "ok"
    assert heard == [
        "HTTP 429 from 127.0.0.1: retrying in 0.5 s (1/2)",
        "HTTP 429 from 127.0.0.1: retrying in 1.0 s (2/2)",
    ]
    assert [d.message for d in seen if isinstance(d, NoticeDelta)] == heard


def test_the_final_error_carries_the_server_message_once_on_one_line(relay: Relay) -> None:
    wordy = "Rate limit reached\n\nfor gpt-4o.\n  Please   try again."
    for _ in range(3):
        relay.enqueue(Scripted.error(429, wordy))
    client = ChatClient(relay.url, KEY, max_retries=2)
    client._sleep = lambda s: None
    _, seen, error = drain(client.stream(MESSAGES))
    assert isinstance(error, APIStatusError)
    assert "\n" not in str(error) and "Rate limit reached for gpt-4o. Please try again." in str(error)
    assert str(error).count("Rate limit") == 1
    assert all("Rate limit" not in d.message for d in seen if isinstance(d, NoticeDelta))


@pytest.mark.parametrize(
    "header",
    ["x-request-id", "X-LiteLLM-Call-Id", "x-oneapi-request-id", "request-id", "x-amzn-requestid", "cf-ray"],
)
def test_request_id_from_response_headers(relay: Relay, header: str) -> None:
    relay.enqueue(Scripted.error(500, "boom", headers={header: "rid-12345"}))
    _, _, error = drain(client_for(relay.url).stream(MESSAGES))
    assert isinstance(error, APIStatusError)
    assert error.request_id == "rid-12345" and "rid-12345" in str(error) and "\n" not in str(error)


def test_a_request_id_in_the_body_wins_over_headers(relay: Relay) -> None:
    relay.enqueue(Scripted.error(500, "boom (request id: body-1)", headers={"x-request-id": "header-2"}))
    _, _, error = drain(client_for(relay.url).stream(MESSAGES))
    assert isinstance(error, APIStatusError) and error.request_id == "body-1"


def test_request_id_header_for_a_mid_stream_error(relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=[sse(chat_chunk("x")), sse({"error": {"message": "upstream died"}})],
            headers={"x-litellm-call-id": "call-777"},
        )
    )
    _, _, error = drain(client_for(relay.url).stream(MESSAGES))
    assert isinstance(error, StreamError) and error.request_id == "call-777"


# ----------------------------------------------------------------------------- empty body hint (9.2)


@pytest.mark.parametrize(
    ("messages", "large"),
    [
        (MESSAGES, False),
        ([{"role": "user", "content": "x" * 9000}], True),
        ([{"role": "user" if i % 2 else "assistant", "content": "q"} for i in range(25)], True),
    ],
)
def test_an_empty_200_to_a_large_request_points_at_the_context(
    relay: Relay, messages: list[dict[str, Any]], large: bool
) -> None:
    relay.enqueue(Scripted(chunks=[], framing="length"))
    _, _, error = drain(client_for(relay.url).stream(messages))
    assert isinstance(error, ProtocolError) and "empty body" in str(error)
    assert ("context" in error.hint) == large
    assert error.message_count == len(messages)
    assert error.request_chars is not None and error.request_chars >= 1
    for word in ("--new", "%chat", "-m "):
        assert word not in str(error)


# ---------------------------------------------------------------------------- the stream object (9.14)


def test_with_block_closes_the_response(relay: Relay) -> None:
    # "xyz" holds no character of KEY, so the redactor holds nothing back
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("xyz")), 0.2, sse(chat_chunk("xyz")), 30.0]))
    with client_for(relay.url).stream(MESSAGES) as events:
        assert isinstance(events, ChatStream)
        for delta in events:
            if isinstance(delta, TextDelta):
                break
    assert relay.wait(lambda: relay.chat_requests[0].outcome == "client_closed", timeout=3)


def test_nothing_is_sent_until_the_first_delta_is_asked_for(relay: Relay) -> None:
    events = client_for(relay.url).stream(MESSAGES)
    time.sleep(0.2)
    assert relay.requests == []
    events.close()
    assert relay.requests == []
    assert list(client_for(relay.url).stream(MESSAGES))  # a fresh stream works


def test_client_errors_name_no_magic_options(relay: Relay) -> None:
    from shenma_magic import _bodyread, _client, _http, _httperrors, _replydecode, _reqbody, _retry

    modules = (_bodyread, _client, _http, _httperrors, _replydecode, _reqbody, _retry)
    source = "".join(Path(str(module.__file__)).read_text() for module in modules)
    for word in ("%chat", "--timeout", "--new", " -m ", "--max-time"):
        assert word not in source, word


def test_connection_refused_is_still_a_connect_error() -> None:
    with pytest.raises(ConnectError):
        list(client_for(f"http://127.0.0.1:{_refused_port()}/v1").stream(MESSAGES))
    with pytest.raises(ConnectionLostError), Relay() as relay:
        relay.enqueue(Scripted(chunks=[sse(chat_chunk("half"))], drop=True))
        list(client_for(relay.url).stream(MESSAGES))


# A server that was reached but whose reply head cannot be read is no "cannot connect": the error says what
# it sent (too much, not HTTP, nothing whole in time), within the timeout, on one line.
@pytest.mark.parametrize(
    ("script", "error", "said"),
    [
        (hostile.endless_headers, LimitExceededError, "sent more than 100 reply headers"),
        (hostile.endless_header_line, LimitExceededError, "a reply header line over 64 KiB"),
        (hostile.not_http, ProtocolError, "answered something that is not HTTP"),
        (hostile.hang_up, ConnectError, "closed the connection without a reply"),
        (
            hostile.header_trickle,
            APITimeoutError,
            "sent no complete reply headers within 1.5 s (the max time)",
        ),
        (hostile.never_answer, APITimeoutError, "sent no reply within 1 s"),
    ],
    ids=["endless-headers", "endless-header-line", "not-http", "hang-up", "trickled-headers", "silent"],
)
def test_a_reply_head_that_cannot_be_read_says_what_the_server_did(
    script: Any, error: type[ShenmaError], said: str
) -> None:
    with hostile.RawServer(script) as server:
        client = client_for(server.url, timeout=1, max_time=1.5)
        start = time.monotonic()
        _, _, failure = drain(client.stream(MESSAGES))
        elapsed = time.monotonic() - start
    assert type(failure) is error, failure
    text = str(failure)
    assert said in text and "cannot connect" not in text and "\n" not in text, text
    assert "partial answer" not in text  # there is none
    assert elapsed < 2.5, elapsed
    assert len(server.requests) == 1  # sent once: no retry (max_retries=0)


def test_a_server_that_hangs_up_before_answering_is_tried_again() -> None:
    with hostile.RawServer(hostile.hang_up) as server:
        client = client_for(server.url, max_retries=2)
        notices: list[str] = []
        _, _, failure = drain(client.stream(MESSAGES, on_retry=notices.append))
    assert isinstance(failure, ConnectError) and "closed the connection without a reply" in str(failure)
    assert len(server.requests) == 3 and len(notices) == 2


@pytest.mark.parametrize("script", [hostile.endless_headers, hostile.endless_header_line, hostile.not_http])
def test_a_reply_head_too_large_or_not_http_is_not_retried(script: Any) -> None:
    with hostile.RawServer(script) as server:
        _, _, failure = drain(client_for(server.url, max_retries=3).stream(MESSAGES))
    assert isinstance(failure, ProtocolError) and len(server.requests) == 1, failure


# ------------------------------------------------------------------------ memory, measured (8.4)

PEAK_RSS_BOUND_MB = 200


@pytest.mark.parametrize(
    "attack", ["no newline", "data: lines, no blank line", "gzip bomb (no newline)", "endless JSON answer"]
)
def test_peak_memory_of_an_endless_reply_stays_bounded(attack: str) -> None:
    from bench.memory_bench import measure

    report = measure(attack)  # a fresh child process at the default 32 MiB limit, under a 1 GiB cap
    assert report["peak_mb"] < PEAK_RSS_BOUND_MB, report
    # Whichever limit comes first ends it: a line (16 MiB, the SSE layer) or the whole reply (32 MiB).
    assert report["error"].startswith("LimitExceededError") and re.search(
        r"\b(16|32) MiB", report["error"]
    ), report
