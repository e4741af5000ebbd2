"""The errors of one HTTP exchange, built from what was seen of it. Pure.

An error status becomes an :class:`~._errors.APIStatusError` from its body and headers (the server's
message, its request id, a sane ``Retry-After``); a reply that ran out of time, passed the size limit, was
stopped, or came back empty gets one line that says so and what to do. The client decides which applies;
the words are here.
"""

from __future__ import annotations

from typing import Any, Optional

from ._errors import (
    APIStatusError,
    APITimeoutError,
    ConnectionLostError,
    LimitExceededError,
    ProtocolError,
    error_from_response,
    parse_retry_after,
    request_id_from_headers,
)

__all__ = [
    "empty_reply_error",
    "max_time_error",
    "request_id_from",
    "size_text",
    "status_error",
    "stopped_error",
    "too_large_error",
]

# An empty 200 to a request this large most likely overflowed the model's context (llama.cpp does that).
_LARGE_REQUEST_CHARS = 8000
_LARGE_REQUEST_MESSAGES = 20


def request_id_from(headers: Any) -> Optional[str]:
    """The server's request id among the response ``headers`` (None for no headers), on one line."""
    return None if headers is None else request_id_from_headers(headers)


def status_error(status: int, reason: str, body: bytes, headers: Any) -> APIStatusError:
    """The error for an HTTP error status, from the start of its body and its headers."""
    err = error_from_response(
        status,
        body,
        reason=reason,
        request_id=None,
        retry_after=parse_retry_after(headers.get("retry-after")),  # bounded by the parser
    )
    if not err.request_id:
        err.request_id = request_id_from(headers)
    return err


def size_text(n: int) -> str:
    """A byte count as the limit was given: ``32 MiB``, ``64 KiB``, ``1000 bytes``."""
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def max_time_error(host: str, max_time: float, *, headers: bool = True) -> APITimeoutError:
    """``headers``: the reply had started (there may be a partial answer); else not even its headers had
    come whole (a silent server, or one trickling endless headers)."""
    err = (
        APITimeoutError(
            f"the reply from {host} took longer than {max_time:g} s in all (the max time)",
            "the partial answer is kept; raise the max time, or ask for a shorter answer",
        )
        if headers
        else APITimeoutError(
            f"{host} sent no complete reply headers within {max_time:g} s (the max time)",
            "no reply was read: try again, or raise the max time; if it repeats, check the base URL",
        )
    )
    err.phase = "max_time"
    err.max_time = max_time
    return err


def too_large_error(host: str, limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"the reply from {host} passed the {size_text(limit)} limit: reading stopped",
        "the partial answer is kept",
    )


def stopped_error(host: str) -> ConnectionLostError:
    """The reply ended by ``ChatClient.abort()``."""
    return ConnectionLostError(f"the reply from {host} was stopped", "the partial answer is kept")


def empty_reply_error(host: str, chars: int, messages: int) -> ProtocolError:
    """A reply without a byte of body, to a request of ``chars`` characters of text in ``messages``."""
    large = chars > _LARGE_REQUEST_CHARS or messages > _LARGE_REQUEST_MESSAGES
    hint = (
        f"the request is large ({chars} characters in {messages} messages) and may exceed "
        "the model's context: a new conversation or a shorter prompt helps"
        if large
        else "try again; if it repeats, try another model"
    )
    empty = ProtocolError(f"{host} answered with an empty body", hint)
    empty.request_chars = chars
    empty.message_count = messages
    return empty
