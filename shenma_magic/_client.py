"""The HTTP side: POST a chat request with ``requests`` and feed the body to the pure decoders.

This is the only module that imports ``requests``; it is imported lazily so ``%load_ext`` stays light.

What holds for every request, whatever the server does:

* the host connected to is the host the key was scoped to (one strict parse, :func:`parse_base_url`; the
  URL handed to ``requests`` is rebuilt from it), and a key goes over plain HTTP only to this machine;
* no request body carries a key the client knows (the active key and ``known_keys``): such a request is
  refused with :class:`KeyInRequestError` and nothing is sent;
* every piece of server text (answer, reasoning, tool calls, model name, usage, notices, errors, request
  ids, model lists) passes one redactor before it is yielded or raised: no run of 10 characters of a known
  key gets through, even split across deltas;
* the key is never in plain text in a frame local or a ``repr`` of this package: the ``Authorization``
  header is set at send time by :class:`_BearerAuth` and its value masks itself in every ``repr``;
* one reply reads at most ``max_reply_bytes`` decoded bytes (gzip/deflate counted decompressed, a
  decompression bomb stops at the limit) and takes at most ``max_time`` seconds in all, keep-alive
  comments and trickles included; both end with one clear error after the partial answer was yielded.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Optional, Union

import requests
import requests.auth
import urllib3.exceptions

from ._chunks import ChunkDecoder, deltas_from_completion
from ._defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
from ._errors import (
    APIStatusError,
    APITimeoutError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    InsecureTransportError,
    KeyInRequestError,
    LimitExceededError,
    ProtocolError,
    ShenmaError,
    StreamError,
    error_from_response,
    is_no_channel,
    is_quota,
    parse_retry_after,
    reply_head_error,
)
from ._models import (
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
from ._secret import (
    KeyMatcher,
    KnownKey,
    Secret,
    StreamRedactor,
    header_problem,
    is_loopback_host,
    mask,
    mask_keys,
)
from ._sse import SSEDecoder
from ._urls import BaseURL, parse_base_url

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_MAX_TIME",
    "ChatClient",
    "ChatStream",
    "check_transport",
    "normalize_base_url",
]


Message = dict[str, Any]
Timeout = Union[float, tuple[float, float]]

#: The most decoded bytes one reply may bring (answer, events and framing; compressed bodies counted
#: decompressed).
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024
#: The longest one reply may take in all, from sending to its end, in seconds.
DEFAULT_MAX_TIME = 600.0

# NamedTuple's Python-level __new__ costs more than the rest of the per-delta path.
_new_tuple = tuple.__new__
# socket.timeout is the builtin TimeoutError.
_SocketTimeout = builtins.TimeoutError
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ERROR_BODY_LIMIT = 64 * 1024
_READ_SIZE = 64 * 1024
_VERSION = "0.1.0"
# Only encodings we decode ourselves, with a bound on each step's output.
_ACCEPT_ENCODING = "gzip, deflate"
# Response headers that carry a request id, most specific first; cf-ray only names a Cloudflare hop.
_REQUEST_ID_HEADERS = (
    "x-request-id",
    "x-litellm-call-id",
    "x-oneapi-request-id",
    "x-new-api-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "apim-request-id",
    "x-ms-request-id",
    "x-trace-id",
    "x-correlation-id",
    "cf-ray",
)
# An empty 200 to a request this large most likely overflowed the model's context (llama.cpp does that).
_LARGE_REQUEST_CHARS = 8000
_LARGE_REQUEST_MESSAGES = 20


def normalize_base_url(url: str) -> str:
    """``https://api.whatai.cc``, ``.../v1``, ``.../v1/`` and ``.../v1/chat/completions`` are one base.

    A bare host gets ``https://``; a URL with no path gets ``/v1``. Raises ``ConfigError`` for a URL that
    :func:`~shenma_magic._urls.parse_base_url` refuses.
    """
    return parse_base_url(url).url


def check_transport(base_url: Union[str, BaseURL], has_key: bool) -> None:
    """Refuse to send a key over plain HTTP anywhere but this machine."""
    parsed = base_url if isinstance(base_url, BaseURL) else parse_base_url(base_url)
    if has_key and parsed.scheme == "http" and not is_loopback_host(parsed.host):
        raise InsecureTransportError(
            f"refusing to send the API key over plain http:// to {parsed.host}",
            "use https:// (only 127.0.0.1, ::1 and localhost may use http); nothing was sent",
        )


def _positive_seconds(value: Any, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of seconds, not {value!r}", "") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what} must be a positive, finite number of seconds, not {value!r}", "")
    return seconds


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- the key on the wire ---------------------------------------------------------------------------------


class _MaskedHeader(str):
    """A header value that is the real ``Bearer`` token on the wire and its mask in every ``repr``: a
    verbose traceback through requests or urllib3 shows headers by their repr."""

    _shown: str

    def __new__(cls, value: str, shown: str) -> _MaskedHeader:
        self = super().__new__(cls, value)
        self._shown = shown
        return self

    def __repr__(self) -> str:
        return repr(self._shown)


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer <key>`` when requests prepares the request, so the header string never
    sits in a local variable of this package. Redirects to another host drop it (requests' rebuild_auth)."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = _MaskedHeader(
            f"Bearer {self._key.reveal()}", f"Bearer {self._key}"
        )
        return request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._key!r})"


class _Body:
    """A serialized request body, with a repr that does not spill the conversation into a traceback."""

    __slots__ = ("chars", "data", "messages")

    def __init__(self, data: bytes, chars: int, messages: int) -> None:
        self.data = data
        self.chars = chars
        self.messages = messages

    def __repr__(self) -> str:
        return f"<request body: {len(self.data)} bytes, {self.messages} messages>"


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def _encode(body: dict[str, Any]) -> bytes:
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a broken earlier answer) cannot be UTF-8; as a JSON escape it is valid JSON
        # that servers read as U+FFFD, and the request still goes out.
        return json.dumps(body, ensure_ascii=True).encode("ascii")


# -- reading a body, bounded -----------------------------------------------------------------------------


class _ReplyTooLarge(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


class _Stopped(Exception):
    pass


class _Inflater:
    """gzip / deflate decoding whose every step returns at most ``_READ_SIZE`` bytes, so a few kilobytes
    that inflate to gigabytes are read, counted and stopped a slice at a time."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._members = 0
        self._raw_fallback = not self._gzip
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._obj.decompress(data, _READ_SIZE)
            except zlib.error:
                if self._members:
                    return  # bytes after a whole member that are not another one: ignored, as urllib3 does
                if not self._raw_fallback:
                    raise ProtocolError(
                        "the server's compressed answer does not decompress", "try again"
                    ) from None
                # Some servers send raw deflate without the zlib header.
                self._raw_fallback = False
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._raw_fallback = False
            if out:
                yield out
            data = self._obj.unconsumed_tail
            if self._obj.eof:
                self._members += 1
                rest = self._obj.unused_data
                if not (self._gzip and rest):
                    return
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a gzip body may hold several members
                data = rest


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    raw = response.raw
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if hasattr(sock, "settimeout") else None


