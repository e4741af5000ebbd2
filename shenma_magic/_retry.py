"""When a request that failed before any byte of its reply is tried again, and after how long. Pure.

Only failures a retry may cure are retried: 429/502/503/504 (but not a relay that has no channel for the
model, nor a quota used up: those answer the same way next time), and connections refused or timed out
while opening. The wait is what the server asks for (``Retry-After``), else 0.5 s doubled each time; a
wait longer than allowed, or one that would end past the reply's deadline, is no retry at all.
"""

from __future__ import annotations

from typing import Optional

from ._errors import APIStatusError, ShenmaError, is_no_channel, is_quota

__all__ = ["retry_line", "retry_wait", "worth_a_retry"]

_RETRY_STATUSES = frozenset({429, 502, 503, 504})


def worth_a_retry(failure: APIStatusError) -> bool:
    """Whether an HTTP error status may go away if the request is sent again."""
    # A function of its own, so that the server's words (which may hold a key) sit in no local of the
    # frame that raises.
    text = f"{failure.server_message} {failure.code or ''}"
    return failure.status_code in _RETRY_STATUSES and not is_no_channel(text) and not is_quota(text)


def retry_wait(
    attempt: int,
    *,
    retry_after: Optional[float],
    max_retries: int,
    max_retry_wait: float,
    time_left: float,
) -> Optional[float]:
    """The seconds to wait before retry number ``attempt + 1`` (``attempt`` retries done), or None when
    the failure is final: no retries left, the wait too long, or ending past the deadline (``time_left``
    seconds away)."""
    if attempt >= max_retries:
        return None
    wait = 0.5 * (2**attempt) if retry_after is None else retry_after
    if wait > max_retry_wait or wait >= time_left:
        return None
    return wait


def retry_line(failure: ShenmaError, host: str, wait: float, attempt: int, max_retries: int) -> str:
    """The one line that announces retry number ``attempt``: "HTTP 429 from host: retrying in 2.0 s (1/2)"."""
    if isinstance(failure, APIStatusError):
        what = f"HTTP {failure.status_code} from {host}"
    else:
        what = failure.message
    return f"{what}: retrying in {wait:.1f} s ({attempt}/{max_retries})"
