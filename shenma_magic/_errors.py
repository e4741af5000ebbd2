"""The exception family, and the one place that turns a server's error into a message a user can act on.

Pure: bodies come in as bytes/str, nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ._text import valid_text

__all__ = [
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
    "error_from_payload",
    "error_from_response",
    "hint_for",
]


class ShenmaError(Exception):
    """Base of every error this package raises on purpose.

    Attributes:
        message: what happened, including the server's own words where there are any (shown verbatim).
        hint: what the user can do about it ("" when there is nothing useful to say).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(ShenmaError):
    """The settings cannot work as they are (no key for the host, a bad base URL...)."""


class InsecureTransportError(ConfigError):
    """A key would travel over plain HTTP to a host that is not this machine; no request was made."""


class ConnectError(ShenmaError):
    """The server could not be reached (refused, DNS failure, TLS failure)."""


class KeyInRequestError(ConfigError):
    """A request body would carry an API key the package knows (pasted or filled into a prompt); nothing
    was sent."""


class APITimeoutError(ShenmaError):
    """Connecting took too long, the server went silent longer than the read timeout, or the whole reply
    took longer than the overall limit. (Not named ``TimeoutError``: that would shadow the builtin.)"""


class ConnectionLostError(ShenmaError):
    """The connection broke after the reply had started."""


class ProtocolError(ShenmaError):
    """The server answered something that is not a chat completion (an HTML page, garbage...)."""


class LimitExceededError(ProtocolError):
    """What the server sent passed a size limit (a line, an event, a whole reply); reading stopped there
    and the text so far is kept."""


# The names of release 0.1, kept one release for code that catches them.
TimeoutError = APITimeoutError  # deprecated alias
ConnectionLost = ConnectionLostError  # deprecated alias


class APIStatusError(ShenmaError):
    """The server answered with an HTTP error status.

    Attributes:
        status_code: the HTTP status.
        server_message: the server's own message (often Chinese, e.g. 无效的令牌), "" if it sent none.
        type: the error ``type`` from the JSON body, if any.
        code: the error ``code`` from the JSON body, if any.
        request_id: the relay's request id, when it included one (useful when asking its support).
        retry_after: seconds to wait, from a ``Retry-After`` header, if sent.
    """

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
    ) -> None:
        super().__init__(message, hint)
        self.status_code = status_code
        self.server_message = server_message
        self.type = type
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after


class StreamError(ShenmaError):
    """The server reported an error inside a stream that had started normally.

    Attributes: ``server_message``, ``type``, ``code`` and ``request_id`` as on :class:`APIStatusError`.
    """

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        server_message: str = "",
        type: Optional[str] = None,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message, hint)
        self.server_message = server_message
        self.type = type
        self.code = code
        self.request_id = request_id


# one-api / new-api append "(request id: 2025...)" to their messages; some send it as a field or header.
_REQUEST_ID = re.compile(r"[(（]\s*request id[:：]\s*([^)）\s]+)\s*[)）]", re.IGNORECASE)
_HTML = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml|<title)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")

# Messages that mean "there is no point retrying this".
_NO_CHANNEL = ("无可用渠道", "no available channel", "no channel available")
_QUOTA = ("额度已用尽", "额度不足", "余额不足", "insufficient_quota", "quota exceeded", "insufficient quota")

_HINTS = {
    400: "the server rejected the request: check the model name and options (%chat models lists models)",
    401: "check the API key (令牌): enter it again with %chat key",
    402: "the key has no balance left: top up the wallet (充值) or use another key",
    403: "this key or its group (分组) may not use this model: pick another with -m, or change the group",
    404: "check the base URL (it should end in /v1) and the model name",
    408: "the server timed out: try again",
    413: "the request is too large: start a new conversation with --new, or send less",
    429: "rate limit or quota: wait and try again, or check the key's quota (额度)",
    500: "the server failed: try again in a moment",
    502: "the gateway in front of the relay failed: try again in a moment",
    503: "no channel serves this model in the key's group (分组): pick another model with -m, or try later",
    504: "the gateway timed out waiting for the model: try again, or ask for a shorter answer",
    524: "the gateway timed out waiting for the model: try again, or ask for a shorter answer",
}


