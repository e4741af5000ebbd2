"""The HTTP side: POST a chat request with ``requests`` and feed the body to the pure decoders.

This is the only module that imports ``requests``; it is imported lazily so ``%load_ext`` stays light.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import requests
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
    ProtocolError,
    ShenmaError,
    error_from_response,
    is_no_channel,
    is_quota,
    parse_retry_after,
)
from ._models import Delta, NoticeDelta, Reply, ReplyBuilder, TextDelta
from ._secret import Secret, is_loopback_host, mask, redact
from ._sse import SSEDecoder

__all__ = ["DEFAULT_BASE_URL", "ChatClient", "normalize_base_url"]


Message = dict[str, Any]
Timeout = Union[float, tuple[float, float]]

# socket.timeout is the builtin TimeoutError.
_SocketTimeout = builtins.TimeoutError
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 64 * 1024 * 1024
_READ_SIZE = 64 * 1024
_VERSION = "0.1.0"


def normalize_base_url(url: str) -> str:
    """``https://api.whatai.cc``, ``.../v1``, ``.../v1/`` and ``.../v1/chat/completions`` are one base.

    A bare host gets ``https://``; a URL with no path gets ``/v1`` (what OpenAI-compatible relays serve).
    """
    url = url.strip()
    if not url:
        raise ConfigError("the base URL is empty", "set it with %chat base_url https://api.whatai.cc/v1")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r}", "use e.g. https://api.whatai.cc/v1")
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_transport(base_url: str, has_key: bool) -> None:
    """Refuse to send a key over plain HTTP anywhere but this machine."""
    parts = urlsplit(base_url)
    if has_key and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureTransportError(
            f"refusing to send the API key over plain http:// to {parts.hostname}",
            "use https:// (only 127.0.0.1/localhost may use http); nothing was sent",
        )


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
    if isinstance(exc, (requests.exceptions.ConnectTimeout,)):
        return APITimeoutError(
            f"connecting to {host} timed out", "check your network or proxy, then try again"
        )
    return ConnectError(f"cannot connect to {host}", "check the base URL and your network")


class ChatClient:
    """A streaming chat client for any OpenAI-compatible server.

    >>> client = ChatClient("https://api.whatai.cc/v1", api_key="sk-...")
    >>> for delta in client.stream([{"role": "user", "content": "你好"}], model="gpt-4o-mini"):
    ...     print(getattr(delta, "text", ""), end="")

    One ``requests.Session`` is kept, so consecutive requests reuse the connection.
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
        session: Optional[requests.Session] = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        key = api_key.reveal() if isinstance(api_key, Secret) else (api_key or "")
        self._key = Secret(key.strip())
        check_transport(self.base_url, bool(self._key))
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._session = session
        self._aborted = threading.Event()
        self._live: set[requests.Response] = set()
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
            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def abort(self) -> None:
        """Stop this client for good, from any thread: replies in flight end at once (their connections are
        shut down, so a read waiting on a silent server returns), a retry wait is cut short, and no new
        request is sent. For a reply streaming on another thread (``%%chat --bg``)."""
        self._aborted.set()
        with self._live_lock:
            live = list(self._live)
        for response in live:
            _shut(response)

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------------------

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": f"shenma-magic/{_VERSION}"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        return headers

    def _redact(self, err: ShenmaError) -> ShenmaError:
        # A server may echo the key back in its error text; it must not reach the user's screen.
        key = self._key.reveal()
        err.message = redact(err.message, key)
        err.hint = redact(err.hint, key)
        err.args = (err.message,)
        server_message = getattr(err, "server_message", None)
        if isinstance(server_message, str):
            err.server_message = redact(server_message, key)  # type: ignore[attr-defined]
        return err

    def _send(
        self, method: str, path: str, body: Optional[dict[str, Any]], timeout: Optional[float], accept: str
    ) -> Iterator[Union[NoticeDelta, requests.Response]]:
        """Send with bounded retries before any byte of the reply; yields notices, then the response."""
        url = self.base_url + path
        host = urlsplit(url).hostname or url
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        headers = self._headers(accept)
        if data is not None:
            headers["Content-Type"] = "application/json"
        read_timeout = timeout if timeout is not None else self.timeout
        attempt = 0
        while True:
            failure: ShenmaError
            wait: Optional[float] = None
            if self._aborted.is_set():
                raise ConnectError(f"the request to {host} was stopped before it was sent")
            try:
                response = self.session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    stream=True,
                    timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                )
            except requests.exceptions.ConnectTimeout as exc:
                failure = _connect_error(exc, host)
            except requests.exceptions.ReadTimeout:
                failure = APITimeoutError(
                    f"{host} sent no reply within {read_timeout:g} s",
                    "the model may be overloaded: try again, or raise the timeout with --timeout",
                )
            except requests.exceptions.ConnectionError as exc:
                failure = _connect_error(exc, host)
                if isinstance(exc, requests.exceptions.SSLError):
                    raise self._redact(failure) from None
            except requests.exceptions.RequestException as exc:
                raise self._redact(ConnectError(f"request to {host} failed: {type(exc).__name__}")) from None
            else:
                if response.status_code < 400:
                    yield response
                    return
                failure = self._status_error(response)
                assert isinstance(failure, APIStatusError)
                text = f"{failure.server_message} {failure.code or ''}"
                if failure.status_code not in _RETRY_STATUSES or is_no_channel(text) or is_quota(text):
                    raise self._redact(failure) from None
                wait = failure.retry_after
            if isinstance(failure, APITimeoutError) and "sent no reply" in failure.message:
                raise self._redact(failure) from None  # the server may still be working on it: do not pile on
            if attempt >= self.max_retries:
                raise self._redact(failure) from None
            if wait is None:
                wait = 0.5 * (2**attempt)
            if wait > self.max_retry_wait:
                raise self._redact(failure) from None
            attempt += 1
            yield NoticeDelta(
                f"{self._redact(failure).message}; retrying in {wait:.1f} s ({attempt}/{self.max_retries})"
            )
            self._sleep(wait)

    def _status_error(self, response: requests.Response) -> ShenmaError:
        try:
            body = _read_limited(response, _ERROR_BODY_LIMIT)
        except Exception:  # a broken error body still deserves the status line
            body = b""
        finally:
            response.close()
        rid = response.headers.get("x-request-id") or response.headers.get("x-oneapi-request-id")
        return error_from_response(
            response.status_code,
            body,
            reason=response.reason or "",
            request_id=rid,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    # -- public API -------------------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str = DEFAULT_MODEL,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        timeout: Optional[float] = None,
        extra: Optional[dict[str, Any]] = None,
    ) -> Iterator[Delta]:
        """Stream a chat completion, yielding typed deltas as they arrive.

        Raises a :class:`~shenma_magic.ShenmaError` subclass on failure; the deltas yielded before it are the
        partial answer. ``timeout`` is the longest silence allowed (seconds). The response is always closed,
        also when the caller stops early or Ctrl-C arrives.
        """
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if extra:
            body.update(extra)
        response: Optional[requests.Response] = None
        for item in self._send("POST", "/chat/completions", body, timeout, "text/event-stream"):
            if isinstance(item, NoticeDelta):
                yield item
            else:
                response = item
        assert response is not None
        read_timeout = timeout if timeout is not None else self.timeout
        key = self._key.reveal()
        with self._live_lock:
            self._live.add(response)
        if self._aborted.is_set():  # abort() ran while the request was being sent
            _shut(response)
        try:
            # The one boundary every reply passes: errors and notices built from what the server sent
            # (which may echo the key) are masked here, once, whatever layer made them.
            for delta in self._read_reply(response, read_timeout):
                if isinstance(delta, NoticeDelta) and key:
                    delta = NoticeDelta(redact(delta.message, key))
                yield delta
        except ShenmaError as exc:
            raise self._redact(exc) from None
        finally:
            with self._live_lock:
                self._live.discard(response)
            response.close()

    def _read_reply(self, response: requests.Response, read_timeout: float) -> Iterator[Delta]:
        host = urlsplit(self.base_url).hostname or self.base_url
        chunks = _iter_raw(response)
        sse = SSEDecoder()
        decoder = ChunkDecoder()
        got_text = False
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
                    for delta in decoder.decode(event):
                        if not got_text and isinstance(delta, TextDelta):
                            got_text = True
                        yield delta
                    if decoder.done:
                        _drain_quickly(response)
                        break
                if decoder.done:
                    break
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # Whatever the layer that noticed it, a read that fails mid-reply is a timeout or a lost
            # connection; stream() masks the key in the message.
            if _is_timeout(exc):
                raise APITimeoutError(
                    f"{host} went silent for more than {read_timeout:g} s",
                    "the partial answer is kept; try again, or raise the limit with --timeout",
                ) from None
            raise ConnectionLostError(
                f"the connection to {host} broke mid-reply", "the partial answer is kept; try again"
            ) from None
        if first:
            raise ProtocolError(
                f"{host} answered with an empty body", "try again; if it repeats, try another model"
            )
        if decoder.finish_reason is None:
            why = "after [DONE]" if decoder.done else "before [DONE]"
            yield NoticeDelta(f"the stream ended {why} without a finish reason: the answer may be cut off")

    def _whole_json(self, first: bytes, rest: Iterator[bytes]) -> Iterator[Delta]:
        parts = [first]
        size = len(first)
        for raw in rest:
            parts.append(raw)
            size += len(raw)
            if size > _JSON_BODY_LIMIT:
                raise ProtocolError("the JSON answer is larger than 64 MB", "")
        text = b"".join(parts).decode("utf-8", "replace")
        try:
            obj = json.loads(text)
        except ValueError:
            raise ProtocolError("the server answered JSON that does not parse", "try again") from None
        yield from deltas_from_completion(obj)

    def complete(self, messages: Sequence[Message], **options: Any) -> Reply:
        """Stream to the end and return the finished :class:`Reply` (errors are raised, not stored)."""
        builder = ReplyBuilder()
        for delta in self.stream(messages, **options):
            builder.add(delta)
        return builder.build()

    def models(self, timeout: Optional[float] = None) -> list[str]:
        """The model ids the server lists at ``GET {base}/models``."""
        response: Optional[requests.Response] = None
        for item in self._send("GET", "/models", None, timeout or 30.0, "application/json"):
            if not isinstance(item, NoticeDelta):
                response = item
        assert response is not None
        try:
            body = _read_limited(response, _JSON_BODY_LIMIT)
        finally:
            response.close()
        try:
            obj = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            raise ProtocolError("the model list is not JSON", "check the base URL") from None
        items = obj.get("data") if isinstance(obj, dict) else obj
        if not isinstance(items, list):
            raise ProtocolError("the server did not send a model list", "check the base URL")
        ids = [str(m.get("id")) if isinstance(m, dict) else str(m) for m in items]
        return sorted(i for i in ids if i and i != "None")


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


