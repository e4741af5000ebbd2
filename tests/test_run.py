"""The turn policy (``_run.py``) without a kernel: a fake stream of deltas on a fake clock, a view that
records what it was told. Throttling, how a turn ends, what Ctrl-C keeps, tool-call rounds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._errors import ShenmaError
from shenma_magic._models import (
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
from shenma_magic._run import (
    CALLING_TOOLS,
    CUT_AT_LIMIT,
    INTERRUPTED,
    INTERRUPTED_EARLY,
    MESSAGES_PER_SECOND,
    Measure,
    Tokens,
    TurnResult,
    run_chat,
    run_turn,
)
from shenma_magic._toolreg import ToolRegistry

# -- fakes ---------------------------------------------------------------------------------------------------


class Clock:
    """Time that moves only when the fake stream says so."""

    def __init__(self) -> None:
        self.now = 100.0  # not 0: nothing may assume the clock starts at zero

    def __call__(self) -> float:
        return self.now


Step = Union[Delta, BaseException, float]  # a delta to yield, an exception to raise, or a time to move to


class FakeStream:
    """An iterator of deltas with ``close()``, as ``ChatClient.stream`` returns; records being closed."""

    def __init__(self, steps: Sequence[Step], clock: Optional[Clock] = None) -> None:
        self._steps = list(steps)
        self._clock = clock
        self.closed = False
        self.pulled = 0

    def __iter__(self) -> Iterator[Delta]:
        return self

    def __next__(self) -> Delta:
        while self._steps:
            step = self._steps.pop(0)
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, float):
                assert self._clock is not None
                self._clock.now = step
                continue
            self.pulled += 1
            return step
        raise StopIteration

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeView:
    """Records every call; ``interrupt_finish`` raises KeyboardInterrupt from that many first finishes."""

    clock: Optional[Clock] = None
    interrupt_on: Optional[str] = None  # "delta" or "refresh": raise KeyboardInterrupt there, once
    interrupt_finish: int = 0
    deltas: list[Delta] = field(default_factory=list)
    refreshes: list[tuple[float, str]] = field(default_factory=list)
    finishes: list[tuple[Reply, str]] = field(default_factory=list)
    sends: Optional[int] = None  # the display messages each refresh says it sent

    def on_delta(self, delta: Delta) -> None:
        self.deltas.append(delta)
        if self.interrupt_on == "delta":
            self.interrupt_on = None
            raise KeyboardInterrupt

    def refresh(self, status: str) -> Optional[int]:
        self.refreshes.append((self.clock() if self.clock else 0.0, status))
        if self.interrupt_on == "refresh":
            self.interrupt_on = None
            raise KeyboardInterrupt
        return self.sends

    def finish(self, reply: Reply, status: str) -> None:
        self.finishes.append((reply, status))
        if self.interrupt_finish:
            self.interrupt_finish -= 1
            raise KeyboardInterrupt

    @property
    def status(self) -> str:
        assert len(self.finishes) == 1, self.finishes
        return self.finishes[0][1]


def text(*pieces: str) -> list[Step]:
    return [TextDelta(p) for p in pieces]


def usage(prompt: int, completion: int) -> UsageDelta:
    return UsageDelta({"prompt_tokens": prompt, "completion_tokens": completion})


def call(name: str, arguments: str, index: int = 0, call_id: Optional[str] = None) -> list[Step]:
    """A tool call as streams send it: the name first, the arguments in two pieces."""
    cut = len(arguments) // 2
    return [
        ToolCallDelta(index, call_id or f"call_{index}", name, ""),
        ToolCallDelta(index, None, None, arguments[:cut]),
        ToolCallDelta(index, None, None, arguments[cut:]),
    ]


def one_turn(steps: Sequence[Step], **kwargs: Any) -> tuple[TurnResult, FakeView, FakeStream]:
    clock = Clock()
    stream = FakeStream(steps, clock)
    view = FakeView(clock)
    result = run_turn(stream, view, model="m", clock=clock, **kwargs)
    return result, view, stream


# -- throttling ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=0.3), min_size=1, max_size=60),
    interval=st.floats(min_value=0.01, max_value=0.5),
    lead=st.integers(min_value=0, max_value=3),
)
def test_refreshes_at_most_every_interval_but_never_starve(
    gaps: list[float], interval: float, lead: int
) -> None:
    # ``lead`` deltas that show nothing (model name, notices) come before the first words.
    clock = Clock()
    steps: list[Step] = []
    arrivals: list[float] = []
    now = clock.now
    for i, gap in enumerate(gaps):
        now += gap
        steps.append(now)
        steps.append(MetaDelta("m", "id") if i < lead else TextDelta("x"))
        arrivals.append(now)
    view = FakeView(clock)
    run_turn(FakeStream(steps, clock), view, model="m", clock=clock, interval=interval)
    times = [t for t, _ in view.refreshes]
    first_words = arrivals[lead] if lead < len(arrivals) else None
    assert times and times[0] == arrivals[0]  # the first delta is shown at once
    assert set(times) <= set(arrivals)
    for before, after in itertools.pairwise(times):
        # Closer than the interval only for the first words, which must not wait for the next tick.
        assert after - before >= interval or after == first_words
    if first_words is not None:
        assert first_words in times
    for arrival in arrivals:
        # Liveness: a delta arriving an interval or more after the last refresh gets one.
        previous = [t for t in times if t < arrival]
        if previous and arrival - previous[-1] >= interval:
            assert arrival in times


@settings(max_examples=100, deadline=None)
@given(
    sends=st.integers(min_value=0, max_value=3),
    # Binary fractions of a second, so that the fake times compare exactly.
    gap=st.sampled_from([1 / 1024, 1 / 128, 1 / 64, 1 / 32]),
    interval=st.sampled_from([1 / 128, 1 / 32, 5 / 64, 3 / 32]),
)
def test_refreshes_are_paced_by_the_messages_they_send(sends: int, gap: float, interval: float) -> None:
    """A live view's refresh sends two messages when blocks finished: refreshes wait while the messages of
    the last second would pass MESSAGES_PER_SECOND, and come as often as the interval allows otherwise."""
    clock = Clock()
    steps: list[Step] = []
    for i in range(int(4 / gap)):  # 4 seconds of deltas
        steps += [100.0 + i * gap, TextDelta("x")]
    view = FakeView(clock, sends=sends)
    run_turn(FakeStream(steps, clock), view, model="m", clock=clock, interval=interval)
    times = [t for t, _ in view.refreshes]
    for t in times:
        assert sends * sum(t <= u < t + 1.0 for u in times) <= MESSAGES_PER_SECOND
    per_second = len(times) / (times[-1] - times[0])
    # As often as the interval and the deltas allow, but for the messages: ten a second at two each.
    expected = min(1 / max(interval, gap), (MESSAGES_PER_SECOND - 1) / sends if sends else float("inf"))
    assert per_second >= 0.8 * expected
    assert sends != 2 or per_second >= 9  # a refresh that finished blocks sends two


def test_first_words_show_at_once_even_with_a_long_interval() -> None:
    steps: list[Step] = [100.0, MetaDelta("m", "1"), 100.01, TextDelta("hi"), 100.02, TextDelta("!")]
    _, view, _ = one_turn(steps, interval=60)
    assert [t for t, _ in view.refreshes] == [100.0, 100.01]
    assert "streaming…" in view.refreshes[-1][1]
    assert view.deltas[1:] == [TextDelta("hi"), TextDelta("!")]


def test_first_token_time_is_from_the_start_of_the_turn() -> None:
    _, view, _ = one_turn([100.5, MetaDelta("m", "1"), 101.25, TextDelta("hi"), 102.0, FinishDelta("stop")])
    assert "first token 1.2 s" in view.status and "2.0 s" in view.status  # one decimal from 1 s on


# -- how a turn ends -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "shown", "not_shown", "complete"),
    [
        ([FinishDelta("stop")], [], ["incomplete", "finish", "interrupted", "failed"], True),
        ([], ["incomplete: the answer may be cut off"], ["malformed"], False),
        ([FinishDelta("length")], [CUT_AT_LIMIT], ["finish: length", "incomplete"], None),
        ([NoticeDelta("skipped a bad event", lossy=True), FinishDelta("stop")],
         ["incomplete: malformed events were skipped"], ["may be cut off"], False),
        ([NoticeDelta("a note"), FinishDelta("stop")], [], ["incomplete"], True),
        ([NoticeDelta("bad", lossy=True), FinishDelta("length")],
         [CUT_AT_LIMIT, "malformed events were skipped"], ["finish: length"], False),
        ([FinishDelta("content_filter")], ["finish: content_filter"], ["incomplete"], True),
        ([ShenmaError("the relay said no", "try later")], ["failed"], ["incomplete", "interrupted"], False),
        ([KeyboardInterrupt()], ["interrupted"], ["incomplete", "failed"], False),
    ],
)  # fmt: skip
def test_status_says_how_the_reply_ended(
    ending: list[Step], shown: list[str], not_shown: list[str], complete: Optional[bool]
) -> None:
    result, view, stream = one_turn([*text("partial ", "answer"), *ending])
    reply, status = view.finishes[0]
    assert reply is result.reply and reply == "partial answer"  # whatever happened, the text is kept
    for fragment in shown:
        assert fragment in status
    for fragment in not_shown:
        assert fragment not in status
    if complete is not None:  # a reply cut at the limit may count as complete or not (its own flag)
        assert reply.complete is complete
    assert stream.closed


def test_a_failure_keeps_its_exception_and_message() -> None:
    error = ShenmaError("the relay said no", "try later")
    result, _, _ = one_turn([*text("half"), error])
    assert result.exception is error and not result.interrupted
    assert result.reply.error == "the relay said no — try later"
    assert result.reply == "half"


def test_what_an_interrupt_keeps() -> None:
    result, _, stream = one_turn([*text("half an ", "answer"), KeyboardInterrupt(), *text("never")])
    assert result.interrupted and result.exception is None
    assert result.reply == "half an answer" and not result.reply.complete
    assert result.reply.error == INTERRUPTED
    assert stream.closed and stream.pulled == 2  # nothing read after the interrupt


def test_an_interrupt_before_any_answer_does_not_promise_a_partial_answer() -> None:
    result, _, _ = one_turn([MetaDelta("m", "1"), KeyboardInterrupt()])
    assert result.reply == "" and result.reply.error == INTERRUPTED_EARLY
    assert "kept" not in INTERRUPTED_EARLY


@pytest.mark.parametrize("where", ["delta", "refresh"])
def test_ctrl_c_inside_the_view_counts_as_an_interrupt(where: str) -> None:
    clock = Clock()
    stream = FakeStream(text("a", "b", "c"), clock)
    view = FakeView(clock, interrupt_on=where)
    result = run_turn(stream, view, model="m", clock=clock)
    assert result.interrupted and stream.closed
    assert len(view.finishes) == 1 and view.finishes[0][0] == "a"


def test_a_second_ctrl_c_while_finishing_still_leaves_the_final_output() -> None:
    clock = Clock()
    view = FakeView(clock, interrupt_finish=1)
    result = run_turn(FakeStream([*text("done"), FinishDelta("stop")], clock), view, model="m", clock=clock)
    assert result.interrupted  # the user wanted to stop: the front door stops "Run All"
    assert len(view.finishes) == 2 and view.finishes[0] == view.finishes[1]
    assert result.reply.complete  # the reply itself was whole


@pytest.mark.parametrize(
    "ending",
    [[], [ShenmaError("x")], [KeyboardInterrupt()], [FinishDelta("stop")]],
)
def test_the_stream_is_always_closed(ending: list[Step]) -> None:
    _, _, stream = one_turn([*text("a"), *ending])
    assert stream.closed


def test_the_stream_is_closed_even_when_a_bug_escapes() -> None:
    clock = Clock()
    stream = FakeStream([*text("a"), ValueError("a bug, not a server error")], clock)
    with pytest.raises(ValueError):
        run_turn(stream, FakeView(clock), model="m", clock=clock)
    assert stream.closed


def test_the_model_named_by_the_server_is_shown() -> None:
    _, view, _ = one_turn([MetaDelta("gpt-4o-mini-2024-07-18", "1"), *text("hi"), FinishDelta("stop")])
    assert view.status.startswith("gpt-4o-mini-2024-07-18 · ")


def test_nothing_counted_for_a_request_that_failed_before_any_token() -> None:
    result, view, _ = one_turn([ShenmaError("401")], measure=lambda b: Measure(Tokens(99, 0, True), 1.0))
    assert "tokens" not in view.status and "¥" not in view.status
    assert result.used is None


def test_server_usage_is_shown_by_default_and_priced_by_measure() -> None:
    _, view, _ = one_turn([*text("hi"), FinishDelta("stop"), usage(12, 3)])
    assert "12 → 3 tokens" in view.status and "estimated" not in view.status
    result, view, _ = one_turn(
        [*text("hi"), FinishDelta("stop")],
        measure=lambda b: Measure(Tokens(7, len(b.text), True), 0.5),
        money=lambda c: f"${c:.2f}",
    )
    assert "~7 → ~2 tokens (estimated)" in view.status and "$0.50" in view.status
    assert result.used == Measure(Tokens(7, 2, True), 0.5)


def test_the_legacy_token_info_still_shows_its_cost() -> None:
    def legacy(builder: ReplyBuilder) -> tuple[Optional[tuple[int, int, bool]], str]:
        return (5, len(builder.text), False), "¥0.01"

    _, view, _ = one_turn([*text("abc"), FinishDelta("stop")], tokens=legacy)
    assert "5 → 3 tokens" in view.status and "¥0.01" in view.status


# -- tool-call rounds ----------------------------------------------------------------------------------------


@dataclass
class Chat:
    """A scripted model: one list of steps per request; records what it was sent and every view made."""

    rounds: list[list[Step]]
    clock: Clock = field(default_factory=Clock)
    sent: list[list[dict[str, Any]]] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    views: list[FakeView] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    billed: list[TurnResult] = field(default_factory=list)

    def send(self, messages: list[dict[str, Any]]) -> Iterator[Delta]:
        self.sent.append(json.loads(json.dumps(messages)))  # a copy, as a request body would be
        steps = self.rounds[len(self.sent) - 1] if len(self.sent) <= len(self.rounds) else self.rounds[-1]
        stream = FakeStream(steps, self.clock)
        self.streams.append(stream)
        return stream

    def view(self) -> FakeView:
        self.views.append(FakeView(self.clock))
        return self.views[-1]

    def run(self, tools: Optional[ToolRegistry], **kwargs: Any) -> Any:
        return run_chat(
            self.send,
            [{"role": "user", "content": "q"}],
            make_view=self.view,
            model="m",
            tools=tools,
            notify=self.notices.append,
            on_round=self.billed.append,
            clock=self.clock,
            **kwargs,
        )


def asks_for(name: str, arguments: str, *, prompt: int = 10, completion: int = 5) -> list[Step]:
    return [*call(name, arguments), FinishDelta("tool_calls"), usage(prompt, completion)]


def answers(words: str, *, prompt: int = 20, completion: int = 7) -> list[Step]:
    return [*text(words), FinishDelta("stop"), usage(prompt, completion)]


def weather_tools(*, trusted: bool = True) -> tuple[ToolRegistry, list[str]]:
    ran: list[str] = []
    registry = ToolRegistry()

    def weather(city: str) -> dict[str, str]:
        """The weather."""
        ran.append(city)
        return {"city": city, "sky": "晴"}

    registry.add(weather, trusted=trusted)
    return registry, ran


def test_a_trusted_tool_runs_and_its_result_goes_back() -> None:
    tools, ran = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "北京"}'), answers("北京晴。")])
    result, messages = chat.run(tools, ask=lambda q: pytest.fail("a trusted tool must not ask"))
    assert ran == ["北京"] and result.reply == "北京晴。"
    assert chat.sent[1][1:] == messages
    assistant, tool_result = messages
    assert assistant["role"] == "assistant" and assistant["content"] is None  # None is what the API wants
    assert assistant["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "北京"}'}
    assert tool_result == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": '{"city": "北京", "sky": "晴"}',
    }
    assert chat.notices == ['ran: weather(city="北京") → {"city": "北京", "sky": "晴"}']
    assert all(s.closed for s in chat.streams)


@pytest.mark.parametrize("answer", [True, False, KeyboardInterrupt()])
def test_an_untrusted_tool_asks_first(answer: Union[bool, KeyboardInterrupt]) -> None:
    tools, ran = weather_tools(trusted=False)
    questions: list[str] = []

    def ask(question: str) -> bool:
        questions.append(question)
        if isinstance(answer, BaseException):
            raise answer  # Ctrl-C at the prompt means no, not the end of the kernel
        return answer

    chat = Chat([asks_for("weather", '{"city": "上海"}'), answers("ok")])
    _, messages = chat.run(tools, ask=ask)
    assert questions == ['Run weather(city="上海")? [y/N] ']
    if answer is True:
        assert ran == ["上海"] and messages[-1]["content"] == '{"city": "上海", "sky": "晴"}'
    else:
        assert ran == [] and messages[-1]["content"] == "error: the user did not allow this call"
        assert chat.notices == ['not run: weather(city="上海")']
    assert len(chat.sent) == 2  # the model hears the answer either way


@pytest.mark.parametrize(
    ("name", "arguments", "result", "notice"),
    [
        ("nope", "{}", "error: there is no tool named 'nope'", "the model asked for an unknown tool: nope()"),
        ("weather", '{"city": ', "error: the tool arguments are not valid JSON", "failed: weather("),
        ("weather", '["x"]', "error: the tool arguments are a JSON list", "failed: weather("),
        ("weather", '{"town": "x"}', "error: TypeError: unexpected argument 'town'", "failed: weather(town="),
    ],
)
def test_calls_that_cannot_run_send_the_reason_back(
    name: str, arguments: str, result: str, notice: str
) -> None:
    tools, ran = weather_tools()
    chat = Chat([asks_for(name, arguments), answers("sorry")])
    turn, messages = chat.run(tools)
    assert ran == [] and turn.reply == "sorry"
    assert messages[-1]["role"] == "tool" and messages[-1]["content"].startswith(result)
    assert chat.notices[0].startswith(notice)


def test_several_calls_in_one_round_each_get_their_result_in_order() -> None:
    tools, ran = weather_tools()
    both = [*call("weather", '{"city": "a"}', 0), *call("nope", "{}", 1)]
    chat = Chat([[*both, FinishDelta("tool_calls")], answers("done")])
    _, messages = chat.run(tools)
    assert ran == ["a"]
    assert [m["tool_call_id"] for m in messages[1:]] == ["call_0", "call_1"]
    assert messages[2]["content"] == "error: there is no tool named 'nope'"


def test_max_rounds_stops_with_a_notice_and_the_last_status_has_the_figures() -> None:
    tools, ran = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "x"}')])  # the model never stops asking
    result, messages = chat.run(tools, max_rounds=2)
    assert len(chat.sent) == 3 and ran == ["x", "x"]  # the first reply and two rounds of tool results
    assert chat.notices[-1] == "stopped after 2 rounds of tool calls; the model may not have finished"
    assert len(messages) == 4 and result.reply.tool_calls
    statuses = [v.status for v in chat.views]
    assert statuses[:2] == [CALLING_TOOLS, CALLING_TOOLS]
    for fragment in ("30 → 15 tokens", "3 requests", "finish: tool_calls"):
        assert fragment in statuses[2]


def test_every_round_is_billed() -> None:
    tools, _ = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "x"}', prompt=100, completion=10), answers("ok", prompt=200)])
    chat.run(tools)
    assert [r.reply.tool_calls != [] for r in chat.billed] == [True, False]
    assert [r.used for r in chat.billed] == [Measure(Tokens(100, 10, False)), Measure(Tokens(200, 7, False))]


def test_one_status_line_for_the_whole_turn() -> None:
    # Issue 9.7: the tool-call round shows its calls but no figures of its own; the last round shows the
    # turn's: every round's tokens and cost added up.
    tools, _ = weather_tools()
    chat = Chat([[101.0, *asks_for("weather", '{"city": "x"}', prompt=100, completion=10)],
                 [103.0, *answers("晴", prompt=200, completion=20), 104.0]])  # fmt: skip

    def priced(builder: ReplyBuilder) -> Measure:
        counts = builder.usage or {}
        tokens = Tokens(counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0), False)
        return Measure(tokens, tokens.prompt * 0.001 + tokens.completion * 0.01)

    chat.run(tools, measure=priced, money=lambda c: f"${c:.3f}")
    first, last = chat.views
    assert first.status == CALLING_TOOLS
    assert first.finishes[0][0].tool_calls[0]["function"]["name"] == "weather"  # its call lines still show
    assert any(isinstance(d, ToolCallDelta) for d in first.deltas)
    assert last.status == "m · 4.0 s · 300 → 30 tokens · $0.600 · 2 requests"
    assert "tool_calls" not in last.status and "first token" not in last.status


def test_the_live_status_of_a_later_round_counts_on_from_the_earlier_ones() -> None:
    tools, _ = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "x"}'), [*text("a", "b"), FinishDelta("stop")]])
    chat.run(tools, measure=lambda b: Measure(Tokens(10, len(b.text), True)))
    assert "~20 → ~1 tokens" in chat.views[1].refreshes[0][1]
    assert "~20 → ~2 tokens" in chat.views[1].status


def test_legacy_costs_of_several_rounds_are_left_out_not_misadded() -> None:
    tools, _ = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "x"}'), answers("ok")])
    chat.run(tools, tokens=lambda b: ((1, 1, False), "¥9.99"))
    assert "¥" not in chat.views[-1].status and "2 → 2 tokens" in chat.views[-1].status


def test_a_turn_stops_when_a_round_is_interrupted_or_fails() -> None:
    tools, ran = weather_tools()
    chat = Chat([[*call("weather", '{"city": "x"}'), KeyboardInterrupt()]])
    result, messages = chat.run(tools)
    assert result.interrupted and ran == [] and messages == [] and len(chat.sent) == 1
    assert "interrupted" in chat.views[0].status

    chat = Chat([asks_for("weather", '{"city": "x"}'), [*text("half"), ShenmaError("gone")]])
    result, messages = chat.run(tools)
    assert result.exception is not None and result.reply == "half"
    assert len(messages) == 2  # round one's call and result stay, for the conversation
    assert "failed" in chat.views[-1].status and "2 requests" in chat.views[-1].status


def test_without_tools_a_tool_call_reply_ends_the_turn() -> None:
    chat = Chat([asks_for("weather", '{"city": "x"}')])
    result, messages = chat.run(None)
    assert messages == [] and len(chat.sent) == 1 and result.reply.tool_calls
    assert chat.views[0].status != CALLING_TOOLS and "finish: tool_calls" in chat.views[0].status
    assert chat.notices == []


def test_a_second_ctrl_c_while_a_tool_round_is_written_stops_the_turn() -> None:
    tools, ran = weather_tools()
    chat = Chat([asks_for("weather", '{"city": "x"}'), answers("ok")])

    def view() -> FakeView:
        chat.views.append(FakeView(chat.clock, interrupt_finish=1))
        return chat.views[-1]

    chat.view = view  # type: ignore[method-assign]  # the fake views stand in for the real one
    result, _ = chat.run(tools)
    assert result.interrupted and ran == [] and len(chat.sent) == 1


def test_reasoning_counts_as_the_first_words() -> None:
    steps: list[Step] = [101.0, MetaDelta("m", "1"), 102.0, ReasoningDelta("hmm"), 103.0, FinishDelta("stop")]
    _, view, _ = one_turn(steps)
    assert "first token 2.0 s" in view.status
