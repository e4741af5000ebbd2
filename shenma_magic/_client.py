"""The chat client: POST a chat request and yield the reply as typed deltas, within its limits.

:class:`ChatClient` wires the layers below; each does one job:

* ``_reqbody``: the body, serialized once and refused if it carries a known key (pure);
* ``_http``: ``requests`` itself (the only module here that imports it; this module is imported only
  when a client is first needed, so ``%load_ext`` stays light): the key in the header, the connections,
  what a failure means;
* ``_retry``: whether and after how long a request that failed before any byte is tried again (pure);
* ``_watchdog``: the deadline, kept by shutting the socket (threads);
* ``_bodyread``: the body read within the byte cap and the deadline (I/O);
* ``_replydecode``: bytes → deltas, via ``_sse`` and ``_chunks`` (pure);
* ``_replyredact`` and ``_httperrors``: every text masked, every failure in one line (pure).

What holds for every request, whatever the server does:

* the host connected to is the host the key was scoped to (one strict parse, :func:`parse_base_url`; the
  URL handed to ``requests`` is rebuilt from it), and a key goes over plain HTTP only to this machine;
* no request body carries a key the client knows (the active key and ``known_keys``): such a request is
  refused with :class:`KeyInRequestError` and nothing is sent;
* every piece of server text (answer, reasoning, tool calls, model name, usage, notices, errors, request
  ids, model lists) passes one redactor before it is yielded or raised: no run of 10 characters of a known
  key gets through, even split across deltas;
* the key is never in plain text in a frame local or a ``repr`` of this package: the ``Authorization``
  header is set at send time by :class:`~._http.BearerAuth` and its value masks itself in every ``repr``;
* one reply reads at most ``max_reply_bytes`` decoded bytes (gzip/deflate counted decompressed, a
  decompression bomb stops at the limit) and takes at most ``max_time`` seconds in all, keep-alive
  comments and trickles included; both end with one clear error after the partial answer was yielded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union

from ._bodyread import BodyReader, DeadlinePassed, ReplyTooLarge, Stopped, drain_quickly, read_error_body
from ._defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
from ._errors import (
    APIStatusError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    InsecureTransportError,
    LimitExceededError,
    ShenmaError,
)
from ._http import READ_ERRORS, BearerAuth, RequestError, read_failure, request_failure, watched_session
from ._httperrors import max_time_error, size_text, status_error, stopped_error, too_large_error
from ._models import Delta, NoticeDelta, Reply, ReplyBuilder
from ._replydecode import decode_reply, model_ids
from ._replyredact import ReplyRedactor, clean_error
from ._reqbody import Body, chat_body, key_matcher, key_refusal
from ._retry import retry_line, retry_wait, worth_a_retry
from ._secret import KeyMatcher, KnownKey, Secret, header_problem, is_loopback_host, mask
from ._think import ThinkSplitter
from ._urls import BaseURL, parse_base_url
from ._watchdog import Flights, Watchdog, inflight

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_MAX_TIME",
    "ChatClient",
    "ChatStream",
    "check_transport",
]


Message = dict[str, Any]

#: The most decoded bytes one reply may bring (answer, events and framing; compressed bodies counted
#: decompressed).
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024
#: The longest one reply may take in all, from sending to its end, in seconds.
DEFAULT_MAX_TIME = 600.0

# What ends a model list early but its size and its time.
_BROKEN_LIST: tuple[type[BaseException], ...] = (Stopped, *READ_ERRORS)
_VERSION = "0.1.0"
# Only encodings we decode ourselves, with a bound on each step's output.
_ACCEPT_ENCODING = "gzip, deflate"


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
        self._auth: Optional[BearerAuth] = BearerAuth(self._key) if self._key else None
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
        self._flights = Flights()  # the replies in flight; abort() ends them all
        self._aborted = self._flights.aborted
        # Injected by tests to avoid real sleeping; the default honours Ctrl-C like any sleep and ends
        # early on abort().
        self._sleep: Callable[[float], object] = self._aborted.wait

    def __repr__(self) -> str:
        shown = mask(self._key.reveal()) if self._key else None
        return f"ChatClient(base_url={self.base_url!r}, api_key={shown!r})"

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            # Our own connection classes let the max-time watchdog reach the socket while the response
            # headers are read; a session passed in keeps its adapters (and only the read timeouts).
            self._session = watched_session()
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
        self._flights.abort()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _matcher(self) -> KeyMatcher:
        return key_matcher(self._key, self.known_keys)

    # -- requests ----------------------------------------------------------------------------------------

    def _headers(self, accept: str) -> dict[str, str]:
        """The request headers; ``Authorization`` is added at send time by the auth object, not here."""
        return {
            "Accept": accept,
            "Accept-Encoding": _ACCEPT_ENCODING,
            "User-Agent": f"shenma-magic/{_VERSION}",
        }

    def _send(
        self,
        method: str,
        path: str,
        body: Optional[Body],
        read_timeout: float,
        accept: str,
        *,
        deadline: float,
        max_time: float,
        watchdog: Watchdog,
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
                raise max_time_error(host, max_time)
            wait_for = min(read_timeout, left)
            failure: ShenmaError
            retry_after: Optional[float] = None
            if self._aborted.is_set():
                raise ConnectError(f"the request to {host} was stopped before it was sent")
            inflight.watchdog = watchdog
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
            except RequestError as exc:
                failure, final = request_failure(exc, host, wait_for, watchdog, deadline, max_time)
                if final:
                    raise failure from None
            else:
                if watchdog.fired:
                    # The deadline shut the socket while headers were still coming: http.client took what
                    # had come for a reply without a body.
                    response.close()
                    raise max_time_error(host, max_time, headers=False)
                if response.status_code < 400:
                    return response
                failure = self._status_error(response)
                if not worth_a_retry(failure):
                    raise failure from None
                retry_after = failure.retry_after
            finally:
                inflight.watchdog = None
            wait = retry_wait(
                attempt,
                retry_after=retry_after,
                max_retries=self.max_retries,
                max_retry_wait=self.max_retry_wait,
                time_left=deadline - time.monotonic(),
            )
            if wait is None:
                raise failure from None
            attempt += 1
            on_retry(retry_line(failure, host, wait, attempt, self.max_retries))
            self._sleep(wait)

    def _reader(
        self, response: requests.Response, deadline: float, read_timeout: float, watchdog: Watchdog
    ) -> BodyReader:
        """The response's body as it arrives, within the reply byte cap and the deadline."""
        return BodyReader(
            response,
            limit=self.max_reply_bytes,
            deadline=deadline,
            read_timeout=read_timeout,
            watchdog=watchdog,
        )

    @staticmethod
    def _status_error(response: requests.Response) -> APIStatusError:
        body = read_error_body(response)  # closes the response
        return status_error(response.status_code, response.reason or "", body, response.headers)

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
        body = chat_body(messages, model=model, temperature=temperature, max_tokens=max_tokens, extra=extra)
        return ChatStream(self._stream(body, read_timeout, total, on_retry))

    def _stream(
        self, body: Body, read_timeout: float, max_time: float, on_retry: Optional[Callable[[str], None]]
    ) -> Iterator[Delta]:
        deadline = time.monotonic() + max_time
        matcher = self._matcher()
        refused = key_refusal(body, matcher)
        if refused is not None:
            raise refused
        redactor = ReplyRedactor(matcher)
        notices: list[str] = []

        def retry(line: str) -> None:
            line = redactor.whole(line)
            notices.append(line)
            if on_retry is not None:
                on_retry(line)

        # One watchdog for the whole reply, cancelled when it ends (a late one would cut a reused connection).
        with self._flights.guard(deadline) as watchdog:
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
                raise clean_error(exc, matcher) from None
            for line in notices:
                yield NoticeDelta(line)
            reader = self._reader(response, deadline, read_timeout, watchdog)
            # Inline <think> reasoning is made reasoning before redaction, so each kind is masked as shown.
            think = ThinkSplitter()

            def held() -> Iterator[Delta]:
                """What the splitter and the redactor still hold: the partial answer stays whole."""
                for piece in think.flush():
                    yield from redactor.feed(piece)
                yield from redactor.flush()

            try:
                try:
                    for delta in self._decode_reply(response, reader, body, read_timeout, deadline, max_time):
                        for piece in think.feed(delta):
                            yield from redactor.feed(piece)
                except ShenmaError as exc:
                    yield from held()
                    raise clean_error(exc, matcher, response.headers) from None
                except KeyboardInterrupt:
                    yield from held()  # the interrupt goes on
                    raise
                yield from held()
            finally:
                watchdog.cancel()
                response.close()

    def _decode_reply(
        self,
        response: requests.Response,
        reader: BodyReader,
        body: Body,
        read_timeout: float,
        deadline: float,
        max_time: float,
    ) -> Iterator[Delta]:
        """The reply's deltas, with the reader's stops and failed reads as the client's errors."""
        host = self.host
        try:
            yield from decode_reply(reader, host, body, lambda: drain_quickly(response))
        except ReplyTooLarge:
            raise too_large_error(host, self.max_reply_bytes) from None
        except DeadlinePassed:
            raise max_time_error(host, max_time) from None
        except Stopped:
            raise stopped_error(host) from None
        except READ_ERRORS as exc:
            # Whatever the layer that noticed it, a read that fails mid-reply is a timeout or a lost
            # connection; stream() masks the key in the message.
            raise read_failure(exc, host, reader.watchdog, deadline, read_timeout, max_time) from None

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
        with self._flights.guard(deadline) as watchdog:
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
                return model_ids(data, ReplyRedactor(matcher).whole)
            except ShenmaError as exc:
                raise clean_error(exc, matcher, response.headers if response is not None else None) from None
            finally:
                if response is not None:
                    response.close()

    def _read_model_list(
        self, response: requests.Response, read_timeout: float, deadline: float, watchdog: Watchdog
    ) -> bytes:
        try:
            return b"".join(self._reader(response, deadline, read_timeout, watchdog))
        except ReplyTooLarge:
            raise LimitExceededError(
                f"the model list from {self.host} passed the {size_text(self.max_reply_bytes)} limit", ""
            ) from None
        except DeadlinePassed:
            raise max_time_error(self.host, self.max_time) from None
        except _BROKEN_LIST:
            raise ConnectionLostError(
                f"the connection to {self.host} broke while listing models", "try again"
            ) from None
