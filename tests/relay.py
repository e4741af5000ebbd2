"""A real, local, OpenAI-compatible HTTP server for tests (no mocks).

Tests start a :class:`Relay` on a loopback address, point the code under test at
``relay.url`` (``http://127.0.0.1:PORT/v1``), script the exact bytes it should
answer with, and then inspect what the client really sent::

    with Relay() as relay:
        relay.enqueue(Scripted(chunks=stream_of(["Hel", "lo"], delay=0.05)))
        ...  # run the client against relay.url
        assert relay.chat_requests[0].headers["authorization"] == "Bearer sk-test"

Everything goes over a real TCP socket, so framing, incremental delivery, keep-alive,
abrupt disconnects and stalls behave the way they do against the real relay.

Scripted responses
    :meth:`Relay.enqueue` queues :class:`Scripted` responses (FIFO). Each one is served
    to the next ``POST`` on ``/v1/chat/completions`` (or ``/chat/completions``), or, when
    its ``path`` is set, to the next request of any method on that path. Its ``chunks``
    are written one by one, each flushed at once; a number in ``chunks`` means "sleep that
    many seconds here". ``framing`` picks how the body is delimited (``chunked``: each
    bytes item is its own HTTP chunk; ``close``: no length, the end is the socket closing;
    ``length``: ``Content-Length``). ``drop=True`` kills the connection after the chunks:
    an RST by default (``drop_mode="rst"``), or a plain FIN without the terminating
    0-chunk (``drop_mode="fin"``, what llmock's ``disconnect`` does).

    ``model="name"`` serves it only to a chat request for that model (the first one queued for it),
    so concurrent requests for several models each get their own script.

    Builders: :func:`stream_of` (a whole chat stream), :func:`chat_chunk`, :func:`sse`,
    :func:`error_body`, :func:`rechunk` (re-cut a stream into N-byte writes, splitting events
    and UTF-8 characters), ``Scripted.error(status, message)``, ``Scripted.json_body(obj)``.

Inspecting
    ``relay.requests`` / ``relay.chat_requests`` hold a :class:`RecordedRequest` per request
    (method, path, lower-cased headers, raw body, ``.json``), recorded before the answer
    starts. ``.connection`` is the serial number of its TCP connection and
    ``relay.connections`` counts connections accepted, for keep-alive assertions.
    ``.outcome`` becomes ``complete``, ``dropped``, ``client_closed`` (the client hung up,
    noticed within ~20 ms even during a scripted sleep) or ``stopped``; wait for it with
    ``relay.wait(lambda: relay.requests[0].outcome == "client_closed")``. ``stop()`` returns
    at once even with a response sleeping mid-body; ``base``/``url`` stay valid after it
    (connection refused), and ``start()`` again serves on the same port.

Default answers (nothing queued for the request)
    * ``POST /v1/chat/completions``: echoes the last user message. With ``"stream": true``
      it streams OpenAI ``chat.completion.chunk`` events: one content delta per word of
      ``"echo: " + <text>`` (the first also carries ``"role": "assistant"``), then a chunk
      with ``finish_reason: "stop"``, then, if ``stream_options.include_usage`` is set, a
      usage chunk with ``"choices": []``, then ``data: [DONE]``. Without ``"stream": true``
      it answers one ``chat.completion`` JSON object (OpenAI's default is not to stream).
      List content (``[{"type": "text", ...}, {"type": "image_url", ...}]``) echoes its
      text parts joined by newlines. Token counts in ``usage`` are word counts.
    * ``GET /v1/models``: :data:`DEFAULT_MODELS`.
    * Anything else: a 404 (or 405) with an OpenAI-style ``{"error": {...}}`` body.

    Streams are sent as ``Content-Type: text/event-stream`` *without* a charset, as
    new-api/one-api based relays do; ``requests`` then guesses ISO-8859-1 for ``.text``,
    so a client must decode the bytes as UTF-8 itself. JSON is sent with
    ``ensure_ascii=False``: non-ASCII text is raw UTF-8 on the wire.

Slash commands (the last user message starts with one; they drive a relay that runs as a
separate process, e.g. for notebook and browser tests, without scripting it)
    ``/slow N S``        streams ``word1 word2 ... wordN`` over about S seconds
                         (defaults: N=20, S=2).
    ``/markdown``        streams :data:`MARKDOWN_SAMPLE` (heading, list, table, fenced code
                         containing ``<`` and ``&``, inline code).
    ``/reason [text]``   streams :data:`REASONING_SAMPLE` as ``reasoning_content`` deltas,
                         then ``"echo: <text>"`` (``"Answer: 42"`` without text) as content.
    ``/hostile``         streams :data:`HOSTILE_SAMPLE`: Markdown with ``<script>``, an
                         ``<img onerror>``, a ``javascript:`` iframe and link, and an HTML
                         comment; a safe renderer must leave ``window.__pwned*`` unset.
    ``/error STATUS [message]``  answers that HTTP status with an OpenAI error body.
    ``/drop N``          streams N words, then resets the connection (no finish, no [DONE]).
    ``/tool NAME JSON``  streams a call to tool NAME with arguments JSON (finish_reason "tool_calls");
                         the request that carries the tool's result is answered "echo: tool said ...".

    A request with ``response_format`` gets the echo as a JSON object: ``{"echo": "<text>"}``.

    Non-streamed requests get the same text as one JSON answer.

Command line
    ``python -m tests.relay [--host 127.0.0.1] [--port 0] [--delay S] [--quiet]``
    (or ``python tests/relay.py ...``) serves the default answers until interrupted.
    ``--delay`` sleeps S seconds between streamed events. The first line printed on
    stdout is the OpenAI base URL, e.g. ``http://127.0.0.1:41234/v1``; a harness can read
    it to learn the port when ``--port 0`` lets the OS choose one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, Union
from urllib.parse import urlsplit

__all__ = [
    "CHAT_PATHS",
    "DEFAULT_MODELS",
    "HOSTILE_SAMPLE",
    "MARKDOWN_SAMPLE",
    "MODELS_PATHS",
    "REASONING_SAMPLE",
    "Chunk",
    "RecordedRequest",
    "Relay",
    "Scripted",
    "chat_chunk",
    "default_chat_response",
    "default_response",
    "error_body",
    "main",
    "rechunk",
    "sse",
    "stream_of",
    "usage_chunk",
]

#: One item of a scripted body: bytes to send, or seconds to sleep.
Chunk = Union[bytes, float]
Framing = Literal["chunked", "close", "length"]
DropMode = Literal["rst", "fin"]
#: What became of a request's response; see :attr:`RecordedRequest.outcome`.
Outcome = Literal["pending", "complete", "client_closed", "dropped", "stopped"]

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
MODELS_PATHS = frozenset({"/v1/models", "/models"})
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model"},
        {"id": "deepseek-r1", "object": "model"},
    ],
}

MARKDOWN_SAMPLE = """\
# Quarterly report

