"""The exception family, and the one place that turns a server's error into facts a user can act on.

Pure: bodies come in as bytes/str, nothing here does I/O. An error carries what happened (``message``, in
the server's own words where there are any, always one line), a stable ``kind`` a program can branch on,
and a ``hint`` that names no front door: the magic and the Python API each word their own advice with
:func:`shenma_magic._hints.front_door_hint`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from ._text import valid_text

if TYPE_CHECKING:
    from ._models import Reply

__all__ = [
    "KINDS",
    "APIStatusError",
    "APITimeoutError",
    "ConfigError",
    "ConnectError",
    "ConnectionLostError",
    "InsecureTransportError",
    "KeyInRequestError",
    "LimitExceededError",
    "ProtocolError",
    "ShenmaError",
    "StreamError",
    "classify",
    "error_from_payload",
    "error_from_response",
    "one_line",
    "request_id_from_headers",
]

KINDS: dict[str, str] = {
    "auth": "the server refused the API key",
    "no_key": "there is no API key for the host",
    "quota": "the key's quota or balance is used up",
    "no_channel": "the relay has no channel for the model in the key's group (分组)",
    "model": "the server does not offer the model (to this key)",
    "forbidden": "the server refused the request for this key",
    "rate_limit": "too many requests: rate limited, or the relay's channels are busy",
    "context_length": "the prompt is longer than the model's context",
    "bad_request": "the server rejected the request (a model name or an option)",
    "not_found": "no such address on the server (the base URL or the model)",
    "server": "the server failed, is overloaded, or has a problem of its own",
    "server_timeout": "the server (or a gateway) timed out waiting for the model",
    "http": "another HTTP error status",
    "stream": "the server reported an error inside the stream",
    "timeout": "the server went silent longer than allowed, or the reply took longer than allowed",
    "connect": "the server could not be reached",
    "connection_lost": "the connection broke mid-reply",
    "protocol": "the server answered something that is not a chat completion",
    "empty_reply": "the server answered without any event",
    "limit": "what the server sent passed a size limit",
    "config": "the settings cannot work as they are",
    "insecure": "a key would travel over plain HTTP to another machine",
    "key_in_request": "a request would carry an API key",
    "error": "something else",
}
"""Every ``ShenmaError.kind``, with what it means. The strings are stable: programs may branch on them."""


def one_line(text: str) -> str:
    """Any run of whitespace (newlines included, as in LiteLLM's messages) as one space; stripped."""
    return " ".join(text.split())


class ShenmaError(Exception):
    """Base of every error this package raises on purpose.

    Attributes:
        message: what happened, including the server's own words where there are any (one line).
        hint: what the user can do about it, in words that fit any front door ("" when there is nothing
            useful to say); the magic and the Python API add their own with ``front_door_hint``.
        kind: a short stable string saying what kind of failure this is (see :data:`KINDS`).
        reply: the partial reply, when a :class:`~shenma_magic.Session` turn failed after it started
            (``None`` otherwise).
    """

    kind: str = "error"
    reply: Optional[Reply] = None

    def __init__(self, message: str, hint: str = "", *, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(ShenmaError):
    """The settings cannot work as they are (no key for the host: kind ``"no_key"``, a bad base URL...)."""

    kind = "config"


class InsecureTransportError(ConfigError):
    """A key would travel over plain HTTP to a host that is not this machine; no request was made."""

    kind = "insecure"


class ConnectError(ShenmaError):
    """The server could not be reached (refused, DNS failure, TLS failure)."""

    kind = "connect"


class KeyInRequestError(ConfigError):
    """A request body would carry an API key the package knows (pasted or filled into a prompt); nothing
    was sent."""

    kind = "key_in_request"


class APITimeoutError(ShenmaError):
    """Connecting took too long, the server went silent longer than the read timeout, or the whole reply
    took longer than the overall limit. (Not named ``TimeoutError``: that would shadow the builtin.)

    ``phase`` says which: ``"connect"``, ``"first_byte"``, ``"read"`` or ``"max_time"`` (``""`` when
    unknown); ``max_time`` is the overall limit in seconds when that was what passed."""

    kind = "timeout"
    phase: str = ""
    max_time: Optional[float] = None


class ConnectionLostError(ShenmaError):
    """The connection broke after the reply had started."""

    kind = "connection_lost"


class ProtocolError(ShenmaError):
    """The server answered something that is not a chat completion (an HTML page, garbage...); kind
    ``"empty_reply"`` when it answered nothing at all; then ``request_chars`` and ``message_count`` say
    how large the request was (a request too large for the model's context is a common cause)."""

    kind = "protocol"
    request_chars: Optional[int] = None
    message_count: Optional[int] = None


class LimitExceededError(ProtocolError):
    """What the server sent passed a size limit (a line, an event, a whole reply); reading stopped there
    and the text so far is kept."""

    kind = "limit"


# The names of release 0.1, kept one release for code that catches them.
TimeoutError = APITimeoutError  # deprecated alias
ConnectionLost = ConnectionLostError  # deprecated alias


class APIStatusError(ShenmaError):
    """The server answered with an HTTP error status.

    Attributes:
        status_code: the HTTP status.
        server_message: the server's own message (often Chinese, e.g. 无效的令牌), one line, "" if it sent
            none.
        type: the error ``type`` from the JSON body, if any.
        code: the error ``code`` from the JSON body, if any.
        request_id: the server's request id, from the body or the headers (useful when asking its support).
        retry_after: seconds to wait, from a ``Retry-After`` header, if sent.
        from_relay: the message is in the words of a one-api / new-api relay (令牌, 分组, 渠道...).
    """

    kind = "http"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        status_code: int,
        server_message: str = "",
        type: Optional[str] = None,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        kind: Optional[str] = None,
        from_relay: bool = False,
    ) -> None:
        super().__init__(message, hint, kind=kind)
        self.status_code = status_code
        self.server_message = server_message
        self.type = type
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.from_relay = from_relay


class StreamError(ShenmaError):
    """The server reported an error inside a stream that had started normally.

    Attributes: ``server_message``, ``type``, ``code``, ``request_id`` and ``from_relay`` as on
    :class:`APIStatusError`.
    """

    kind = "stream"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        server_message: str = "",
        type: Optional[str] = None,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        kind: Optional[str] = None,
        from_relay: bool = False,
    ) -> None:
        super().__init__(message, hint, kind=kind)
        self.server_message = server_message
        self.type = type
        self.code = code
        self.request_id = request_id
        self.from_relay = from_relay


