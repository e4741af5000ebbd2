"""One turn: pull deltas from a stream, feed a view at a bounded rate, and end with a :class:`Reply`;
and a chat turn with tool-call rounds on top of it.

Nothing here knows about IPython or HTTP: the stream is any iterator of deltas, the view any object with
``on_delta``/``refresh``/``finish``, the user's yes/no a callable; so the policy (throttling, status, what
an interrupt keeps, when a tool may run) is tested without a kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

from ._display import View
from ._errors import ShenmaError
from ._models import Delta, MetaDelta, ReasoningDelta, Reply, ReplyBuilder, TextDelta, ToolCallDelta
from ._secret import excerpt
from ._status import status_text
from ._toolreg import ToolRegistry
from ._toolrun import ToolError, describe_call, parse_arguments, run_tool, tool_messages

__all__ = ["INTERRUPTED", "TokenInfo", "TurnResult", "run_chat", "run_turn"]

INTERRUPTED = "interrupted (Ctrl-C): the partial answer is kept"

# (prompt tokens, completion tokens, estimated?) and a cost text, from what a reply has so far.
TokenInfo = Callable[[ReplyBuilder], tuple[Optional[tuple[int, int, bool]], str]]


def _server_tokens(builder: ReplyBuilder) -> tuple[Optional[tuple[int, int, bool]], str]:
    usage = builder.usage or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return (prompt, completion, False), ""
    return None, ""


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
    tokens: TokenInfo = _server_tokens,
) -> TurnResult:
    """Consume ``stream`` into ``view``; never raises for server or transport errors, nor for Ctrl-C."""
    builder = ReplyBuilder()
    start = clock()
    first: Optional[float] = None
    last_refresh = float("-inf")
    exception: Optional[ShenmaError] = None
    interrupted = False
    shown_model = model

    def status(state: str = "") -> str:
        # Nothing generated yet (or a request that failed before any token): no counts, no cost.
        counts, cost = tokens(builder) if builder.has_output or builder.usage else (None, "")
        return status_text(
            model=shown_model,
            elapsed=clock() - start,
            first_token=first,
            tokens=counts,
            cost=cost,
            finish_reason=builder.finish_reason,
            state=state,
        )

    try:
        for delta in stream:
            builder.add(delta)
            view.on_delta(delta)
            if first is None and isinstance(delta, (TextDelta, ReasoningDelta, ToolCallDelta)):
                first = clock() - start
                last_refresh = float("-inf")  # show the first words now, not one interval later
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
    elif reply.tool_calls and reply.finish_reason in ("tool_calls", "function_call"):
        state = ""
    elif not reply.complete:
        state = (
            "incomplete: malformed events were skipped"
            if reply.lossy
            else "incomplete: the answer may be cut off"
        )
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


def run_chat(
    send: Callable[[list[dict[str, Any]]], Iterator[Delta]],
    messages: Sequence[dict[str, Any]],
    *,
    make_view: Callable[[], View],
    model: str,
    tools: Optional[ToolRegistry] = None,
    ask: Callable[[str], bool] = lambda question: False,
    notify: Callable[[str], None] = lambda line: None,
    interval: float = 0.075,
    max_rounds: int = 5,
    tokens: TokenInfo = _server_tokens,
    on_round: Callable[[TurnResult], None] = lambda result: None,
) -> tuple[TurnResult, list[dict[str, Any]]]:
    """A user turn: stream a reply; while the model asks for tools, run the allowed ones and stream again.

    Returns the last round's result and the intermediate messages (assistant tool calls and tool results)
    to keep in the conversation. A tool runs only if it is registered as trusted or ``ask`` says yes; a
    refused, unknown or failing call sends its reason back to the model as the tool's result.
    """
    extra: list[dict[str, Any]] = []
    rounds = 0
    while True:
        result = run_turn(
            send([*messages, *extra]), make_view(), model=model, interval=interval, tokens=tokens
        )
        on_round(result)  # every round is billed, not only the last
        reply = result.reply
        if result.interrupted or result.exception is not None or not reply.tool_calls or tools is None:
            return result, extra
        if rounds >= max_rounds:
            notify(f"stopped after {max_rounds} rounds of tool calls; the model may not have finished")
            return result, extra
        rounds += 1
        results: list[str] = []
        for call in reply.tool_calls:
            function = call.get("function") or {}
            name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
            shown = describe_call(name, arguments)
            tool = tools.get(name)
            if tool is None:
                results.append(f"error: there is no tool named {name!r}")
                notify(f"the model asked for an unknown tool: {shown}")
                continue
            if not tool.trusted:
                try:
                    allowed = ask(f"Run {shown}? [y/N] ")
                except KeyboardInterrupt:
                    allowed = False
                if not allowed:
                    results.append("error: the user did not allow this call")
                    notify(f"not run: {shown}")
                    continue
            try:
                output, ok = run_tool(tool, parse_arguments(arguments))
            except ToolError as exc:
                output, ok = f"error: {exc.message}", False
            results.append(output)
            notify(f"{'ran' if ok else 'failed'}: {shown} → {excerpt(output, 160)}")
        extra.extend(tool_messages(reply.tool_calls, results, content=reply.text or None))