class _Watchdog:
    """Shuts the connection's socket when the deadline passes, so a reply ends on time even when a hostile
    server keeps each read alive byte by byte: response headers that never end, or a chunk-size line that
    never ends, where no socket timeout helps.

    The socket is attached as soon as it is known: by the connection classes of the client's own session
    when they start reading the response headers (see :class:`_WatchedAdapter`), and from the response
    when the body is read.
    """

    def __init__(self, deadline: float) -> None:
        self.fired = False  # the deadline passed
        self.aborted = False  # ChatClient.abort() ended it
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            late = self.fired or self.aborted
        if late:
            self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sock = self._sock
        if sock is not None:
            self._shut(sock)

    def abort(self) -> None:
        """End the reply now, from any thread (whatever phase it is in)."""
        with self._lock:
            self.aborted = True
            sock = self._sock
        if sock is not None:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None

    def __enter__(self) -> _Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


# The watchdog of the request this thread is sending, for the connection classes below to attach to.
_inflight = threading.local()


class _WatchedConnection:
    """Mixed into urllib3's connection classes: the socket is handed to this thread's watchdog just before
    the response headers are read (new and reused connections alike)."""

    sock: Any

    def getresponse(self) -> Any:
        watchdog = getattr(_inflight, "watchdog", None)
        if watchdog is not None:
            watchdog.attach(self.sock)
        return super().getresponse()  # type: ignore[misc]


def _watched_adapter() -> requests.adapters.HTTPAdapter:
    import urllib3.connection
    import urllib3.connectionpool

    class HTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
        pass

    class HTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
        pass

    class HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = HTTPConnection

    class HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = HTTPSConnection

    class _WatchedAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    return _WatchedAdapter()


