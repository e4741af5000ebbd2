"""One turn: pull deltas from a stream, feed a view at a bounded rate, and end with a :class:`Reply`.

Nothing here knows about IPython or HTTP: the stream is any iterator of deltas, the view any object with
``on_delta``/``refresh``/``finish``; so the policy (throttling, status, what an interrupt keeps) is tested
without a kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Optional

from ._display import View
from ._errors import ShenmaError
from ._models import Delta, MetaDelta, ReasoningDelta, Reply, ReplyBuilder, TextDelta, ToolCallDelta
from ._render import status_text

__all__ = ["INTERRUPTED", "TurnResult", "run_turn"]

INTERRUPTED = "interrupted (Ctrl-C): the partial answer is kept"


class TurnResult:
    __slots__ = ("exception", "first_token", "interrupted", "reply", "status")

    def __init__(
        self,
        reply: Reply,
        status: str,
        interrupted: bool,
        first_token: Optional[float],
        exception: Optional[ShenmaError],
    ) -> None:
        self.reply = reply
        self.status = status
        self.interrupted = interrupted
        self.first_token = first_token
        self.exception = exception


def run_turn(
    stream: Iterator[Delta],
    view: View,
    *,
    model: str,
    interval: float = 0.075,
    clock: Callable[[], float] = time.monotonic,
    builder: Optional[ReplyBuilder] = None,
) -> TurnResult:
    """Consume ``stream`` into ``view``; never raises for server or transport errors, nor for Ctrl-C."""
    builder = builder or ReplyBuilder()
    start = clock()
    first: Optional[float] = None
    last_refresh = float("-inf")
    exception: Optional[ShenmaError] = None
    interrupted = False
    shown_model = model

    def status(state: str = "") -> str:
        return status_text(
            model=shown_model,
            elapsed=clock() - start,
            first_token=first,
            usage=builder.usage,
            chars=builder.chars,
            finish_reason=builder.finish_reason,
            state=state,
        )

    try:
        for delta in stream:
            builder.add(delta)
            view.on_delta(delta)
            if first is None and isinstance(delta, (TextDelta, ReasoningDelta, ToolCallDelta)):
                first = clock() - start
            elif isinstance(delta, MetaDelta) and delta.model:
                shown_model = delta.model
            now = clock()
            if now - last_refresh >= interval:
                last_refresh = now
                view.refresh(status("streaming…"))
    except ShenmaError as exc:
        exception = exc
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # closes the HTTP response now, not when the generator is garbage-collected
    error = str(exception) if exception is not None else (INTERRUPTED if interrupted else None)
    reply = builder.build(error=error, interrupted=interrupted)
    if interrupted:
        state = "interrupted"
    elif exception is not None:
        state = "failed"
    elif not reply.complete:
        state = "incomplete: the answer may be cut off"
    else:
        state = ""
    final_status = status(state)
    try:
        view.finish(reply, final_status)
    except KeyboardInterrupt:
        # A second Ctrl-C while the final output is written must not leave the live view behind.
        view.finish(reply, final_status)
        interrupted = True
    return TurnResult(reply, final_status, interrupted, first, exception)