Some **bold** text, some *italic* text and `inline <code> & more`.

- first item
- second item
  - nested item

| Name | Value |
| ---- | ----: |
| alpha | 1 |
| beta & gamma | 2 |

```python
if a < b and c & d:
    print("<tag>")
```

Done.
"""

HOSTILE_SAMPLE = """\
Hostile content test.

<script>window.__pwned=1</script>

<img src=x onerror="window.__pwned2=1">

<iframe src="javascript:window.__pwned3=1"></iframe>

[click](javascript:window.__pwned4=1)

<!-- comment -->

End of hostile content.
"""

REASONING_SAMPLE = "Let me think step by step. The user wants an answer, so I will give one."

# Streams built by the helpers share one id: real servers keep it constant per stream.
_BUILDER_ID = "chatcmpl-relay-test"
_SSE_PREFIXES = (b"data:", b"event:", b"id:", b"retry:", b":")
# How often a scripted sleep looks for a stop() or a client that hung up.
_POLL_SECONDS = 0.02


# --------------------------------------------------------------------------- data


@dataclass
class RecordedRequest:
    """One request as the relay received it, recorded before any byte of the answer."""

    method: str
    path: str  # the request target as sent, query string included
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    connection: int = 0  # serial number (from 1) of the TCP connection it came on
    at: float = 0.0  # time.monotonic() once the body had been read
    outcome: Outcome = "pending"  # updated by the server thread as the answer goes out

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None if it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path


@dataclass
class Scripted:
    """One scripted response, served to the next POST on /v1/chat/completions
    (or, if `path` is given, to the next request of any method on that path)."""

    status: int = 200
    # Extra headers. Content-Type defaults to text/event-stream for a 200 whose body starts
    # like SSE, application/json otherwise. Framing headers are added unless given here,
    # so a test can send a lying Content-Length on purpose.
    headers: dict[str, str] = field(default_factory=dict)
    # bytes are written and flushed one by one; a number means sleep that many seconds.
    chunks: list[Chunk] = field(default_factory=list)
    framing: Framing = "chunked"
    # After the chunks, kill the connection abruptly (chunked: without the 0-chunk).
    drop: bool = False
    path: str | None = None  # e.g. "/v1/models"; None means chat completions
    drop_mode: DropMode = "rst"  # "rst": SO_LINGER 0 then close; "fin": shutdown, no RST
    # Serve it only to a chat request whose body names this model (several models streaming at once
    # each get their own script, whatever order their requests arrive in); None: any request.
    model: str | None = None

    @classmethod
    def json_body(
        cls, obj: Any, status: int = 200, *, headers: dict[str, str] | None = None, path: str | None = None
    ) -> Scripted:
        """A complete JSON answer with a Content-Length."""
        data = json.dumps(obj, ensure_ascii=False).encode()
        return cls(status=status, headers=dict(headers or {}), chunks=[data], framing="length", path=path)

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
    ) -> Scripted:
        """An OpenAI-style error answer.

        e.g. ``Scripted.error(429, "slow down", headers={"Retry-After": "1"})``.
        """
        return cls(
            status=status,
            headers=dict(headers or {}),
            chunks=[error_body(message, type_, code)],
            framing="length",
            path=path,
        )

    def validate(self) -> None:
        """Raise TypeError/ValueError now rather than failing later inside a server thread."""
        if not isinstance(self.status, int) or not 100 <= self.status <= 999:
            raise ValueError(f"status must be an int in 100..999, got {self.status!r}")
        if self.framing not in ("chunked", "close", "length"):
            raise ValueError(f"framing must be 'chunked', 'close' or 'length', got {self.framing!r}")
        if self.drop_mode not in ("rst", "fin"):
            raise ValueError(f"drop_mode must be 'rst' or 'fin', got {self.drop_mode!r}")
        for item in self.chunks:
            if isinstance(item, bool) or not isinstance(item, (bytes, bytearray, int, float)):
                raise TypeError(f"chunks items must be bytes or seconds (float), got {item!r}")
            if not isinstance(item, (bytes, bytearray)) and item < 0:
                raise ValueError(f"a sleep cannot be negative: {item!r}")


# ----------------------------------------------------------------------- builders


def sse(obj_or_str: Any) -> bytes:
    """One SSE event: ``b"data: " + payload + b"\\n\\n"``. A str is sent raw, anything else as JSON."""
    if isinstance(obj_or_str, bytes):
        payload = obj_or_str
    elif isinstance(obj_or_str, str):
        payload = obj_or_str.encode()
    else:
        # ensure_ascii=False: non-ASCII goes out as raw UTF-8, as real servers send it,
        # so a multi-byte character can straddle two network reads.
        payload = json.dumps(obj_or_str, ensure_ascii=False, separators=(",", ":")).encode()
    return b"data: " + payload + b"\n\n"


def chat_chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    finish_reason: str | None = None,
    model: str = DEFAULT_MODEL,
    role: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    index: int = 0,
    completion_id: str = _BUILDER_ID,
    created: int | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` with one choice; only the given delta fields are set."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning  # DeepSeek-R1 style, as relays pass it through
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(
    usage: dict[str, Any], *, model: str = DEFAULT_MODEL, completion_id: str = _BUILDER_ID
) -> dict[str, Any]:
    """The final usage chunk of a stream with ``stream_options.include_usage``: no choices."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage,
    }