class _BodyReader:
    """The decoded body of one response as it arrives, within a byte budget and a deadline."""

    def __init__(
        self,
        response: requests.Response,
        *,
        limit: int,
        deadline: float,
        read_timeout: float,
        watchdog: _Watchdog,
    ) -> None:
        self.response = response
        self.limit = limit
        self.deadline = deadline
        self.read_timeout = read_timeout
        self.total = 0
        self.watchdog = watchdog
        watchdog.attach(_socket_of(response))

    def __iter__(self) -> Iterator[bytes]:
        for data in self._decoded():
            self.total += len(data)
            if self.total > self.limit:
                raise _ReplyTooLarge
            yield data

    def _decoded(self) -> Iterator[bytes]:
        raw = self.response.raw
        read1 = getattr(raw, "read1", None)
        if read1 is None:  # urllib3 1.x: no incremental raw reads; its decoder's output is capped per chunk
            for data in self.response.iter_content(chunk_size=None):
                self._check_time()
                yield data
            return
        encoding = (self.response.headers.get("content-encoding") or "").strip().lower()
        inflater = _Inflater(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None
        # Anything else (identity, or an encoding we did not ask for) is left to urllib3, which bounds
        # each step's output from version 2.6 on.
        decode_by_urllib3 = inflater is None and encoding not in ("", "identity")
        sock = _socket_of(self.response)
        lowered = False
        while True:
            left = self._check_time()
            if sock is not None and (lowered or left < self.read_timeout):
                # A silence may not outlast the deadline: the socket's timeout is what is left of it.
                lowered = True
                try:
                    sock.settimeout(min(self.read_timeout, max(left, 0.001)))
                except OSError:
                    sock = None
            try:
                data = read1(_READ_SIZE, decode_content=decode_by_urllib3)
            except BaseException:
                self._check_time()
                raise
            if not data:
                self._check_time()
                return
            if inflater is None:
                yield data
            else:
                yield from inflater.feed(data)

    def _check_time(self) -> float:
        left = self.deadline - time.monotonic()
        if self.watchdog.aborted:
            raise _Stopped
        if left <= 0 or self.watchdog.fired:
            raise _DeadlinePassed
        return left


def _drain_quickly(response: requests.Response) -> None:
    """After [DONE], read what is left of the body if it is already here, so the connection can be reused.

    A server may keep the connection open after [DONE]; we wait at most 50 ms for the end of the body
    rather than hold the user's reply hostage.
    """
    raw = response.raw
    sock = _socket_of(response)
    if sock is None or not hasattr(raw, "read1"):
        return
    try:
        old = sock.gettimeout()
        sock.settimeout(0.05)
        try:
            for _ in range(16):
                if not raw.read1(_READ_SIZE, decode_content=False):
                    return
        finally:
            if not raw.closed:
                sock.settimeout(old)
    except Exception:  # anything at all: the connection is simply not reused
        return


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, (_SocketTimeout, urllib3.exceptions.ReadTimeoutError, requests.exceptions.Timeout)
        ):
            return True
        if "timed out" in str(current).lower():
            return True
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    return False


