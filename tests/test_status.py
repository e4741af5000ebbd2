"""The status line under a reply: how it ended, and timings that never contradict each other."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._status import status_text


def timing_parts(
    elapsed: float,
    first: float | None,
    last: float | None,
    completion: int,
    *,
    estimated: bool,
    finish: str | None,
) -> list[str]:
    """The parts of the status line of a reply with no model name and these timings and tokens."""
    line = status_text(
        model="",
        elapsed=elapsed,
        first_token=first,
        last_token=last,
        tokens=(7, completion, estimated),
        finish_reason=finish,
    )
    return line.split(" · ")


def test_status_text() -> None:
    line = status_text(
        model="gpt-4o-mini",
        elapsed=3.0,
        first_token=1.0,
        tokens=(12, 101, False),
        finish_reason="length",
        cost="¥0.0012",
    )
    assert line == (
        "gpt-4o-mini · first token 1.0 s · 3.0 s · 12 → 101 tokens · 50 tok/s · ¥0.0012"
        " · cut at the token limit (finish: length)"
    )
    estimated = status_text(model="m", elapsed=1, first_token=None, tokens=(3, 9, True), finish_reason="stop")
    assert estimated == "m · 1.0 s · ~3 → ~9 tokens (estimated)"


@pytest.mark.parametrize(
    ("finish", "shown"),
    [
        ("stop", None),
        (None, None),
        ("length", "cut at the token limit (finish: length)"),
        ("max_tokens", "cut at the token limit (finish: max_tokens)"),
        ("tool_calls", "finish: tool_calls"),
        ("content_filter", "finish: content_filter"),
    ],
)
def test_status_says_how_the_reply_ended(finish: str | None, shown: str | None) -> None:
    line = status_text(model="m", elapsed=1, first_token=0.5, tokens=None, finish_reason=finish)
    assert line.split(" · ")[3:] == ([shown] if shown else [])


@pytest.mark.parametrize(
    ("elapsed", "first", "last", "completion", "times", "rate"),
    [
        # (elapsed, first token, last token, completion tokens) -> the two times shown, the tok/s shown
        (0.04, 0.02, None, 5, ("0.02 s", "0.04 s"), None),  # 20 ms for 4 tokens: a burst, no figure
        (0.04, 0.02, 0.03, 5, ("0.02 s", "0.04 s"), None),
        (0.5, 0.1, 0.3, 21, ("0.10 s", "0.50 s"), "100 tok/s"),  # a short reply, counted to its last token
        (0.5, 0.1, None, 21, ("0.10 s", "0.50 s"), "50 tok/s"),
        (0.2, 0.1, 0.13, 3, ("0.10 s", "0.20 s"), "67 tok/s"),  # 2 tokens in 30 ms
        (3.0, 1.0, None, 101, ("1.0 s", "3.0 s"), "50 tok/s"),
        (1.0, 0.4, 0.4, 10, ("0.40 s", "1.0 s"), None),  # every token at once
        (1.0, 0.4, None, 1, ("0.40 s", "1.0 s"), None),  # one token: no rate
        (0.01, 0.02, None, 5, ("0.02 s", "0.02 s"), None),  # a clock that says total < first: not shown so
        (0.3, 0.2, 0.5, 5, ("0.20 s", "0.50 s"), "13 tok/s"),  # last token after "elapsed": total follows
        (0.999, 0.996, None, 2, ("1.00 s", "1.00 s"), None),
        (150.0, 99.99, None, 1000, ("100.0 s", "150 s"), "20 tok/s"),
        (5.0, None, None, 50, (None, "5.0 s"), None),  # no first token (a whole JSON answer): no rate
    ],
)
def test_status_timings(
    elapsed: float,
    first: float | None,
    last: float | None,
    completion: int,
    times: tuple[str | None, str],
    rate: str | None,
) -> None:
    parts = timing_parts(elapsed, first, last, completion, estimated=False, finish="stop")
    shown_first = parts.pop(0).removeprefix("first token ") if first is not None else None
    assert (shown_first, parts[0]) == times
    assert [p for p in parts if p.endswith("tok/s")] == ([rate] if rate else [])


@settings(max_examples=500, deadline=None)
@given(
    first=st.floats(min_value=-1, max_value=1e5, allow_nan=False),
    elapsed=st.floats(min_value=-1, max_value=1e5, allow_nan=False),
    last=st.one_of(st.none(), st.floats(min_value=-1, max_value=1e5, allow_nan=False)),
    completion=st.integers(min_value=0, max_value=10**6),
)
def test_the_total_is_never_shown_smaller_than_the_first_token(
    first: float, elapsed: float, last: float | None, completion: int
) -> None:
    parts = timing_parts(elapsed, first, last, completion, estimated=True, finish=None)
    shown_first = float(parts[0].removeprefix("first token ").removesuffix(" s"))
    shown_total = float(parts[1].removesuffix(" s"))
    assert 0 <= shown_first <= shown_total
    rates = [p for p in parts if p.endswith("tok/s")]
    if rates:
        assert completion >= 2
        assert float(rates[0].removeprefix("~").removesuffix(" tok/s")) >= 0
