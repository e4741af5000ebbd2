"""One turn: pull deltas from a stream, feed a view at a bounded rate, and end with a :class:`Reply`;
and a chat turn with tool-call rounds on top of it. Pure policy: the tools it runs are the only code it
calls that is not passed in.

Nothing here knows about IPython or HTTP: the stream is any iterator of deltas, the view any object with
``on_delta``/``refresh``/``finish``, the user's yes/no a callable, the clock injectable; so the policy
(throttling, status, what an interrupt keeps, when a tool may run) is tested without a kernel
(``tests/test_run.py``).

A turn with tool calls takes several requests ("rounds"). Each round has its own view, so its tool-call
lines show where they happened, but only the turn's last round carries a status line with figures: the
tokens and cost of every round added up. The rounds before it say only :data:`CALLING_TOOLS`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

from ._display import View
from ._errors import ShenmaError
from ._models import Delta, MetaDelta, ReasoningDelta, Reply, ReplyBuilder, TextDelta, ToolCallDelta
from ._pricing import format_money
from ._secret import excerpt, mask_known
from ._status import status_text
from ._toolreg import ToolRegistry
from ._toolrun import Message, ToolError, describe_call, parse_arguments, run_tool, tool_messages

__all__ = [
    "CALLING_TOOLS",
    "CUT_AT_LIMIT",
    "INTERRUPTED",
    "INTERRUPTED_EARLY",
    "MESSAGES_PER_SECOND",
    "ChatTurn",
    "Measure",
    "Measurer",
    "Tokens",
    "TurnResult",
    "run_chat",
    "run_turn",
]

INTERRUPTED = "interrupted (Ctrl-C): the partial answer is kept"
INTERRUPTED_EARLY = "interrupted (Ctrl-C) before any answer arrived"
# The status of a round that ends in tool calls the turn goes on to run: its figures are in the last one's.
CALLING_TOOLS = "calling tools…"
CUT_AT_LIMIT = "cut at the token limit"
_STREAMING = "streaming…"
_LOSSY = "incomplete: malformed events were skipped"
_UNFINISHED = "incomplete: the answer may be cut off"
_TOOL_FINISHES = ("tool_calls", "function_call")


class Tokens(NamedTuple):
    """Token counts of a reply; ``estimated`` when the server did not report them all."""

    prompt: int
    completion: int
    estimated: bool


class Measure(NamedTuple):
    """What a reply has used so far: its tokens (None if unknown) and cost (None if unpriced)."""

    tokens: Optional[Tokens]
    cost: Optional[float] = None


# From what a reply holds so far to what it has used; the front door's pricing and estimates.
Measurer = Callable[[ReplyBuilder], Measure]
# The older form: ((prompt, completion, estimated) or None, cost text). Its costs cannot be added up, so a
# turn of several rounds shows no cost; pass ``measure`` and ``money`` instead.
LegacyTokenInfo = Callable[[ReplyBuilder], tuple[Optional[tuple[int, int, bool]], str]]


def _server_tokens(builder: ReplyBuilder) -> Measure:
    usage = builder.usage or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Measure(Tokens(prompt, completion, False))
    return Measure(None)


@dataclass(frozen=True)
class TurnResult:
    """How one round ended.

    Attributes:
        reply: the reply, partial if the round was interrupted or failed.
        interrupted: the user pressed Ctrl-C (while streaming, or while the output was written).
        exception: the server or transport error that ended the round, if any.
        used: the round's tokens and cost; None if it produced nothing to count.
    """

    reply: Reply
    interrupted: bool
    exception: Optional[ShenmaError]
    used: Optional[Measure]


class ChatTurn(NamedTuple):
    """A user turn: its last round, and the intermediate messages (the assistant's tool calls and the
    tools' results) to keep in the conversation before the final answer."""

    result: TurnResult
    messages: list[Message]


class _Used(NamedTuple):
    measure: Measure
    cost_text: str  # the cost as shown ("" if none)


class _RoundEnd(NamedTuple):
    reply: Reply
    builder: ReplyBuilder
    interrupted: bool
    exception: Optional[ShenmaError]


def _total(used: Sequence[_Used], money: Callable[[float], str]) -> _Used:
    """The rounds' figures added up: tokens only if every round's are known, cost only if every round's is
    priced (a cost text of the legacy form only when there is one round)."""
    if not used:
        return _Used(Measure(None), "")
    counts = [u.measure.tokens for u in used]
    tokens = None
    if all(c is not None for c in counts):
        known = [c for c in counts if c is not None]
        tokens = Tokens(
            sum(c.prompt for c in known), sum(c.completion for c in known), any(c.estimated for c in known)
        )
    costs = [u.measure.cost for u in used]
    cost = sum(c for c in costs if c is not None) if all(c is not None for c in costs) else None
    # A legacy cost text cannot be added up: shown only when it is the turn's only one.
    legacy = used[0].cost_text if len(used) == 1 else ""
    text = money(cost) if cost is not None else legacy
    return _Used(Measure(tokens, cost), text)


MESSAGES_PER_SECOND = 20
"""Display messages a view may send in any one second of a reply. A live view's refresh sends one
message, or two when blocks finished (a new tail output, the old one's final content): one refresh per
update interval sent up to 27 a second then. That leaves about ten refreshes a second even when each sends
two (the bench's mixed reply: 18 messages and 10 refreshes a second)."""
_MOST_PER_REFRESH = 3  # the reasoning line, a new tail output, the old tail's finished blocks


class _MessageWindow:
    """The messages views sent in the last second: a refresh waits while its messages might not fit."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def room(self, now: float) -> bool:
        times = self._times
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times) + _MOST_PER_REFRESH <= MESSAGES_PER_SECOND

    def sent(self, now: float, count: int) -> None:
        self._times.extend([now] * count)


class _Turn:
    """The figures of a turn across its rounds: start time, first token, what each round used."""

    def __init__(
        self,
        *,
        model: str,
        clock: Callable[[], float],
        measure: Callable[[ReplyBuilder], _Used],
        money: Callable[[float], str],
        describe: Callable[[ShenmaError], str] = str,
    ) -> None:
        self.model = model
        self.clock = clock
        self._measure = measure
        self._money = money
        # How an error reads in the reply (and the view): the front door words its own advice.
        self.describe = describe
        self.start = clock()
        self.first_token: Optional[float] = None
        self.used: list[_Used] = []
        self.rounds = 0  # finished requests

    def measure(self, builder: ReplyBuilder) -> Optional[_Used]:
        # Nothing generated yet (or a request that failed before any token): no counts, no cost.
        if not (builder.has_output or builder.usage):
            return None
        return self._measure(builder)

    def status(self, builder: ReplyBuilder, *, state: list[str], finish_reason: Optional[str]) -> str:
        current = self.measure(builder)
        total = _total([*self.used, *([current] if current else [])], self._money)
        parts = list(state)
        if self.rounds:
            parts.append(f"{self.rounds + 1} requests")
        return status_text(
            model=mask_known(self.model),  # the name the user or the server gave: a key shows masked
            elapsed=self.clock() - self.start,
            # Over several rounds, "first token" and tok/s would count the tools' run time as generation.
            first_token=self.first_token if not self.rounds else None,
            tokens=total.measure.tokens,
            cost=total.cost_text,
            finish_reason=finish_reason,
            state=" · ".join(parts),
        )

    def stream(self, stream: Iterator[Delta], view: View, *, interval: float) -> _RoundEnd:
        """Feed one round's deltas to ``view``; never raises for server or transport errors, nor Ctrl-C."""
        builder = ReplyBuilder()
        seen_output = False
        last_refresh = float("-inf")
        messages = _MessageWindow()
        exception: Optional[ShenmaError] = None
        interrupted = False
        try:
            for delta in stream:
                builder.add(delta)
                view.on_delta(delta)
                if not seen_output and isinstance(delta, (TextDelta, ReasoningDelta, ToolCallDelta)):
                    seen_output = True
                    if not self.rounds:
                        self.first_token = self.clock() - self.start
                    last_refresh = float("-inf")  # show the first words now, not one interval later
                elif isinstance(delta, MetaDelta) and delta.model:
                    self.model = delta.model
                now = self.clock()
                if now - last_refresh >= interval and messages.room(now):
                    last_refresh = now
                    sent = view.refresh(self.status(builder, state=[_STREAMING], finish_reason=None))
                    messages.sent(now, sent or 0)
        except ShenmaError as exc:
            exception = exc
        except KeyboardInterrupt:
            interrupted = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # closes the HTTP response now, not when the generator is garbage-collected
        if exception is not None:
            error: Optional[str] = self.describe(exception)
        elif interrupted:
            error = INTERRUPTED if builder.has_output else INTERRUPTED_EARLY
        else:
            error = None
        reply = builder.build(error=error, interrupted=interrupted)
        return _RoundEnd(reply, builder, interrupted, exception)

    def final_status(self, end: _RoundEnd) -> str:
        """The status line of the turn's last round: how it ended, with the turn's figures."""
        reply = end.reply
        finish_reason = reply.finish_reason
        if end.interrupted:
            state = ["interrupted"]
        elif end.exception is not None:
            state = ["failed"]
        else:
            state = []
            called_tools = bool(reply.tool_calls) and finish_reason in _TOOL_FINISHES
            if finish_reason == "length":
                # TODO(merge): reply.truncated once Reply has it.
                state.append(CUT_AT_LIMIT)
                finish_reason = None  # said in words; "finish: length" as well would say it twice
            elif not (reply.complete or reply.lossy or called_tools):
                state.append(_UNFINISHED)
            if reply.lossy:
                state.append(_LOSSY)
        return self.status(end.builder, state=state, finish_reason=finish_reason)

    def close_round(self, end: _RoundEnd) -> Optional[Measure]:
        used = self.measure(end.builder)
        if used is not None:
            self.used.append(used)
        self.rounds += 1
        return used.measure if used is not None else None


def _finish(view: View, reply: Reply, status: str) -> bool:
    """Leave the round's final output; True if a second Ctrl-C came while it was written."""
    try:
        view.finish(reply, status)
    except KeyboardInterrupt:
        # A second Ctrl-C while the final output is written must not leave the live view behind.
        view.finish(reply, status)
        return True
    return False


def _measurer(
    measure: Optional[Measurer], tokens: Optional[LegacyTokenInfo], money: Callable[[float], str]
) -> Callable[[ReplyBuilder], _Used]:
    if measure is None and tokens is not None:
        legacy = tokens

        def from_legacy(builder: ReplyBuilder) -> _Used:
            counts, text = legacy(builder)
            return _Used(Measure(Tokens(*counts) if counts is not None else None), text)

        return from_legacy
    chosen = measure if measure is not None else _server_tokens

    def measured(builder: ReplyBuilder) -> _Used:
        m = chosen(builder)
        return _Used(m, money(m.cost) if m.cost is not None else "")

    return measured


def run_turn(
    stream: Iterator[Delta],
    view: View,
    *,
    model: str,
    interval: float = 0.075,
    clock: Callable[[], float] = time.monotonic,
    measure: Optional[Measurer] = None,
    money: Callable[[float], str] = format_money,
    tokens: Optional[LegacyTokenInfo] = None,
    describe: Callable[[ShenmaError], str] = str,
) -> TurnResult:
    """Consume ``stream`` into ``view`` and finish it with the status line; never raises for server or
    transport errors, nor for Ctrl-C.

    ``measure`` gives the tokens and cost of what has arrived (default: the server's usage, unpriced) and
    ``money`` shows a cost; ``tokens`` is the older form of ``measure``.
    """
    turn = _Turn(
        model=model, clock=clock, measure=_measurer(measure, tokens, money), money=money, describe=describe
    )
    end = turn.stream(stream, view, interval=interval)
    twice = _finish(view, end.reply, turn.final_status(end))
    used = turn.close_round(end)
    return TurnResult(end.reply, end.interrupted or twice, end.exception, used)


def _answer_calls(
    reply: Reply, tools: ToolRegistry, ask: Callable[[str], bool], notify: Callable[[str], None]
) -> list[str]:
    """Run the calls of one round that may run; one result text per call, in order."""
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
            outcome = run_tool(tool, parse_arguments(arguments))
        except ToolError as exc:
            text, ok = f"error: {exc.message}", False
        else:
            text, ok = outcome
        results.append(text)
        notify(f"{'ran' if ok else 'failed'}: {shown} → {excerpt(text, 160)}")
    return results


def run_chat(
    send: Callable[[list[Message]], Iterator[Delta]],
    messages: Sequence[Message],
    *,
    make_view: Callable[[], View],
    model: str,
    tools: Optional[ToolRegistry] = None,
    ask: Callable[[str], bool] = lambda question: False,
    notify: Callable[[str], None] = lambda line: None,
    interval: float = 0.075,
    max_rounds: int = 5,
    clock: Callable[[], float] = time.monotonic,
    measure: Optional[Measurer] = None,
    money: Callable[[float], str] = format_money,
    tokens: Optional[LegacyTokenInfo] = None,
    on_round: Callable[[TurnResult], None] = lambda result: None,
    describe: Callable[[ShenmaError], str] = str,
) -> ChatTurn:
    """A user turn: stream a reply; while the model asks for tools, run the allowed ones and stream again.

    Returns the last round's result and the intermediate messages (assistant tool calls and tool results)
    to keep in the conversation. A tool runs only if it is registered as trusted or ``ask`` says yes; a
    refused, unknown or failing call sends its reason back to the model as the tool's result. Each round
    gets a view of its own from ``make_view``; only the last one's status line has figures, those of the
    whole turn. ``on_round`` sees every round, to bill each.
    """
    turn = _Turn(
        model=model, clock=clock, measure=_measurer(measure, tokens, money), money=money, describe=describe
    )
    extra: list[Message] = []
    tool_rounds = 0
    while True:
        view = make_view()
        end = turn.stream(send([*messages, *extra]), view, interval=interval)
        reply = end.reply
        wants_tools = end.exception is None and not end.interrupted and bool(reply.tool_calls)
        goes_on = wants_tools and tools is not None and tool_rounds < max_rounds
        twice = _finish(view, reply, CALLING_TOOLS if goes_on else turn.final_status(end))
        result = TurnResult(reply, end.interrupted or twice, end.exception, turn.close_round(end))
        on_round(result)  # every round is billed, not only the last
        if not goes_on or twice or tools is None:
            if wants_tools and tools is not None and tool_rounds >= max_rounds:
                notify(f"stopped after {max_rounds} rounds of tool calls; the model may not have finished")
            return ChatTurn(result, extra)
        tool_rounds += 1
        try:
            results = _answer_calls(reply, tools, ask, notify)
        except KeyboardInterrupt:
            # Ctrl-C in a tool (or a tool raising KeyboardInterrupt) stops the turn as Ctrl-C while
            # streaming does: one line, and what came before this round is kept.
            notify("interrupted (Ctrl-C) while a tool ran: its result was not sent")
            return ChatTurn(replace(result, interrupted=True), extra)
        extra.extend(tool_messages(reply.tool_calls, results, content=reply.text or None))