def _connect_error(exc: BaseException, host: str) -> ShenmaError:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectError(
            f"TLS/SSL failed talking to {host}",
            "check the base URL; behind a company proxy set REQUESTS_CA_BUNDLE to its CA file",
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return ConnectError(f"the proxy refused the connection to {host}", "check HTTPS_PROXY / HTTP_PROXY")
    if any(
        s in low
        for s in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo failed",
            "nameresolutionerror",
            "failed to resolve",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return ConnectError(f"cannot resolve host {host} (DNS)", "check the base URL and your network")
    if "refused" in low:
        return ConnectError(f"connection refused by {host}", "is the server running, and is the port right?")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        err = APITimeoutError(
            f"connecting to {host} timed out", "check your network or proxy, then try again"
        )
        err.phase = "connect"  # type: ignore[attr-defined]
        return err
    return ConnectError(f"cannot connect to {host}", "check the base URL and your network")


# Longer than this is no plan to retry: shown as no wait at all rather than "retry after 251606131195 s".
_LONGEST_RETRY_AFTER = 86_400.0


def _sane_retry_after(seconds: Optional[float]) -> Optional[float]:
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= _LONGEST_RETRY_AFTER:
        return None
    return seconds


def _worth_a_retry(failure: APIStatusError) -> bool:
    # A helper, so that the server's words (which may hold a key) sit in no local of the frame that raises.
    text = f"{failure.server_message} {failure.code or ''}"
    return failure.status_code in _RETRY_STATUSES and not is_no_channel(text) and not is_quota(text)


def _request_id_from(headers: Any) -> Optional[str]:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name) if headers is not None else None
        if isinstance(value, str) and value.strip():
            return _one_line(value)[:200]
    return None


# -- the redactor every piece of server text passes ------------------------------------------------------


class _ReplyRedactor:
    """One :class:`StreamRedactor` per streamed field (answer, reasoning, each tool call's name and
    arguments); whole values (model, ids, usage, notices) are masked as they are."""

    def __init__(self, matcher: KeyMatcher) -> None:
        self.matcher = matcher
        self._active = bool(matcher)
        self.text = StreamRedactor(matcher)
        self.reasoning = StreamRedactor(matcher)
        self.tools: dict[int, tuple[StreamRedactor, StreamRedactor]] = {}

    def whole(self, text: str) -> str:
        return mask_keys(self.matcher.mask(text)) if self.matcher else mask_keys(text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.whole(value)
        if isinstance(value, dict):
            return {self._value(k) if isinstance(k, str) else k: self._value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v) for v in value]
        return value

    def feed(self, delta: Delta) -> Sequence[Delta]:
        if type(delta) is TextDelta:  # nearly every delta: the fast path first
            if not self._active:
                return (delta,)
            if self.reasoning.pending:
                # The reasoning before this answer text comes out before it (what it held back is let go,
                # masked): a view that writes in order must not show it after the answer.
                return [*self._let_go(self.reasoning, ReasoningDelta), *self.feed(delta)]
            text = self.text.feed(delta.text)
            if text is delta.text:
                return (delta,)
            return (_new_tuple(TextDelta, (text,)),) if text else ()
        if not self._active and isinstance(delta, (ReasoningDelta, ToolCallDelta)):
            return (delta,)
        if isinstance(delta, ReasoningDelta):
            before = self._let_go(self.text, TextDelta) if self.text.pending else []
            text = self.reasoning.feed(delta.text)
            return [*before, ReasoningDelta(text)] if text else before
        if isinstance(delta, ToolCallDelta):
            name_r, args_r = self.tools.setdefault(
                delta.call_index, (StreamRedactor(self.matcher), StreamRedactor(self.matcher))
            )
            name = name_r.feed(delta.name) if delta.name else None
            return [
                ToolCallDelta(
                    delta.call_index,
                    self.whole(delta.id) if delta.id else delta.id,
                    name or None,
                    args_r.feed(delta.arguments),
                )
            ]
        # Values shown on one line (the status line, notices) are also put on one line.
        if isinstance(delta, FinishDelta):
            # Flushing early never shows a run: what was held is masked as it is let go.
            return [*self.flush(), FinishDelta(_one_line(self.whole(delta.reason)))]
        if isinstance(delta, MetaDelta):
            return [MetaDelta(_one_line(self.whole(delta.model)), _one_line(self.whole(delta.id)))]
        if isinstance(delta, UsageDelta):
            return [UsageDelta(self._value(delta.usage))]
        if isinstance(delta, NoticeDelta):
            return [NoticeDelta(_one_line(self.whole(delta.message)), delta.lossy)]
        return [delta]  # pragma: no cover - every delta type is handled above

    @staticmethod
    def _let_go(redactor: StreamRedactor, kind: type[TextDelta] | type[ReasoningDelta]) -> list[Delta]:
        text = redactor.flush()
        return [kind(text)] if text else []

    def flush(self) -> list[Delta]:
        # Only the field fed last can still hold text (feeding one field lets the other go).
        out: list[Delta] = [
            *self._let_go(self.text, TextDelta),
            *self._let_go(self.reasoning, ReasoningDelta),
        ]
        for index, (name_r, args_r) in self.tools.items():
            name, arguments = name_r.flush(), args_r.flush()
            if name or arguments:
                out.append(ToolCallDelta(index, None, name or None, arguments))
        return out


# -- the stream object -----------------------------------------------------------------------------------


class ChatStream(Iterator[Delta]):
    """The deltas of one reply, as they arrive: an iterator, and a context manager that closes the HTTP
    response when the block is left::

        with client.stream(messages, model="gpt-4o-mini") as events:
            for delta in events:
                ...

    The request is sent when the first delta is asked for. Used as a plain iterator, the connection is held
    until the stream is exhausted, :meth:`close` is called, or the object is garbage-collected.
    """

    __slots__ = ("_gen",)

    def __init__(self, gen: Iterator[Delta]) -> None:
        self._gen = gen

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> Delta:
        return next(self._gen)

    def close(self) -> None:
        """Stop reading and close the HTTP response (a no-op once the stream has ended)."""
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<ChatStream>"


# -- the client ------------------------------------------------------------------------------------------


class ChatClient:
    """A streaming chat client for any OpenAI-compatible server.

    >>> client = ChatClient("https://api.whatai.cc/v1", api_key="sk-...")
    >>> with client.stream([{"role": "user", "content": "你好"}], model="gpt-4o-mini") as events:
    ...     for delta in events:
    ...         print(getattr(delta, "text", ""), end="")

    One ``requests.Session`` is kept, so consecutive requests reuse the connection.

    Args:
        base_url: the API base (``https://api.whatai.cc/v1``); parsed strictly, see
            :func:`~shenma_magic._urls.parse_base_url`.
        api_key: the key for that host (a ``str`` or a ``Secret``); refused if an HTTP header cannot
            carry it.
        timeout: the longest silence allowed while waiting for or reading a reply (seconds).
        connect_timeout: the longest a connection may take to open (seconds).
        max_retries: retries of a request that failed before any byte of the reply (429/502/503/504,
            refused or timed-out connections).
        max_retry_wait: the longest wait before a retry; a server asking for more is not retried.
        max_time: the longest one reply may take in all, from sending to its end, retries included
            (seconds; keep-alive comments and trickling bytes do not extend it).
        max_reply_bytes: the most decoded bytes one reply may bring.
        known_keys: returns every key the caller knows (``str``, ``Secret`` or ``(key, source)`` pairs,
            e.g. ``KeyStore.key_sources``); none may appear in a request body, and all are masked in what
            the server sends back. The active key is always included.
        session: a ``requests.Session`` to use instead of a new one. The client's own session also lets
            ``max_time`` cut a server that trickles its response headers; with one passed in, that phase
            is bounded by the (lowered) read timeout only.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: Union[str, Secret, None] = None,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        max_time: float = DEFAULT_MAX_TIME,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        known_keys: Optional[Callable[[], Iterable[KnownKey]]] = None,
        session: Optional[requests.Session] = None,
    ) -> None:
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key or "")
        del api_key  # only the masked wrapper stays in this frame
        if self._key.reveal() != self._key.reveal().strip():
            self._key = Secret(self._key.reveal().strip())
        self._base = parse_base_url(base_url)
        self.base_url = self._base.url
        self.host = self._base.host
        check_transport(self._base, bool(self._key))
        problem = header_problem(self._key.reveal())
        if problem:
            raise ConfigError(
                f"the API key holds {problem}, which an HTTP header cannot carry",
                "copy the key again (only visible ASCII, no spaces); nothing was sent",
            )
        self._auth: Optional[_BearerAuth] = _BearerAuth(self._key) if self._key else None
        self.timeout = _positive_seconds(timeout, "the timeout")
        self.connect_timeout = _positive_seconds(connect_timeout, "the connect timeout")
        self.max_time = _positive_seconds(max_time, "the max time")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ConfigError(f"max_retries must be a whole number >= 0, not {max_retries!r}", "")
        self.max_retries = max_retries
        self.max_retry_wait = float(max_retry_wait)
        if not isinstance(max_reply_bytes, int) or max_reply_bytes <= 0:
            raise ConfigError(f"max_reply_bytes must be a positive whole number, not {max_reply_bytes!r}", "")
        self.max_reply_bytes = max_reply_bytes
        self.known_keys = known_keys
        self._session = session
        self._aborted = threading.Event()
        self._live: set[_Watchdog] = set()  # one per reply in flight; abort() fires them all
        self._live_lock = threading.Lock()
        # Injected by tests to avoid real sleeping; the default honours Ctrl-C like any sleep and ends
        # early on abort().
        self._sleep: Callable[[float], object] = self._aborted.wait

    def __repr__(self) -> str:
        shown = mask(self._key.reveal()) if self._key else None
        return f"ChatClient(base_url={self.base_url!r}, api_key={shown!r})"

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            # Our own connection classes let the max-time watchdog reach the socket while the response
            # headers are read; a session passed in keeps its adapters (and only the read timeouts).
            adapter = _watched_adapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def abort(self) -> None:
        """Stop this client for good, from any thread: replies in flight end at once (their connections are
        shut down, so a read waiting on a silent server returns, also while the response headers are
        awaited), a retry wait is cut short, and no new request is sent. For a reply streaming on another
        thread (a background turn)."""
        self._aborted.set()
        with self._live_lock:
            live = list(self._live)
        for watchdog in live:
            watchdog.abort()

    @contextlib.contextmanager
    def _guard(self, deadline: float) -> Iterator[_Watchdog]:
        """The watchdog of one reply, known to abort() while the reply is in flight."""
        with _Watchdog(deadline) as watchdog:
            with self._live_lock:
                self._live.add(watchdog)
            if self._aborted.is_set():
                watchdog.abort()
            try:
                yield watchdog
            finally:
                with self._live_lock:
                    self._live.discard(watchdog)

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys --------------------------------------------------------------------------------------------

    def _matcher(self) -> KeyMatcher:
        """The keys to refuse in bodies and mask in replies: the active key and ``known_keys()``, each also
        in its JSON-escaped form (what it looks like inside a serialized body)."""
        items: list[KnownKey] = []
        if self._key:
            items.append((self._key, "the key in use"))
        if self.known_keys is not None:
            # A broken key file must not stop the check of the keys we do know.
            with contextlib.suppress(ShenmaError):
                items.extend(self.known_keys())
        escaped: list[KnownKey] = []
        for item in items:
            value, source = item if isinstance(item, tuple) else (item, "")
            raw = value.reveal() if isinstance(value, Secret) else value
            if raw:
                quoted = json.dumps(raw, ensure_ascii=False)[1:-1]
                if quoted != raw:
                    escaped.append((Secret(quoted), source))
        return KeyMatcher([*items, *escaped])

    def _refuse_keys(self, body: _Body, matcher: KeyMatcher) -> Optional[KeyInRequestError]:
        runs = matcher.runs(body.data.decode("utf-8", "replace"))
        if not runs:
            return None
        index = runs[0][2]
        source = matcher.source(index)
        said = f"{matcher.label(index)}, {source}" if source else matcher.label(index)
        return KeyInRequestError(
            f"the message holds an API key ({said}): nothing was sent",
            "remove it from the cell, or from the variables filled into it",
        )

    def _clean(self, err: ShenmaError, matcher: KeyMatcher, headers: Any = None) -> ShenmaError:
        """Mask keys in every text of an error, put it on one line, and name the server's request id."""

        def clean(text: str) -> str:
            return _one_line(mask_keys(matcher.mask(text)) if matcher else mask_keys(text))

        if isinstance(err, (APIStatusError, StreamError)) and not err.request_id:
            err.request_id = _request_id_from(headers)
        err.message = clean(err.message)
        err.hint = clean(err.hint)
        for name in ("server_message", "request_id", "code", "type"):
            value = getattr(err, name, None)
            if isinstance(value, str):
                setattr(err, name, clean(value))
        rid = getattr(err, "request_id", None)
        if isinstance(rid, str) and rid and rid not in err.message:
            err.message = f"{err.message} (request id: {rid})"
        err.args = (err.message,)
        return err

    # -- requests ----------------------------------------------------------------------------------------

    def _headers(self, accept: str) -> dict[str, str]:
        """The request headers; ``Authorization`` is added at send time by the auth object, not here."""
        return {
            "Accept": accept,
            "Accept-Encoding": _ACCEPT_ENCODING,
            "User-Agent": f"shenma-magic/{_VERSION}",
        }

    def _max_time_error(self, max_time: float, *, headers: bool = True) -> APITimeoutError:
        """``headers``: the reply had started (there may be a partial answer); else not even its
        headers had come whole (a silent server, or one trickling endless headers)."""
        err = (
            APITimeoutError(
                f"the reply from {self.host} took longer than {max_time:g} s in all (the max time)",
                "the partial answer is kept; raise the max time, or ask for a shorter answer",
            )
            if headers
            else APITimeoutError(
                f"{self.host} sent no complete reply headers within {max_time:g} s (the max time)",
                "no reply was read: try again, or raise the max time; if it repeats, check the base URL",
            )
        )
        err.phase = "max_time"  # type: ignore[attr-defined]
        err.max_time = max_time  # type: ignore[attr-defined]
        return err

    def _send(
        self,
        method: str,
        path: str,
        body: Optional[_Body],
        read_timeout: float,
        accept: str,
        *,
        deadline: float,
        max_time: float,
        watchdog: _Watchdog,
        on_retry: Callable[[str], None] = lambda line: None,
    ) -> requests.Response:
        """Send with bounded retries before any byte of the reply; returns the response (status < 400).

        Each retry is announced through ``on_retry`` with one short line ("HTTP 429 from host: retrying in
        2.0 s (1/2)") before its wait. Errors are raised unmasked: the caller cleans them.
        """
        url = self.base_url + path
        host = self.host
        headers = self._headers(accept)
        if body is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._max_time_error(max_time)
            wait_for = min(read_timeout, left)
            failure: ShenmaError
            wait: Optional[float] = None
            if self._aborted.is_set():
                raise ConnectError(f"the request to {host} was stopped before it was sent")
            _inflight.watchdog = watchdog
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body.data if body is not None else None,
                    headers=headers,
                    auth=self._auth,
                    stream=True,
                    timeout=(min(self.connect_timeout, wait_for), wait_for),
                )
            except requests.exceptions.RequestException as exc:
                if watchdog.aborted:
                    raise ConnectError(
                        f"the request to {host} was stopped before the reply started"
                    ) from None
                if watchdog.fired or time.monotonic() >= deadline - 0.01:
                    raise self._max_time_error(max_time, headers=False) from None
                failure = self._request_failure(exc, wait_for)  # raises what is not worth a retry
            else:
                if watchdog.fired:
                    # The deadline shut the socket while headers were still coming: http.client took what
                    # had come for a reply without a body.
                    response.close()
                    raise self._max_time_error(max_time, headers=False)
                if response.status_code < 400:
                    return response
                failure = self._status_error(response)
                if not _worth_a_retry(failure):
                    raise failure from None
                wait = failure.retry_after
            finally:
                _inflight.watchdog = None
            if attempt >= self.max_retries:
                raise failure from None
            if wait is None:
                wait = 0.5 * (2**attempt)
            if wait > self.max_retry_wait or time.monotonic() + wait >= deadline:
                raise failure from None
            attempt += 1
            what = (
                f"HTTP {failure.status_code} from {host}"
                if isinstance(failure, APIStatusError)
                else failure.message
            )
            on_retry(f"{what}: retrying in {wait:.1f} s ({attempt}/{self.max_retries})")
            self._sleep(wait)

    def _request_failure(self, exc: requests.exceptions.RequestException, wait_for: float) -> ShenmaError:
        """The error for a request that got no response: returned if a retry may help, else raised."""
        host = self.host
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return _connect_error(exc, host)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            err = APITimeoutError(
                f"{host} sent no reply within {wait_for:g} s",
                "the model may be overloaded: try again, or raise the timeout",
            )
            err.phase = "first_byte"  # type: ignore[attr-defined]
            raise err from None  # the server may still be working on it: do not pile on
        if isinstance(exc, requests.exceptions.SSLError):
            raise _connect_error(exc, host) from None
        head = reply_head_error(exc, host)  # reached, but its status line or headers could not be read
        if head is not None:
            if isinstance(head, ConnectError):
                return head  # it hung up before answering: a retry may find it answering
            raise head from None
        if isinstance(exc, requests.exceptions.ConnectionError):
            return _connect_error(exc, host)
        raise ConnectError(f"request to {host} failed: {type(exc).__name__}") from None

    def _status_error(self, response: requests.Response) -> APIStatusError:
        parts: list[bytes] = []
        try:
            with _Watchdog(time.monotonic() + 10.0) as watchdog:
                reader = _BodyReader(
                    response,
                    limit=_ERROR_BODY_LIMIT,
                    deadline=time.monotonic() + 10.0,
                    read_timeout=10.0,
                    watchdog=watchdog,
                )
                for data in reader:
                    parts.append(data)
        except Exception:  # a broken, huge or slow error body still deserves the status line
            pass
        finally:
            response.close()
        err = error_from_response(
            response.status_code,
            b"".join(parts)[:_ERROR_BODY_LIMIT],
            reason=response.reason or "",
            request_id=None,
            retry_after=_sane_retry_after(parse_retry_after(response.headers.get("retry-after"))),
        )
        if not err.request_id:
            err.request_id = _request_id_from(response.headers)
        return err

    # -- public API -------------------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str = DEFAULT_MODEL,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        timeout: Optional[float] = None,
        max_time: Optional[float] = None,
        extra: Optional[dict[str, Any]] = None,
        on_retry: Optional[Callable[[str], None]] = None,
    ) -> ChatStream:
        """Stream a chat completion: a :class:`ChatStream` of typed deltas as they arrive.

        The request is sent when the first delta is asked for. Raises a :class:`~shenma_magic.ShenmaError`
        subclass while iterating on failure; the deltas yielded before it are the partial answer.
        ``timeout`` is the longest silence allowed and ``max_time`` the longest the whole reply may take
        (seconds; the client's settings by default). Retries before the reply starts are yielded as
        :class:`NoticeDelta` lines and also passed to ``on_retry`` as they happen (to show "retrying in 2 s"
        while waiting). Use ``with client.stream(...) as events:`` to close the response when leaving the
        block; a stream used as a plain iterator holds its connection until exhausted or closed.
        """
        read_timeout = self.timeout if timeout is None else _positive_seconds(timeout, "the timeout")
        total = self.max_time if max_time is None else _positive_seconds(max_time, "the max time")
        payload: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if extra:
            payload.update(extra)
        body = _Body(
            _encode(payload),
            sum(_text_chars(m.get("content")) for m in messages if isinstance(m, dict)),
            len(messages),
        )
        return ChatStream(self._stream(body, read_timeout, total, on_retry))

    def _stream(
        self, body: _Body, read_timeout: float, max_time: float, on_retry: Optional[Callable[[str], None]]
    ) -> Iterator[Delta]:
        deadline = time.monotonic() + max_time
        matcher = self._matcher()
        refused = self._refuse_keys(body, matcher)
        if refused is not None:
            raise refused
        redactor = _ReplyRedactor(matcher)
        notices: list[str] = []

        def retry(line: str) -> None:
            line = redactor.whole(line)
            notices.append(line)
            if on_retry is not None:
                on_retry(line)

        # One watchdog for the whole reply, cancelled when it ends (a late one would cut a reused connection).
        with self._guard(deadline) as watchdog:
            try:
                response = self._send(
                    "POST",
                    "/chat/completions",
                    body,
                    read_timeout,
                    "text/event-stream",
                    deadline=deadline,
                    max_time=max_time,
                    watchdog=watchdog,
                    on_retry=retry,
                )
            except ShenmaError as exc:
                for line in notices:
                    yield NoticeDelta(line)
                raise self._clean(exc, matcher) from None
            for line in notices:
                yield NoticeDelta(line)
            reader = _BodyReader(
                response,
                limit=self.max_reply_bytes,
                deadline=deadline,
                read_timeout=read_timeout,
                watchdog=watchdog,
            )
            try:
                try:
                    for delta in self._decode_reply(response, reader, body, read_timeout, deadline, max_time):
                        yield from redactor.feed(delta)
                except ShenmaError as exc:
                    yield from redactor.flush()
                    raise self._clean(exc, matcher, response.headers) from None
                except KeyboardInterrupt:
                    yield from redactor.flush()  # the partial answer stays whole; the interrupt goes on
                    raise
                yield from redactor.flush()
            finally:
                watchdog.cancel()
                response.close()

    def _decode_reply(
        self,
        response: requests.Response,
        reader: _BodyReader,
        body: _Body,
        read_timeout: float,
        deadline: float,
        max_time: float,
    ) -> Iterator[Delta]:
        host = self.host
        chunks = iter(reader)
        sse = SSEDecoder()
        decoder = ChunkDecoder()
        first = True
        try:
            for raw in chunks:
                if first:
                    first = False
                    head = raw.lstrip()[:1]
                    if head == b"{":
                        # No SSE stream starts with "{": the server ignored "stream" and sent one JSON
                        # completion (or an error object), whatever its Content-Type says.
                        yield from self._whole_json(raw, chunks)
                        return
                    if head == b"<":
                        raise ProtocolError(
                            f"{host} answered an HTML page instead of a chat stream",
                            "check the base URL (it should be the API address, ending in /v1)",
                        )
                for event in sse.feed(raw):
                    yield from decoder.decode(event)
                    if decoder.done:
                        _drain_quickly(response)
                        break
                if decoder.done:
                    break
        except _ReplyTooLarge:
            raise LimitExceededError(
                f"the reply from {host} passed the {_size(self.max_reply_bytes)} limit: reading stopped",
                "the partial answer is kept",
            ) from None
        except _DeadlinePassed:
            raise self._max_time_error(max_time) from None
        except _Stopped:
            raise ConnectionLostError(
                f"the reply from {host} was stopped", "the partial answer is kept"
            ) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # Whatever the layer that noticed it, a read that fails mid-reply is a timeout or a lost
            # connection; stream() masks the key in the message.
            if reader.watchdog.aborted:
                raise ConnectionLostError(
                    f"the reply from {host} was stopped", "the partial answer is kept"
                ) from None
            if reader.watchdog.fired or time.monotonic() >= deadline - 0.01:
                raise self._max_time_error(max_time) from None
            if _is_timeout(exc):
                err = APITimeoutError(
                    f"{host} went silent for more than {read_timeout:g} s",
                    "the partial answer is kept; try again, or raise the timeout",
                )
                err.phase = "read"  # type: ignore[attr-defined]
                raise err from None
            raise ConnectionLostError(
                f"the connection to {host} broke mid-reply", "the partial answer is kept; try again"
            ) from None
        if first:
            large = body.chars > _LARGE_REQUEST_CHARS or body.messages > _LARGE_REQUEST_MESSAGES
            hint = (
                f"the request is large ({body.chars} characters in {body.messages} messages) and may exceed "
                "the model's context: a new conversation or a shorter prompt helps"
                if large
                else "try again; if it repeats, try another model"
            )
            empty = ProtocolError(f"{host} answered with an empty body", hint)
            empty.request_chars = body.chars  # type: ignore[attr-defined]
            empty.message_count = body.messages  # type: ignore[attr-defined]
            raise empty
        if decoder.finish_reason is None:
            why = "after [DONE]" if decoder.done else "before [DONE]"
            yield NoticeDelta(f"the stream ended {why} without a finish reason: the answer may be cut off")

    def _whole_json(self, first: bytes, rest: Iterator[bytes]) -> Iterator[Delta]:
        parts = [first]
        parts.extend(rest)  # the reader stops at the reply limit
        text = b"".join(parts).decode("utf-8", "replace")
        del parts
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise ProtocolError("the server answered JSON that does not parse", "try again") from None
        yield from deltas_from_completion(obj)

    def complete(self, messages: Sequence[Message], **options: Any) -> Reply:
        """Stream to the end and return the finished :class:`Reply` (errors are raised, not stored)."""
        builder = ReplyBuilder()
        with self.stream(messages, **options) as events:
            for delta in events:
                builder.add(delta)
        return builder.build()

    def models(self, timeout: Optional[float] = None) -> list[str]:
        """The model ids the server lists at ``GET {base}/models`` (masked like any server text)."""
        read_timeout = 30.0 if timeout is None else _positive_seconds(timeout, "the timeout")
        deadline = time.monotonic() + self.max_time
        matcher = self._matcher()
        response: Optional[requests.Response] = None
        with self._guard(deadline) as watchdog:
            try:
                response = self._send(
                    "GET",
                    "/models",
                    None,
                    read_timeout,
                    "application/json",
                    deadline=deadline,
                    max_time=self.max_time,
                    watchdog=watchdog,
                )
                data = self._read_model_list(response, read_timeout, deadline, watchdog)
                return _model_ids(data, _ReplyRedactor(matcher).whole)
            except ShenmaError as exc:
                raise self._clean(exc, matcher, response.headers if response is not None else None) from None
            finally:
                if response is not None:
                    response.close()

    def _read_model_list(
        self, response: requests.Response, read_timeout: float, deadline: float, watchdog: _Watchdog
    ) -> bytes:
        reader = _BodyReader(
            response,
            limit=self.max_reply_bytes,
            deadline=deadline,
            read_timeout=read_timeout,
            watchdog=watchdog,
        )
        try:
            return b"".join(reader)
        except _ReplyTooLarge:
            raise LimitExceededError(
                f"the model list from {self.host} passed the {_size(self.max_reply_bytes)} limit", ""
            ) from None
        except _DeadlinePassed:
            raise self._max_time_error(self.max_time) from None
        except (_Stopped, requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
            raise ConnectionLostError(
                f"the connection to {self.host} broke while listing models", "try again"
            ) from None


def _model_ids(data: bytes, clean: Callable[[str], str]) -> list[str]:
    try:
        obj = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise ProtocolError("the model list is not JSON", "check the base URL") from None
    items = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise ProtocolError("the server did not send a model list", "check the base URL")
    ids = [str(m.get("id")) if isinstance(m, dict) else str(m) for m in items]
    return sorted({clean(_one_line(i)) for i in ids if i and i != "None"})


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