# one-api / new-api append "(request id: 2025...)" to their messages; some send it as a field or header.
_REQUEST_ID = re.compile(r"[(（]\s*request id[:：]\s*([^)）\s]+)\s*[)）]", re.IGNORECASE)
_HTML = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml|<title)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
# Where servers put a request id in the headers, most specific first: OpenAI and most proxies, LiteLLM,
# one-api / new-api, Anthropic, AWS, Azure, tracing proxies; cf-ray only names a Cloudflare hop.
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

# The words of one-api / new-api relays (神马中转API is one): only their messages get relay advice.
_RELAY_WORDS = ("令牌", "分组", "渠道", "额度", "one_api_error", "new_api_error", "no available channel")
_NO_CHANNEL = ("无可用渠道", "no available channel", "no channel available")
_QUOTA = (
    "额度",
    "余额",
    "insufficient_quota",
    "insufficient_user_quota",
    "insufficient quota",
    "quota exceeded",
    "exceeded your current quota",
    "budget_exceeded",
    "budget has been exceeded",
    "insufficient balance",
    "insufficient_balance",
    "credit balance is too low",
)
_CONTEXT = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "contextwindowexceeded",
    "context length",
    "exceed_context_size",
    "exceeds the available context",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "compared to kv size",
    "上下文长度",
)
_MODEL = (
    "model_not_found",
    "invalid model",
    "model not found",
    "unknown model",
    "no such model",
    "not allowed to use model",
    "does not have access to model",
    "do not have access to it",
    "无权使用模型",
    "无权访问",
    "模型不存在",
)
_AUTH = (
    "无效的令牌",
    "令牌已过期",
    "令牌状态不可用",
    "令牌已被禁用",
    "未提供令牌",
    "invalid api key",
    "invalid_api_key",
    "incorrect api key",
    "invalid token",
    "authentication",
    "unauthorized",
    "auth_error",
)
_RATE = ("rate limit", "rate_limit", "too many requests", "请求数限制", "负载已饱和", "throttl")
# Failures on the server's side, whatever the status says (LiteLLM answers 400 for "No connected db").
_SERVER = (
    "no_db_connection",
    "no connected db",
    "database",
    "internal_server_error",
    "internal server error",
    "server_error",
)
_OVERLOADED = ("overloaded", "unavailable", "loading model", "capacity")
_TIMED_OUT = ("timed out", "timeout")