def stream_of(
    texts: Sequence[str],
    *,
    reasoning: Sequence[str] = (),
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = None,
    done: bool = True,
    delay: float = 0.0,
    model: str = DEFAULT_MODEL,
    completion_id: str = _BUILDER_ID,
) -> list[Chunk]:
    """A whole chat completion stream: reasoning deltas, content deltas, the finish chunk
    (skipped if ``finish_reason`` is None), a usage chunk (if ``usage``), ``[DONE]`` (if
    ``done``). The first delta carries ``role: assistant``. ``delay`` seconds between events.
    """
    events: list[bytes] = []
    role: str | None = "assistant"
    for piece in reasoning:
        events.append(sse(chat_chunk(reasoning=piece, role=role, model=model, completion_id=completion_id)))
        role = None
    for piece in texts:
        events.append(sse(chat_chunk(piece, role=role, model=model, completion_id=completion_id)))
        role = None
    if finish_reason is not None:
        events.append(
            sse(chat_chunk(finish_reason=finish_reason, role=role, model=model, completion_id=completion_id))
        )
    if usage is not None:
        events.append(sse(usage_chunk(usage, model=model, completion_id=completion_id)))
    if done:
        events.append(sse("[DONE]"))
    return _paced(events, delay)


def tool_call_stream(name: str, arguments: str, call_id: str = "call_relay_1") -> list[Chunk]:
    """A streamed tool call to ``name`` with ``arguments`` (a JSON string) split over two deltas, then
    ``finish_reason: "tool_calls"`` and ``[DONE]``, as OpenAI sends it."""
    half = len(arguments) // 2
    start = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [
        sse(chat_chunk(role="assistant", tool_calls=[start])),
        sse(chat_chunk(tool_calls=[{"index": 0, "function": {"arguments": arguments[:half]}}])),
        sse(chat_chunk(tool_calls=[{"index": 0, "function": {"arguments": arguments[half:]}}])),
        sse(chat_chunk(finish_reason="tool_calls")),
        sse("[DONE]"),
    ]


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None) -> bytes:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": type_, "param": None, "code": code}
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def rechunk(items: Iterable[Chunk], size: int, *, delay: float = 0.0) -> list[Chunk]:
    """Join the bytes of ``items`` and cut them into ``size``-byte pieces (sleeps dropped),
    ``delay`` seconds apart: events then straddle network writes, and with a small size
    so do multi-byte UTF-8 characters.
    """
    if size < 1:
        raise ValueError("size must be >= 1")
    data = b"".join(bytes(item) for item in items if isinstance(item, (bytes, bytearray)))
    return _paced([data[i : i + size] for i in range(0, len(data), size)], delay)


