"""Inline ``<think>`` reasoning split out of the answer, at every cut of the stream (ThinkSplitter)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    NoticeDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from shenma_magic._think import ThinkSplitter


def reference(text: str) -> tuple[str, str]:
    """(answer, reasoning) by the rule, written the plain way: one regex over the whole text."""
    opened = re.match(r"\s*<think>", text, re.IGNORECASE | re.ASCII)
    if not opened or len(opened.group()) - len("<think>") > 1024:
        return text, ""
    rest = text[opened.end() :]
    closed = re.search("</think>", rest, re.IGNORECASE | re.ASCII)
    if not closed:
        return "", rest
    return rest[closed.end() :].lstrip("\r\n"), rest[: closed.start()]


def split(deltas: list[Delta]) -> tuple[str, str, list[Delta]]:
    splitter = ThinkSplitter()
    out = [piece for delta in deltas for piece in splitter.feed(delta)] + splitter.flush()
    answer = "".join(d.text for d in out if isinstance(d, TextDelta))
    reasoning = "".join(d.text for d in out if isinstance(d, ReasoningDelta))
    return answer, reasoning, out


def cut(text: str, points: list[int]) -> list[Delta]:
    marks = sorted({min(p, len(text)) for p in points})
    return [TextDelta(text[a:b]) for a, b in zip([0, *marks], [*marks, len(text)], strict=True) if text[a:b]]


CASES = [
    ("<think>想一想</think>\n\n答案", "答案", "想一想"),
    ("  \n<THINK>x</Think>y", "y", "x"),
    ("<think>\n步骤\n</think>", "", "\n步骤\n"),
    ("<think>没有结束", "", "没有结束"),
    ("答案 <think>不是开头</think>", "答案 <think>不是开头</think>", ""),
    ("<thinking>别的标签</thinking>", "<thinking>别的标签</thinking>", ""),
    ("<thin", "<thin", ""),
    ("<", "<", ""),
    ("   ", "   ", ""),
    ("", "", ""),
    ("<think></think>", "", ""),
    ("<think>a</think></think>b", "</think>b", "a"),
    ("<think>a</thinkb</think>c", "c", "a</thinkb"),
    ("<think>İ</think>İ", "İ", "İ"),  # "İ".lower() is two characters: indexes must not shift
    ("<thin\u212a>kelvin</think>", "<thin\u212a>kelvin</think>", ""),  # the Kelvin sign is not a "k"
    (" " * 2000 + "<think>x</think>", " " * 2000 + "<think>x</think>", ""),  # leading space is bounded
]


@pytest.mark.parametrize(("text", "answer", "reasoning"), CASES)
def test_cases_at_every_cut(text: str, answer: str, reasoning: str) -> None:
    assert reference(text) == (answer, reasoning)
    for i in range(len(text) + 1):
        for j in (i, i + 1, i + 3, i + 8):
            got = split(cut(text, [i, j]))[:2]
            assert got == (answer, reasoning), (i, j)
    assert split([TextDelta(c) for c in text])[:2] == (answer, reasoning)  # one character a delta


_PIECES = st.sampled_from(
    ["<think>", "</think>", "<THINK>", "</Think>", "<", "</", "think", ">", "\n", " ", "答", "a"]
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(_PIECES | st.text(max_size=4), max_size=20).map("".join),
    points=st.lists(st.integers(min_value=0, max_value=80), max_size=10),
)
def test_any_text_at_any_cut_splits_as_the_rule_says(text: str, points: list[int]) -> None:
    answer, reasoning, out = split(cut(text, points))
    assert (answer, reasoning) == reference(text)
    assert all(d.text for d in out if isinstance(d, (TextDelta, ReasoningDelta)))  # no empty pieces


def test_other_deltas_keep_their_place() -> None:
    call = ToolCallDelta(0, "c1", "f", "{}")
    deltas: list[Delta] = [TextDelta("<thi"), call, TextDelta("nk>"), FinishDelta("stop")]
    # The tool call comes before the tag was complete: what was held is the answer's text.
    assert split(deltas)[2] == [TextDelta("<thi"), call, TextDelta("nk>"), FinishDelta("stop")]
    # What says nothing of the text (the first chunk's model, usage, a notice) does not end the wait.
    meta, usage, notice = (
        MetaDelta("deepseek-r1", "c1"),
        UsageDelta({"total_tokens": 3}),
        NoticeDelta("retry"),
    )
    deltas = [meta, TextDelta("\n<th"), usage, TextDelta("ink>a</think>b"), notice]
    assert split(deltas)[2] == [meta, usage, ReasoningDelta("a"), TextDelta("b"), notice]
    deltas = [TextDelta("<think>a</th"), FinishDelta("length")]
    assert split(deltas)[2] == [ReasoningDelta("a"), ReasoningDelta("</th"), FinishDelta("length")]


def test_after_the_first_characters_deltas_pass_unchanged() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed(TextDelta("Hello")) == [TextDelta("Hello")]
    later = TextDelta("<think>")
    assert splitter.feed(later)[0] is later
