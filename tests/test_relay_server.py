"""The test servers behave as advertised: tests/relay.py, and the llmock fixture.

These talk raw sockets and http.client on purpose: they check the bytes on the wire,
independently of any client library (and of the project's code).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.relay import (
    HOSTILE_SAMPLE,
    MARKDOWN_SAMPLE,
    REASONING_SAMPLE,
    DropMode,
    Relay,
    Scripted,
    chat_chunk,
    error_body,
    rechunk,
    sse,
    stream_of,
)

CHAT = "/v1/chat/completions"


def _request_bytes(
    path: str, body: Any = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class RawResponse:
    """Everything a raw socket received, with the arrival time of each read."""

    def __init__(self) -> None:
        self.reads: list[tuple[float, bytes]] = []
        self.error: OSError | None = None  # how the connection ended, if not by EOF

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.reads)

    def arrival_of(self, marker: bytes) -> float:
        """When the bytes up to and including ``marker`` had all arrived."""
        seen = b""
        for at, chunk in self.reads:
            seen += chunk
            if marker in seen:
                return at
        raise AssertionError(f"{marker!r} never arrived in {self.data!r}")


def raw_exchange(relay: Relay, request: bytes, timeout: float = 5.0) -> RawResponse:
    """Send ``request`` and read until the server closes the connection."""
    result = RawResponse()
    with socket.create_connection((relay.host, relay.port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                result.reads.append((time.monotonic(), chunk))
        except OSError as exc:
            result.error = exc
    return result


def sse_payloads(body: bytes) -> list[str]:
    return [line[len("data: ") :] for line in body.decode().split("\n") if line.startswith("data: ")]


def post_json(relay: Relay, body: Any, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=5)
    conn.request("POST", CHAT, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    return conn.getresponse()


# --------------------------------------------------------------------------- framing


def test_chunked_framing_delivers_each_event_before_the_next_is_sent(relay: Relay) -> None:
    first, last = sse(chat_chunk("first")), sse("[DONE]")
    relay.enqueue(Scripted(chunks=[first, 0.25, last]))
    response = raw_exchange(relay, _request_bytes(CHAT, {}, {"Connection": "close"}))

    head, _, body = response.data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert b"Content-Type: text/event-stream" in head
    # Each bytes item is its own HTTP chunk, then the terminating 0-chunk.
    assert body == b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(first), first, len(last), last)
    # The first event arrived a whole delay before the last: it was not held back.
    assert response.arrival_of(b"[DONE]") - response.arrival_of(b'"first"') >= 0.2


def test_close_framing_has_no_length_and_ends_by_closing(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[b"data: one\n\n", 0.25, b"data: two\n\n"], framing="close"))
    response = raw_exchange(relay, _request_bytes(CHAT, {}))  # keep-alive asked, close given

    head, _, body = response.data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    assert body == b"data: one\n\ndata: two\n\n"
    assert response.error is None  # a clean FIN
    assert response.arrival_of(b"two") - response.arrival_of(b"one") >= 0.2


def test_length_framing_sends_content_length(relay: Relay) -> None:
    relay.enqueue(Scripted.error(429, "slow down", headers={"Retry-After": "2"}))
    response = post_json(relay, {})
    assert response.status == 429
    assert response.getheader("Retry-After") == "2"
    assert response.getheader("Content-Type") == "application/json"
    body = response.read()
    assert int(response.getheader("Content-Length") or 0) == len(body)
    assert json.loads(body) == {
        "error": {"message": "slow down", "type": "invalid_request_error", "param": None, "code": None}
    }
    assert (
        error_body("x", "server_error", "c") == b'{"error": {"message": "x", "type": "server_error", '
        b'"param": null, "code": "c"}}'
    )


def test_rechunk_splits_events_and_multibyte_characters(relay: Relay) -> None:
    stream = stream_of(["你好"], finish_reason=None, done=False)
    relay.enqueue(Scripted(chunks=rechunk(stream, 7)))
    response = post_json(relay, {})
    payloads = sse_payloads(response.read())
    assert json.loads(payloads[0])["choices"][0]["delta"] == {"role": "assistant", "content": "你好"}
    assert len(rechunk(stream, 7)) > 10


# ------------------------------------------------------------------------ disconnects


@pytest.mark.parametrize("mode", ["rst", "fin"])
def test_drop_kills_the_connection_mid_body(relay: Relay, mode: DropMode) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("partial"))], drop=True, drop_mode=mode))
    response = raw_exchange(relay, _request_bytes(CHAT, {}))

    assert b'"partial"' in response.data  # what was sent before the drop still arrives
    assert not response.data.endswith(b"0\r\n\r\n")  # no terminating chunk
    if mode == "rst":
        assert isinstance(response.error, ConnectionResetError)
    else:
        assert response.error is None
    assert relay.requests[0].outcome == "dropped"

    # http.client sees an incomplete chunked body either way.
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("partial"))], drop=True, drop_mode=mode))
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        post_json(relay, {}).read()


def test_stop_does_not_wait_for_a_stalled_response() -> None:
    relay = Relay().start()
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("a")), 60.0, sse("[DONE]")]))
    box: list[RawResponse] = []
    reader = threading.Thread(target=lambda: box.append(raw_exchange(relay, _request_bytes(CHAT, {}))))
    reader.start()
    assert relay.wait(lambda: bool(relay.requests))
    time.sleep(0.1)

    started = time.monotonic()
    relay.stop()
    assert time.monotonic() - started < 1.0
    reader.join(2)
    assert not reader.is_alive()
    assert relay.requests[0].outcome == "stopped"
    with pytest.raises(ConnectionRefusedError):  # the address stays known after stop()
        socket.create_connection((relay.host, relay.port), timeout=1)


def test_a_client_hanging_up_during_a_stall_is_noticed(relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("a")), 60.0, sse("[DONE]")]))
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        sock.sendall(_request_bytes(CHAT, {}))
        received = b""
        while b'"a"' not in received:  # headers and first event may come in two reads
            received += sock.recv(65536)
    assert relay.wait(lambda: relay.requests[0].outcome == "client_closed", timeout=2)


# --------------------------------------------------------------------- recording


def test_requests_are_recorded_with_headers_and_json(relay: Relay) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    post_json(relay, body, {"Authorization": "Bearer sk-test", "X-Trace": "1"}).read()
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=5)
    conn.request("GET", "/v1/models?limit=5")
    conn.getresponse().read()

    chat, models = relay.requests
    assert (chat.method, chat.path, chat.route) == ("POST", CHAT, CHAT)
    assert chat.headers["authorization"] == "Bearer sk-test"
    assert chat.headers["x-trace"] == "1"
    assert chat.json == body
    assert chat.outcome == "complete"
    assert (models.method, models.path, models.route, models.json) == (
        "GET",
        "/v1/models?limit=5",
        "/v1/models",
        None,
    )
    assert relay.chat_requests == [chat]
    relay.clear()
    assert relay.requests == [] and relay.pending == []


def test_queued_responses_are_fifo_and_can_target_a_path(relay: Relay) -> None:
    relay.enqueue(
        Scripted.json_body({"object": "list", "data": []}, path="/v1/models"),
        Scripted.error(500, "first"),
        Scripted.error(502, "second"),
    )
    assert post_json(relay, {}).status == 500
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=5)
    conn.request("GET", "/v1/models")
    assert json.loads(conn.getresponse().read()) == {"object": "list", "data": []}
    assert post_json(relay, {}).status == 502
    assert relay.pending == []
    with pytest.raises(TypeError):
        relay.enqueue(Scripted(chunks=["not bytes"]))  # type: ignore[list-item]  # wrong on purpose


# ------------------------------------------------------------------ default answers


def test_default_echo_streams_deltas_usage_and_done(relay: Relay) -> None:
    body = {
        "model": "deepseek-r1",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello 世界"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            },
        ],
    }
    response = post_json(relay, body)
    assert response.getheader("Content-Type") == "text/event-stream"  # no charset, like new-api
    payloads = sse_payloads(response.read())

    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    *deltas, finish, usage = chunks
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "deepseek-r1" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert deltas[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in deltas) == "echo: hello 世界"
    assert len(deltas) == 3
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_default_echo_without_usage_and_without_stream(relay: Relay) -> None:
    messages = [{"role": "user", "content": "ping"}]
    payloads = sse_payloads(post_json(relay, {"stream": True, "messages": messages}).read())
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["choices"][0]["finish_reason"] == "stop"  # no usage chunk

    response = post_json(relay, {"model": "gpt-4o-mini", "messages": messages})
    assert response.getheader("Content-Type") == "application/json"
    answer = json.loads(response.read())
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "echo: ping"}
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 2


def test_default_models_and_unknown_paths(relay: Relay) -> None:
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=5)
    conn.request("GET", "/models")
    models = json.loads(conn.getresponse().read())
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini", "deepseek-r1"]
    conn.request("GET", "/v2/whatever")
    response = conn.getresponse()
    assert response.status == 404
    assert json.loads(response.read())["error"]["code"] == "not_found"
    assert post_json(relay, {"messages": "nope"}).status == 400


def test_keep_alive_reuses_one_connection(relay: Relay) -> None:
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=5)
    for text in ("one", "two"):
        payload = {"stream": True, "messages": [{"role": "user", "content": text}]}
        conn.request("POST", "/chat/completions", json.dumps(payload))  # the path without /v1 works too
        assert b"echo: " in conn.getresponse().read()
    conn.request("GET", "/v1/models")
    conn.getresponse().read()
    assert relay.connections == 1
    assert [r.connection for r in relay.requests] == [1, 1, 1]


def test_slash_commands(relay: Relay) -> None:
    def content_of(text: str) -> tuple[str, str, float]:
        started = time.monotonic()
        payload = {"stream": True, "messages": [{"role": "user", "content": text}]}
        chunks = [json.loads(p) for p in sse_payloads(post_json(relay, payload).read())[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        return (
            "".join(d.get("content", "") for d in deltas),
            "".join(d.get("reasoning_content", "") for d in deltas),
            time.monotonic() - started,
        )

    content, _, took = content_of("/slow 5 0.25")
    assert content == "word1 word2 word3 word4 word5"
    assert 0.2 <= took < 2
    assert content_of("/markdown")[0] == MARKDOWN_SAMPLE
    assert content_of("/hostile")[0] == HOSTILE_SAMPLE
    assert content_of("/reason why?")[:2] == ("echo: why?", REASONING_SAMPLE)

    def ask(text: str) -> http.client.HTTPResponse:
        return post_json(relay, {"stream": True, "messages": [{"role": "user", "content": text}]})

    response = ask("/error 503 busy")
    assert response.status == 503
    assert json.loads(response.read())["error"]["message"] == "busy"

    response = ask("/drop 2")
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        response.read()


def test_second_loopback_address_for_redirects(relay: Relay) -> None:
    with Relay(host="127.0.0.2") as other:
        relay.enqueue(Scripted(status=307, headers={"Location": other.url + "/chat/completions"}))
        response = post_json(relay, {"stream": True, "messages": [{"role": "user", "content": "x"}]})
        assert response.status == 307
        assert response.getheader("Location") == f"http://127.0.0.2:{other.port}/v1/chat/completions"
        response.read()
        assert other.base.startswith("http://127.0.0.2:")
        post_json(other, {"stream": True, "messages": [{"role": "user", "content": "x"}]}).read()
        assert other.chat_requests[0].headers["host"] == f"127.0.0.2:{other.port}"
        assert len(relay.chat_requests) == 1


def test_command_line_relay_prints_its_url_and_serves() -> None:
    script = Path(__file__).with_name("relay.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        host, port = url[len("http://") : -len("/v1")].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request(
            "POST", CHAT, json.dumps({"stream": True, "messages": [{"role": "user", "content": "hi"}]})
        )
        assert b"echo: " in conn.getresponse().read()
    finally:
        process.terminate()
        process.wait(5)


# ----------------------------------------------------------------------------- llmock


def test_llmock_streams_a_chat_completion(llmock: Any) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hello"}],
    }
    conn = http.client.HTTPConnection("127.0.0.1", llmock.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    payloads = sse_payloads(response.read())
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert llmock.url == llmock.base + "/v1"

    # A forced status and a queued stream fault, as documented in LLMOCK.md.
    conn.request(
        "POST",
        "/v1/chat/completions",
        json.dumps(body),
        {"Content-Type": "application/json", **llmock.headers_for_status(429)},
    )
    response = conn.getresponse()
    assert (response.status, response.getheader("Retry-After")) == (429, "1")
    assert json.loads(response.read())["error"]["type"] == "rate_limit_error"

    llmock.truncate(after_chunks=2)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    payloads = sse_payloads(conn.getresponse().read())
    assert len(payloads) == 2 and "[DONE]" not in payloads
    assert llmock.pending() == []