def _iter_raw(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. ``iter_content`` on a body with neither length nor chunking reads until the
    server closes the connection; ``read1`` returns whatever one socket read brought."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        yield from response.iter_content(chunk_size=None)
        return
    while True:
        # requests opens the response with decode_content=False and decodes in iter_content; reading raw,
        # we must ask for gzip/deflate/br bodies to be decoded ourselves.
        data = read1(_READ_SIZE, decode_content=True)
        if not data:
            return
        yield data


def _read_limited(response: requests.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for raw in _iter_raw(response):
        parts.append(raw)
        size += len(raw)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def _shut(response: requests.Response) -> None:
    """End a response from another thread: shutting the socket down wakes a read blocked on it (closing
    it would not); then close it."""
    raw = response.raw
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
    # Closing from another thread mid-read may race with that read; the socket is down either way.
    with contextlib.suppress(Exception):
        response.close()


def _drain_quickly(response: requests.Response) -> None:
    """After [DONE], read what is left of the body if it is already here, so the connection can be reused.

    A server may keep the connection open after [DONE]; we wait at most 50 ms for the end of the body
    rather than hold the user's reply hostage.
    """
    raw = response.raw
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None or not hasattr(raw, "read1"):
        return
    try:
        old = sock.gettimeout()
        sock.settimeout(0.05)
        try:
            for _ in range(16):
                if not raw.read1(_READ_SIZE, decode_content=True):
                    return
        finally:
            if not raw.closed:
                sock.settimeout(old)
    except Exception:  # anything at all: the connection is simply not reused
        return