# Advice that names no front door: (general words, a relay's words).
_ADVICE: dict[str, tuple[str, str]] = {
    "auth": ("check the API key, or use another key", "check the API key (令牌), or use another key"),
    "quota": (
        "the key's quota or balance is used up: top up, or use another key",
        "the key's quota (额度) is used up: top up (充值), or use another key",
    ),
    "no_channel": (
        "",
        "no channel serves this model in the key's group (分组): pick another model, or try later",
    ),
    "model": (
        "the server does not offer this model to this key: pick another model (the model list shows which)",
        "this key or its group (分组) may not use this model: pick another model, or change the key's group",
    ),
    "forbidden": (
        "the server refused this request for this key",
        "this key or its group (分组) may not do this: check the key's settings on the relay",
    ),
    "rate_limit": (
        "rate limit or quota: wait and try again, or check the key's quota",
        "rate limit or quota: wait and try again, or check the key's quota (额度)",
    ),
    "context_length": (
        "the prompt is longer than the model's context: start a new conversation, or send less",
    )
    * 2,
    "bad_request": ("the server rejected the request: check the model name and the options",) * 2,
    "not_found": ("check the base URL (it usually ends in /v1) and the model name",) * 2,
    "server": ("the server failed: try again in a moment",) * 2,
    "server_timeout": ("the server timed out waiting for the model: try again, or ask for a shorter answer",)
    * 2,
    "stream": ("try again; if it repeats, try another model",) * 2,
    "http": ("",) * 2,
}
_SERVER_SIDE = "a problem on the server's side, not in the request: try again later, or tell whoever runs it"
_OVERLOADED_ADVICE = "the server is overloaded or unavailable: try again in a moment"
_GATEWAY = "the gateway in front of the server failed: try again in a moment"
_GATEWAY_TIMEOUT = "the gateway timed out waiting for the model: try again, or ask for a shorter answer"


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def is_relay_message(server_message: str, type_: Optional[str] = None) -> bool:
    """Whether an error is in the words of a one-api / new-api relay (无可用渠道, 令牌, 分组...)."""
    return _has(f"{server_message} {type_ or ''}".lower(), _RELAY_WORDS)


def is_no_channel(text: str) -> bool:
    """The relay has no channel for the model: no point retrying."""
    return _has(text.lower(), _NO_CHANNEL)


def is_quota(text: str) -> bool:
    """The key's quota or balance is used up: no point retrying."""
    return _has(text.lower(), _QUOTA)


def classify(
    status: int, server_message: str = "", type_: Optional[str] = None, code: Optional[str] = None
) -> tuple[str, str]:
    """(kind, front-door-neutral hint) for an error: an HTTP status (0 for an error inside a stream) and
    the server's message, type and code. Relay advice only for a relay's own words."""
    text = f"{server_message} {type_ or ''} {code or ''}".lower()
    relay = _has(text, _RELAY_WORDS)

    def advice(kind: str) -> tuple[str, str]:
        general, relayed = _ADVICE[kind]
        return kind, relayed if relay else general

    if status == 402 or _has(text, _QUOTA):
        return advice("quota")
    if relay and _has(text, _NO_CHANNEL):
        return "no_channel", _ADVICE["no_channel"][1]
    if _has(text, _CONTEXT) or status == 413:
        return advice("context_length")
    if _has(text, _MODEL) or (status == 404 and "model" in text):
        return advice("model")
    if status == 401 or _has(text, _AUTH):
        return advice("auth")
    if status == 429 or _has(text, _RATE):
        return advice("rate_limit")
    if status < 500 and _has(text, _SERVER):
        return "server", _SERVER_SIDE
    if status in (504, 524):
        return "server_timeout", _GATEWAY_TIMEOUT
    if status == 408 or (status in (0, 500, 502, 503) and _has(text, _TIMED_OUT)):
        return advice("server_timeout")
    if status == 503 or _has(text, _OVERLOADED):
        return "server", _OVERLOADED_ADVICE
    if status == 502:
        return "server", _GATEWAY
    if status == 501:
        return "bad_request", "the server does not support this request"
    if 500 <= status < 600:
        return advice("server")
    if status == 403:
        return advice("forbidden")
    if status == 404:
        return advice("not_found")
    if status in (400, 422):
        return advice("bad_request")
    if status == 0:
        return advice("stream")
    return advice("http")