def _paced(pieces: list[bytes], delay: float) -> list[Chunk]:
    if delay <= 0:
        return list(pieces)
    out: list[Chunk] = []
    for i, piece in enumerate(pieces):
        if i:
            out.append(delay)
        out.append(piece)
    return out


# ------------------------------------------------------------------ default answers


def _words(text: str) -> list[str]:
    """Word-sized pieces, whitespace kept attached, that concatenate back to ``text``."""
    pieces = re.findall(r"\s*\S+\s*", text)
    if "".join(pieces) != text:  # empty or whitespace-only text
        return [text] if text else []
    return pieces


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, poll: float = 0.01) -> bool:
    """Poll ``condition`` every ``poll`` seconds until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def last_user_text(messages: Any) -> str:
    """The text of the last user message (its text parts, for list content); "" if there is none."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message.get("content"))
    return ""


@dataclass
class _Reply:
    """What the default chat answer says, before it is put on the wire."""

    content: list[str]
    reasoning: list[str] = field(default_factory=list)
    gap: float = 0.0  # seconds before each event but the first
    drop: bool = False  # stop after the content and reset the connection


def _slash_reply(text: str, delay: float) -> _Reply | Scripted:
    """The reply for ``text``: a slash command's, or the echo."""
    command, _, rest = text.strip().partition(" ")
    args = rest.split()
    if command == "/slow":
        count = int(args[0]) if args else 20
        seconds = float(args[1]) if len(args) > 1 else 2.0
        words = _words(" ".join(f"word{i}" for i in range(1, count + 1)))
        return _Reply(words, gap=seconds / max(count, 1))
    if command == "/markdown":
        return _Reply(_words(MARKDOWN_SAMPLE), gap=delay)
    if command == "/hostile":
        return _Reply(_words(HOSTILE_SAMPLE), gap=delay)
    if command == "/reason":
        answer = "echo: " + rest.strip() if rest.strip() else "Answer: 42"
        return _Reply(_words(answer), reasoning=_words(REASONING_SAMPLE), gap=delay)
    if command == "/error":
        status = int(args[0]) if args else 500
        message = rest.strip()[len(args[0]) :].strip() if args else ""
        return Scripted.error(
            status,
            message or f"scripted error {status}",
            type_="server_error" if status >= 500 else "invalid_request_error",
        )
    if command == "/tool":
        name, _, arguments = rest.strip().partition(" ")
        return Scripted(chunks=tool_call_stream(name or "tool", arguments.strip() or "{}"))
    if command == "/drop":
        count = int(args[0]) if args else 3
        return _Reply(_words(" ".join(f"word{i}" for i in range(1, count + 1))), gap=delay, drop=True)
    return _Reply(_words("echo: " + text), gap=delay)