def is_no_channel(text: str) -> bool:
    return any(s in text.lower() for s in _NO_CHANNEL)


def is_quota(text: str) -> bool:
    low = text.lower()
    return any(s in low for s in _QUOTA)


def hint_for(status: int, server_message: str = "", code: Optional[str] = None) -> str:
    """The short advice shown after the server's message."""
    text = f"{server_message} {code or ''}"
    if is_quota(text):
        return "the key's quota (额度) is used up: top up, or use another key"
    if is_no_channel(text):
        return _HINTS[503]
    if status in _HINTS:
        return _HINTS[status]
    if 500 <= status < 600:
        return "the server failed: try again in a moment"
    return ""


def _str_or_none(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


def _fields_from_json(obj: Any) -> Optional[tuple[str, Optional[str], Optional[str], Optional[str]]]:
    """(message, type, code, request_id) from the error shapes relays use, or None if ``obj`` is not one."""
    fields = _raw_fields(obj)
    if fields is None:
        return None
    message, type_, code, rid = fields
    # JSON may carry lone surrogates ("\\ud800"); an error message that cannot be printed is no message.
    return (
        valid_text(message),
        valid_text(type_) if type_ else type_,
        valid_text(code) if code else code,
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


def _find_request_id(message: str) -> Optional[str]:
    found = _REQUEST_ID.search(message)
    return found.group(1) if found else None


def _describe_html(body: bytes) -> str:
    text = body[:4096].decode("utf-8", "replace")
    title = _TITLE.search(text)
    if title:
        return " ".join(_TAGS.sub(" ", title.group(1)).split())[:200]
    return " ".join(_TAGS.sub(" ", text).split())[:120]


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import time
    from email.utils import parsedate_to_datetime  # rare path: keep the import off start-up

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(
    status: int,
    body: bytes,
    *,
    reason: str = "",
    request_id: Optional[str] = None,
    retry_after: Optional[float] = None,
) -> APIStatusError:
    """Build the error for an HTTP error status from whatever body came with it (JSON, HTML, empty)."""
    server_message = ""
    type_ = code = None
    rid = request_id
    stripped = body.strip()
    fields = None
    if stripped[:1] in (b"{", b"["):
        try:
            fields = _fields_from_json(json.loads(stripped.decode("utf-8", "replace")))
        except ValueError:
            fields = None
    if fields is not None:
        server_message, type_, code, rid_json = fields
        rid = rid or rid_json
    elif _HTML.match(stripped):
        server_message = _describe_html(stripped)
        server_message = f"HTML error page from a gateway: {server_message}" if server_message else ""
    elif stripped:
        server_message = " ".join(stripped[:300].decode("utf-8", "replace").split())
    rid = rid or _find_request_id(server_message)
    label = f"HTTP {status}" + (f" {reason}" if reason else "")
    message = f"{label}: {server_message}" if server_message else f"{label} (the server sent no message)"
    hint = hint_for(status, server_message, code)
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
    )


def error_from_payload(obj: Any, *, event: str = "message") -> Optional[StreamError]:
    """The error carried by a stream event's JSON, or None if it is not an error."""
    fields = None
    if isinstance(obj, dict) and ("error" in obj or obj.get("object") == "error"):
        fields = _fields_from_json(obj)
    if fields is None and event == "error":
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        fields = (valid_text(text), None, None, None)
    if fields is None:
        return None
    server_message, type_, code, rid = fields
    rid = rid or _find_request_id(server_message)
    message = f"the server reported an error mid-stream: {server_message or '(no message)'}"
    hint = hint_for(0, server_message, code)
    if not hint:
        hint = "try again; if it repeats, try another model with -m"
    return StreamError(message, hint, server_message=server_message, type=type_, code=code, request_id=rid)