def _str_or_none(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


def _fields_from_json(obj: Any) -> Optional[tuple[str, Optional[str], Optional[str], Optional[str]]]:
    """(message, type, code, request_id) from the error shapes relays use, or None if ``obj`` is not one.
    Every string is valid Unicode (JSON may carry lone surrogates) and the message is one line."""
    fields = _raw_fields(obj)
    if fields is None:
        return None
    message, type_, code, rid = fields
    return (
        one_line(valid_text(message)),
        one_line(valid_text(type_)) if type_ else type_,
        one_line(valid_text(code)) if code else code,
        valid_text(rid) if rid else rid,
    )


def _raw_fields(obj: Any) -> Optional[tuple[str, Optional[str], Optional[str], Optional[str]]]:
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        message = err.get("message") or err.get("msg") or ""
        if not isinstance(message, str):
            message = json.dumps(message, ensure_ascii=False)
        return (
            message,
            _str_or_none(err.get("type")),
            _str_or_none(err.get("code")),
            _str_or_none(err.get("request_id") or obj.get("request_id")),
        )
    if isinstance(err, str) and err:
        return err, None, _str_or_none(obj.get("code")), _str_or_none(obj.get("request_id"))
    if obj.get("object") == "error":  # vLLM and friends
        return (
            str(obj.get("message") or ""),
            _str_or_none(obj.get("type")),
            _str_or_none(obj.get("code")),
            None,
        )
    # Some gateways answer {"message": "...", "code": ...} or {"detail": "..."}.
    for key in ("message", "detail", "msg"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value, _str_or_none(obj.get("type")), _str_or_none(obj.get("code")), None
    return None


def _says_nothing(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_says_nothing(v) for v in value.values())
    if isinstance(value, list):
        return all(_says_nothing(v) for v in value)
    return value is None or value == ""


def _find_request_id(message: str) -> Optional[str]:
    found = _REQUEST_ID.search(message)
    return found.group(1) if found else None


def request_id_from_headers(headers: Mapping[str, str]) -> Optional[str]:
    """The server's request id from response headers (``x-request-id``, LiteLLM's ``x-litellm-call-id``,
    one-api's ``x-oneapi-request-id``...), or None. ``headers`` is case-insensitive, as requests' are, or
    has lower-case names."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if isinstance(value, str) and value.strip():
            return one_line(value)[:200]
    return None


def _describe_html(page: str) -> str:
    text = page[:4096]
    title = _TITLE.search(text)
    if title:
        return one_line(_TAGS.sub(" ", title.group(1)))[:200]
    return one_line(_TAGS.sub(" ", text))[:120]


#: The longest ``Retry-After`` taken as a plan, in seconds (a day). A longer wait is no plan to retry: it
#: would show as "retry after 251606131195 s" or stall a batch.
MAX_RETRY_AFTER = 86_400.0
# delay-seconds is 1*DIGIT (RFC 9110); a fraction is tolerated. ASCII digits only: float() would also take
# "١٢", "1e309", "nan", "-5" and "1_0".
_DELAY_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delay-seconds, or an HTTP date, counted from ``now``, the
    epoch seconds, by default the clock): a finite number from 0 to :data:`MAX_RETRY_AFTER`, or None for
    anything else (garbage, a negative or non-finite number, a wait longer than that). A date already
    past is 0."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        import time
        from datetime import timezone
        from email.utils import parsedate_to_datetime  # rare path: keep the import off start-up

        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:  # "-0000": a time in UTC with no zone said
                when = when.replace(tzinfo=timezone.utc)
            seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
        except (TypeError, ValueError, OverflowError, OSError, IndexError):
            return None
    return seconds if seconds <= MAX_RETRY_AFTER else None


def reply_head_error(exc: BaseException, host: str) -> Optional[ShenmaError]:
    """The error for a reply whose status line or headers could not be read (the failure http.client
    raised, wherever it sits among ``exc``'s causes), or None if that is not what happened. Such a server
    was reached: it is no connection failure. Never quotes what the server sent."""
    import http.client  # what requests' and urllib3's wrappers carry inside

    found = _find_cause(exc, http.client.HTTPException)
    if found is None:
        return None
    hint = "the server (or a proxy in front of it) does not answer like an HTTP API: check the base URL"
    if isinstance(found, http.client.LineTooLong):
        return LimitExceededError(
            f"{host} sent a reply header line over 64 KiB long: no reply was read", hint
        )
    if isinstance(found, http.client.RemoteDisconnected):
        return ConnectError(f"{host} closed the connection without a reply", "try again in a moment")
    if isinstance(found, http.client.BadStatusLine):
        return ProtocolError(f"{host} answered something that is not HTTP", f"{hint} (its scheme and port)")
    if "headers" in str(found):  # "got more than 100 headers": http.client's words, not the server's
        return LimitExceededError(f"{host} sent more than 100 reply headers: no reply was read", hint)
    return ProtocolError(f"{host} sent reply headers that cannot be read", hint)


def _find_cause(exc: BaseException, kind: type[BaseException]) -> Optional[BaseException]:
    """The first exception of ``kind`` among ``exc``, its arguments, causes and contexts (wrappers such as
    urllib3's ProtocolError hold the original as an argument)."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        item = todo.pop(0)
        if id(item) in seen or len(seen) > 32:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        todo.extend(a for a in item.args if isinstance(a, BaseException))
        todo.extend(c for c in (item.__cause__, item.__context__) if c is not None)
    return None


def error_from_response(
    status: int,
    body: bytes,
    *,
    reason: str = "",
    request_id: Optional[str] = None,
    retry_after: Optional[float] = None,
    redact: Callable[[str], str] = lambda text: text,
) -> APIStatusError:
    """Build the error for an HTTP error status from whatever body came with it (JSON, HTML, empty).

    ``redact`` masks secrets in the server's text; it runs before any text is cut, so a key never shows
    in part because a cut fell inside it.
    """
    server_message = ""
    type_ = code = None
    rid = request_id
    stripped = body.strip()
    fields = None
    if stripped[:1] in (b"{", b"[", b"n", b'"'):
        try:
            parsed = json.loads(stripped.decode("utf-8", "replace"))
        except ValueError:
            pass
        else:
            # JSON that says nothing ({}, [], null, {"error": {}}) is no message: it is not quoted as one.
            fields = ("", None, None, None) if _says_nothing(parsed) else _fields_from_json(parsed)
    if fields is not None:
        server_message, type_, code, rid_json = fields
        server_message = redact(server_message)
        rid = rid or rid_json
    elif _HTML.match(stripped):
        server_message = _describe_html(redact(stripped.decode("utf-8", "replace")))
        server_message = f"HTML error page from a gateway: {server_message}" if server_message else ""
    elif stripped:
        server_message = one_line(redact(stripped.decode("utf-8", "replace")))[:300]
    rid = rid or _find_request_id(server_message)
    label = f"HTTP {status}" + (f" {reason}" if reason else "")
    message = f"{label}: {server_message}" if server_message else f"{label} (the server sent no message)"
    kind, hint = classify(status, server_message, type_, code)
    if retry_after is not None and status in (429, 503):
        wait = f"the server asks to retry after {retry_after:.0f} s"
        hint = f"{hint}; {wait}" if hint else wait
    return APIStatusError(
        message,
        hint,
        status_code=status,
        server_message=server_message,
        type=type_,
        code=code,
        request_id=rid,
        retry_after=retry_after,
        kind=kind,
        from_relay=is_relay_message(server_message, type_),
    )


def error_from_payload(obj: Any, *, event: str = "message") -> Optional[StreamError]:
    """The error carried by a stream event's JSON, or None if it is not an error."""
    fields = None
    if isinstance(obj, dict) and ("error" in obj or obj.get("object") == "error"):
        fields = _fields_from_json(obj)
    if fields is None and event == "error":
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        fields = (one_line(valid_text(text)), None, None, None)
    if fields is None:
        return None
    server_message, type_, code, rid = fields
    rid = rid or _find_request_id(server_message)
    message = f"the server reported an error mid-stream: {server_message or '(no message)'}"
    kind, hint = classify(0, server_message, type_, code)
    return StreamError(
        message,
        hint,
        server_message=server_message,
        type=type_,
        code=code,
        request_id=rid,
        kind=kind,
        from_relay=is_relay_message(server_message, type_),
    )