def default_chat_response(body: Any, *, delay: float = 0.0) -> Scripted:
    """The relay's answer to a chat completion request when nothing is queued."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return Scripted.error(400, "expected a JSON object with a 'messages' list")
    model = body["model"] if isinstance(body.get("model"), str) else DEFAULT_MODEL
    last = body["messages"][-1] if body["messages"] else {}
    text = last_user_text(body["messages"])
    if isinstance(last, dict) and last.get("role") == "tool":
        # The answer after a round of tool calls: say what the tool returned.
        reply = _Reply(_words("echo: tool said " + _message_text(last.get("content"))), gap=delay)
    else:
        slash = _slash_reply(text, delay)
        if isinstance(slash, Scripted):
            return slash
        reply = slash
        if isinstance(body.get("response_format"), dict) and not text.startswith("/"):
            # JSON mode: the echo as a JSON object, as a model following response_format would answer.
            reply = _Reply(_words(json.dumps({"echo": text}, ensure_ascii=False)), gap=delay)

    prompt_tokens = sum(
        len(_message_text(m.get("content")).split()) for m in body["messages"] if isinstance(m, dict)
    )
    completion_tokens = len(reply.content) + len(reply.reasoning)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    completion_id = f"chatcmpl-relay-{uuid.uuid4().hex[:12]}"

    if body.get("stream") is not True:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.content)}
        if reply.reasoning:
            message["reasoning_content"] = "".join(reply.reasoning)
        answer = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        data = json.dumps(answer, ensure_ascii=False).encode()
        total_wait = reply.gap * max(len(reply.content) + len(reply.reasoning) - 1, 0)
        if reply.drop:  # promise the whole body, send half, then reset
            return Scripted(
                headers={"Content-Length": str(len(data))},
                chunks=[data[: len(data) // 2]],
                framing="length",
                drop=True,
            )
        return Scripted(chunks=[total_wait, data] if total_wait else [data], framing="length")

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks = stream_of(
        reply.content,
        reasoning=reply.reasoning,
        finish_reason=None if reply.drop else "stop",
        usage=usage if include_usage and not reply.drop else None,
        done=not reply.drop,
        delay=reply.gap,
        model=model,
        completion_id=completion_id,
    )
    return Scripted(chunks=chunks, drop=reply.drop)


def default_response(method: str, route: str, request: RecordedRequest, *, delay: float = 0.0) -> Scripted:
    """The answer to a request nothing was queued for. See the module docstring."""
    if route in CHAT_PATHS:
        if method != "POST":
            return Scripted.error(405, f"{method} not allowed on {route}", code="method_not_allowed")
        return default_chat_response(request.json, delay=delay)
    if route in MODELS_PATHS:
        if method != "GET":
            return Scripted.error(405, f"{method} not allowed on {route}", code="method_not_allowed")
        return Scripted.json_body(DEFAULT_MODELS)
    return Scripted.error(404, f"Unknown path: {route}", code="not_found")


# --------------------------------------------------------------------------- server


class _Stopped(Exception):
    """The relay is stopping: abandon the response being written."""


class _ClientGone(Exception):
    """The client closed or reset the connection while its answer was being written."""


class _Server(ThreadingHTTPServer):
    # Handler threads must never keep the test process alive or make stop() wait for a
    # response that sleeps for minutes: stop() closes their sockets instead.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: Relay) -> None:
        self.relay = relay
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.relay._accepted(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        self.relay._released(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client vanishing mid-request is routine in these tests; anything else is a
        # bug in the relay and gets the usual traceback.
        if not isinstance(sys.exc_info()[1], OSError) or self.relay.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked responses
    server_version = "relay-test/1"
    # Small writes spaced by sleeps must leave at once, not wait on Nagle + delayed ACKs.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.relay.verbose:
            super().log_message(format, *args)

    # Every method goes through the same path; the relay decides what is allowed.
    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _serve(self) -> None:
        relay = self.server.relay
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RecordedRequest(
            self.command,
            self.path,
            headers,
            body,
            connection=relay._connection_id(self.connection),
            at=time.monotonic(),
        )
        relay._record(record)
        route = record.route
        body = record.json
        scripted = relay._take(self.command, route, body.get("model") if isinstance(body, dict) else None)
        if scripted is None:
            scripted = default_response(self.command, route, record, delay=relay.delay)
        try:
            self._send(scripted, record)
        except _Stopped:
            record.outcome = "stopped"
            self._abandon()
        except _ClientGone:
            record.outcome = "client_closed"
            self._abandon()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, scripted: Scripted, record: RecordedRequest) -> None:
        # The outcome is set just *before* the write that lets the client see the end of
        # the response, so a test that saw the end can rely on it. A failing write then
        # overrides it (see _serve).
        final = _final_write(scripted)
        given = {name.lower() for name in scripted.headers}
        self.send_response(scripted.status)
        if "content-type" not in given:
            self.send_header("Content-Type", _content_type(scripted))
        if scripted.framing == "chunked" and "transfer-encoding" not in given:
            self.send_header("Transfer-Encoding", "chunked")
        elif scripted.framing == "close" and "connection" not in given:
            self.send_header("Connection", "close")
        elif scripted.framing == "length" and "content-length" not in given:
            total = sum(len(item) for item in scripted.chunks if isinstance(item, (bytes, bytearray)))
            self.send_header("Content-Length", str(total))
        for name, value in scripted.headers.items():
            self.send_header(name, value)  # also flips close_connection on "Connection: close"
        if scripted.framing == "close":
            self.close_connection = True
        if final == -1:
            record.outcome = "complete"
        self._write(self._flush_headers)

        for index, item in enumerate(scripted.chunks):
            if index == final:
                record.outcome = "complete"
            if isinstance(item, (bytes, bytearray)):
                if not item:
                    continue  # an empty HTTP chunk would end a chunked body early
                data = bytes(item)
                if scripted.framing == "chunked":
                    data = b"%x\r\n%s\r\n" % (len(data), data)
                self._write(functools.partial(self.wfile.write, data))
            else:
                self._sleep(float(item))

        record.outcome = "dropped" if scripted.drop else "complete"
        if scripted.drop:
            self._drop(scripted.drop_mode)
        elif scripted.framing == "chunked":
            self._write(lambda: self.wfile.write(b"0\r\n\r\n"))

    def _flush_headers(self) -> None:
        self.end_headers()

    def _write(self, action: Callable[[], Any]) -> None:
        if self.server.relay._stopping.is_set():
            raise _Stopped
        try:
            action()
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _ClientGone from exc
        except OSError as exc:
            # stop() shut the socket down under us.
            if self.server.relay._stopping.is_set():
                raise _Stopped from exc
            raise _ClientGone from exc

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake for stop() and notice a client that hangs up meanwhile."""
        deadline = time.monotonic() + seconds
        watch_client = True
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.server.relay._stopping.wait(min(left, _POLL_SECONDS)):
                raise _Stopped
            if watch_client:
                watch_client = self._client_still_there()

    def _client_still_there(self) -> bool:
        """Raise _ClientGone if the peer closed; return False once it sent more data
        (a pipelined request), since its closing can no longer be told apart. A client
        that half-closes after its request would count as gone; HTTP clients do not."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return True
            peeked = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError as exc:
            raise _ClientGone from exc
        if not peeked:
            raise _ClientGone
        return False

    def _drop(self, mode: DropMode) -> None:
        self.close_connection = True
        sock = self.connection
        try:
            if mode == "fin":
                sock.shutdown(socket.SHUT_RDWR)
                return
            # SO_LINGER with a zero timeout turns close() into an immediate RST. The
            # buffered reader (rfile) holds a reference that would keep the fd open, so
            # close it first; wfile writes to the socket directly and holds none.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            sock.close()
        except OSError:
            pass

    def _abandon(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _final_write(scripted: Scripted) -> int | None:
    """Where a Content-Length response becomes complete for the client: the index of its
    last non-empty bytes item, -1 for the headers when it has none, None when the end
    only shows after the chunks (chunked, close, or drop)."""
    if scripted.framing != "length" or scripted.drop:
        return None
    sizes = [i for i, item in enumerate(scripted.chunks) if isinstance(item, (bytes, bytearray)) and item]
    return sizes[-1] if sizes else -1


def _content_type(scripted: Scripted) -> str:
    bodies = (bytes(item) for item in scripted.chunks if isinstance(item, (bytes, bytearray)) and item)
    first = next(bodies, b"")
    if scripted.status == 200 and first.lstrip().startswith(_SSE_PREFIXES):
        return "text/event-stream"
    return "application/json"


class Relay:
    """A threaded OpenAI-compatible HTTP server on a loopback address. See the module docstring."""

    def __init__(
        self, host: str = "127.0.0.1", *, port: int = 0, delay: float = 0.0, verbose: bool = False
    ) -> None:
        self.host = host
        self.delay = delay  # seconds between events of the default streamed answers
        self.verbose = verbose  # log each request to stderr, like http.server does
        self.requests: list[RecordedRequest] = []
        self.connections = 0  # TCP connections accepted so far
        self._port = port
        self._queue: list[Scripted] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: dict[socket.socket, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Relay:
        """Bind and serve in a background thread. A restarted relay keeps its port."""
        if self._server is not None:
            raise RuntimeError("relay already started")
        self._stopping.clear()
        self._server = _Server((self.host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"relay-{self.host}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly, even with responses stalled mid-body or idle keep-alive clients."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes every scripted sleep
        server.shutdown()  # ends serve_forever: no new connections
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:  # unblocks handlers reading or writing
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("relay not started")
        return self._port

    @property
    def base(self) -> str:
        """``http://HOST:PORT``; still valid after stop(), e.g. for connection-refused tests."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL: ``base + "/v1"``."""
        return self.base + "/v1"

    # -- scripting and inspection -------------------------------------------------

    def enqueue(self, *responses: Scripted) -> None:
        """Queue responses, first in first out."""
        for response in responses:
            response.validate()
        with self._lock:
            self._queue.extend(responses)

    def clear(self) -> None:
        """Drop queued responses and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def pending(self) -> list[Scripted]:
        """Queued responses not served yet."""
        with self._lock:
            return list(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded POSTs to the chat completions path."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.route in CHAT_PATHS]

    def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` passes; return its last value."""
        return wait_until(condition, timeout)

    # -- called from server threads ---------------------------------------------------

    def _accepted(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._sockets[sock] = self.connections

    def _released(self, sock: Any) -> None:
        with self._lock:
            self._sockets.pop(sock, None)

    def _connection_id(self, sock: socket.socket) -> int:
        with self._lock:
            return self._sockets.get(sock, 0)

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _take(self, method: str, route: str, model: Any = None) -> Scripted | None:
        with self._lock:
            for i, scripted in enumerate(self._queue):
                if scripted.path is None:
                    matches = method == "POST" and route in CHAT_PATHS
                else:
                    matches = urlsplit(scripted.path).path == route
                if scripted.model is not None and scripted.model != model:
                    matches = False
                if matches:
                    return self._queue.pop(i)
        return None


# ---------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the test relay's default OpenAI-compatible answers.")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose (default)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed events")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)

    serve_until_ctrl_c(Relay(args.host, port=args.port, delay=args.delay, verbose=not args.quiet).start())


class Served(Protocol):
    """A started server of these tests (:class:`Relay`, ``tests.pacedrelay.PacedRelay``)."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def serve_until_ctrl_c(server: Served) -> None:
    """Print the server's URL (the first line: harnesses read the port from it), serve until Ctrl-C, stop."""
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
