"""Prices, token counts and the usage ledger."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._costing import Costing, generated_text
from shenma_magic._errors import ConfigError
from shenma_magic._models import ReasoningDelta, ReplyBuilder, TextDelta, ToolCallDelta, UsageDelta
from shenma_magic._pricing import (
    Cost,
    LedgerRow,
    LedgerTotal,
    Price,
    TokenCount,
    UsageLedger,
    estimate_completion_tokens,
    estimate_prompt_tokens,
    estimate_tokens,
    format_money,
    parse_prices,
    price_for,
    reply_cost,
)
from shenma_magic._tokencount import TokenTally
from tests._util import approx

# -- parse_prices --------------------------------------------------------------------------------------------


def test_parse_prices_forms() -> None:
    prices = parse_prices(
        {
            "gpt-4o-mini": {"input": 1.05, "output": 4.2},
            "dall-e-3": {"per_call": 0.3},
            "deepseek-*": (1, 2),
            "qwen-max": [2.4, "9.6"],
            "claude": {"input": "3", "output": 15},
            "only-input": {"input": 0.5},
            "free": {"input": 0, "output": 0},
            " padded ": {"per_call": 1},
        }
    )
    assert prices == {
        "gpt-4o-mini": Price(1.05, 4.2, None),
        "dall-e-3": Price(None, None, 0.3),
        "deepseek-*": Price(1.0, 2.0, None),
        "qwen-max": Price(2.4, 9.6, None),
        "claude": Price(3.0, 15.0, None),
        "only-input": Price(0.5, None, None),
        "free": Price(0.0, 0.0, None),
        "padded": Price(None, None, 1.0),
    }
    assert all(isinstance(v, float) for p in prices.values() for v in p if v is not None)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"gpt-4o": {"input": 1, "ouput": 2}}, "price for gpt-4o: unknown field 'ouput'"),
        ({"gpt-4o": {"input": "cheap"}}, "price for gpt-4o: input is 'cheap', not a number"),
        ({"gpt-4o": {"input": -1}}, "price for gpt-4o: input is -1, not a price"),
        ({"gpt-4o": {"output": math.nan}}, "price for gpt-4o: output is nan"),
        ({"gpt-4o": {"output": math.inf}}, "price for gpt-4o: output is inf"),
        ({"gpt-4o": {"input": True}}, "price for gpt-4o: input is True, not a number"),
        ({"gpt-4o": {"input": [1]}}, "price for gpt-4o: input is a list, not a number"),
        ({"gpt-4o": {}}, "price for gpt-4o names no price"),
        ({"gpt-4o": {"input": None, "output": None}}, "price for gpt-4o names no price"),
        ({"gpt-4o": (1, 2, 3)}, "price for gpt-4o is (1, 2, 3), which is not a price"),
        ({"gpt-4o": 0.3}, "price for gpt-4o is 0.3, which is not a price"),
        ({"gpt-4o": "1/2"}, "price for gpt-4o is '1/2'"),
        ({"": {"input": 1}}, "is not a model name"),
        ({3: {"input": 1}}, "is not a model name"),
        ({"通义千问": {"input": "一"}}, "price for 通义千问: input is '一'"),
    ],
)
def test_bad_prices_name_the_model(table: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_prices(table)
    assert fragment in info.value.message
    assert info.value.hint


def test_price_table_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="not a dict"):
        parse_prices([("gpt-4o", 1, 2)])  # type: ignore[arg-type]  # not a mapping, on purpose


# -- price_for -----------------------------------------------------------------------------------------------

PRICES = parse_prices(
    {
        "*": (9, 9),
        "gpt-4o*": (5, 15),
        "gpt-4o-mini*": (0.15, 0.6),
        "gpt-4o-mini": (0.1, 0.5),
        "deepseek-?1": (4, 16),
        "Claude-3-*": (3, 15),
    }
)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini", Price(0.1, 0.5, None)),  # exact beats any pattern
        ("GPT-4o-Mini", Price(0.1, 0.5, None)),  # case-insensitive
        ("gpt-4o-mini-2024-07-18", Price(0.15, 0.6, None)),  # the longest matching pattern
        ("gpt-4o-2024-08-06", Price(5.0, 15.0, None)),
        ("deepseek-r1", Price(4.0, 16.0, None)),
        ("claude-3-opus", Price(3.0, 15.0, None)),
        ("something-else", Price(9.0, 9.0, None)),
    ],
)
def test_price_for(model: str, price: Price) -> None:
    assert price_for(PRICES, model) == price


def test_price_for_no_match_and_order_independence() -> None:
    prices = parse_prices({"gpt-*": (1, 1), "gpt-4*": (2, 2)})
    reversed_prices = dict(reversed(list(prices.items())))
    assert price_for(prices, "gpt-4o") == price_for(reversed_prices, "gpt-4o") == Price(2.0, 2.0, None)
    assert price_for(prices, "qwen") is None
    assert price_for({}, "gpt-4o") is None
    assert price_for(prices, "") is None


def test_fewer_wildcards_win_a_tie() -> None:
    prices = parse_prices({"a*c*": (1, 1), "ab*cd": (2, 2)})
    assert price_for(prices, "abxcd") == Price(2.0, 2.0, None)


# -- estimates -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # The rule: 1.5 tokens per CJK character (rounded up), 1 per 4 other characters (rounded up).
        ("", 0),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("hello world, this is forty characters!!", 10),
        ("你好世界", 6),
        ("你好，世界！", 9),  # fullwidth punctuation counts like the characters
        ("こんにちは", 8),
        ("안녕하세요", 8),
        ("用Python写代码", 6 + 2),  # 4 CJK + "Python" (6 characters -> 2)
        ("😀", 1),
        ("   ", 1),
    ],
)
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_chinese_counts_one_to_one_and_a_half_tokens_a_character() -> None:
    # Measured tokenizers spend 1-2 tokens per character of ordinary Chinese prose (the old estimate of 1
    # was half of what a llama.cpp model reported); the estimate sits in that band.
    prose = "鲁迅原名周樟寿，后改名周树人，是中国现代文学的奠基人之一。" * 10
    assert len(prose) <= estimate_tokens(prose) <= 1.5 * len(prose) + 1


def test_estimate_tokens_huge_text_is_fast() -> None:
    text = ("数据分析 data analysis " * 100_000)[:2_000_000]
    started = time.perf_counter()
    tokens = estimate_tokens(text)
    assert time.perf_counter() - started < 2
    assert 500_000 < tokens < 3_000_000


# Text that mixes the two kinds the estimate tells apart, with the edges of the CJK ranges and astral ones.
_MIXED_TEXT = (
    st.text(
        alphabet=st.sampled_from(
            list("ab1 \n.`|") + list("你好，世界！こんにちは안녕") + ["\u3000", "\uffef", "\U00020000", "😀"]
        )
    )
    | st.text()
)


def _reference_estimate(text: str) -> int:
    """The whole-text rule as it was first written (regex over the whole text, float rounding)."""
    import re

    if not text:
        return 0
    cjk_pattern = re.compile(
        "[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
        "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
    )
    other = cjk_pattern.sub("", text)
    return max(1, (3 * (len(text) - len(other)) + 1) // 2 + math.ceil(len(other) / 4))


def _pieces(text: str, cuts: list[int]) -> list[str]:
    at = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *at], [*at, len(text)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(_MIXED_TEXT, st.lists(st.integers(min_value=0, max_value=400), max_size=40))
def test_a_tally_fed_in_pieces_counts_what_the_whole_text_counts(text: str, cuts: list[int]) -> None:
    tally = TokenTally()
    for piece in _pieces(text, cuts):
        tally.add(piece)
    assert tally.tokens == estimate_tokens(text) == _reference_estimate(text)


def test_a_tally_read_while_it_grows_is_always_the_estimate_so_far() -> None:
    tally = TokenTally()
    text = ""
    for i in range(2000):  # past the batch size, read at odd moments
        piece = "数据" if i % 3 else "ab c"
        tally.add(piece)
        text += piece
        if i % 97 == 0 or i > 1990:
            assert tally.tokens == estimate_tokens(text)


_DELTAS = st.lists(
    st.one_of(
        st.builds(TextDelta, _MIXED_TEXT),
        st.builds(ReasoningDelta, _MIXED_TEXT),
        st.builds(
            lambda index, arguments: ToolCallDelta(index, None, None, arguments),
            st.integers(min_value=0, max_value=2),
            _MIXED_TEXT,
        ),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_DELTAS, st.sampled_from([None, {"prompt_tokens": 7}, {"completion_tokens": 5, "prompt_tokens": 2}]))
def test_a_live_measure_equals_the_whole_text_estimate(deltas: list[Any], usage: Any) -> None:
    """What the status line shows while a reply streams: each refresh counts only the new text, and the
    figures equal pricing the whole generated text (answer, reasoning, tool-call arguments) at once."""
    costing = Costing.for_request(
        {"m": {"input": 1.0, "output": 2.0}}, "USD", "m", [{"role": "user", "content": "你好 hi"}]
    )
    builder = ReplyBuilder()
    for delta in deltas:
        builder.add(delta)
        measured = costing.measure(builder)
        whole = reply_cost(
            costing.price, builder.usage, prompt_text=costing.prompt, answer_text=generated_text(builder)
        )
        assert measured.tokens is not None
        assert tuple(measured.tokens) == tuple(whole.tokens) and measured.cost == whole.amount
    if usage:
        builder.add(UsageDelta(usage))
    measured = costing.measure(builder)
    reply = builder.build()
    assert builder.generated_tokens == estimate_tokens(generated_text(reply))
    counted = costing.counted(reply)  # the round as it is charged, from the finished reply
    if counted is not None:
        cost, estimated, prompt, completion = counted
        assert measured.tokens is not None
        assert (tuple(measured.tokens), measured.cost) == ((prompt, completion, estimated), cost)


def test_a_live_measure_counts_each_character_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refreshing the status line 1,000 times over a growing reply counts its text once in all (counting
    the whole reply on every refresh made a long reply's refreshes ever slower)."""
    import shenma_magic._tokencount as tokencount

    counted: list[int] = []
    split = tokencount._split

    def counting(text: str) -> tuple[int, int]:
        counted.append(len(text))
        return split(text)

    monkeypatch.setattr(tokencount, "_split", counting)
    costing = Costing.for_request({}, "USD", "m", [{"role": "user", "content": "hi " * 1000}])
    builder = ReplyBuilder()
    for _ in range(1000):
        builder.add(TextDelta("数据 data " * 10))
        costing.measure(builder)
    answer = len(builder.text)
    assert sum(counted) == answer + len("hi " * 1000)  # every answer character once, the prompt once


def test_prompt_estimate_counts_the_chat_template() -> None:
    # OpenAI's cookbook: 3 tokens per message plus its role, 3 to prime the reply.
    assert estimate_prompt_tokens([]) == 3
    assert estimate_prompt_tokens([{"role": "user", "content": ""}]) == 3 + 4
    assert estimate_prompt_tokens([{"role": "user", "content": "hi"}]) == 3 + 4 + 1
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "周树人和鲁迅是兄弟吗？"},
        {"role": "assistant", "content": "不是，他们是同一个人。"},
        {"role": "user", "content": "那他的弟弟是谁？"},
    ]
    text_only = sum(estimate_tokens(m["content"]) for m in conversation)
    assert estimate_prompt_tokens(conversation) == text_only + 4 * len(conversation) + 3


def test_prompt_estimate_counts_images_tool_calls_and_tools() -> None:
    image = {
        "role": "user",
        "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {}}],
    }
    assert estimate_prompt_tokens([image]) == 3 + 4 + 2 + 85
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}],
    }
    assert estimate_prompt_tokens([call]) > estimate_prompt_tokens([{"role": "assistant", "content": None}])
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    assert estimate_prompt_tokens([], tools=tools) > estimate_prompt_tokens([])


@pytest.mark.parametrize(("cap", "tokens"), [(None, 1000), (300, 300), (1000, 1000), (5000, 1000), (0, 0)])
def test_completion_estimate_never_passes_the_cap(cap: int | None, tokens: int) -> None:
    assert estimate_completion_tokens("a" * 4000, max_tokens=cap) == tokens


# -- reply_cost ----------------------------------------------------------------------------------------------

GPT = Price(1.0, 4.0, None)


def test_cost_from_reported_usage() -> None:
    usage = {"prompt_tokens": 1_000, "completion_tokens": 500, "total_tokens": 1_500}
    cost = reply_cost(GPT, usage, prompt_text="ignored", answer_text="ignored")
    assert isinstance(cost, Cost)
    assert cost.amount == pytest.approx(1_000 * 1.0 / 1e6 + 500 * 4.0 / 1e6)
    assert cost.tokens == TokenCount(prompt=1_000, completion=500, estimated=False)


def test_cost_estimated_without_usage() -> None:
    cost = reply_cost(GPT, None, prompt_text="你好" * 50, answer_text="a" * 400)
    assert cost.tokens == TokenCount(150, 100, True)
    assert cost.amount == pytest.approx(150 / 1e6 + 400 / 1e6)


def test_an_estimate_never_exceeds_max_tokens() -> None:
    # ~363 was shown for a reply asked for with --max-tokens 300.
    cost = reply_cost(None, None, answer_text="长" * 300, max_tokens=300)
    assert cost.completion == 300 and cost.estimated
    assert reply_cost(None, {"completion_tokens": 363}, max_tokens=300).completion == 363  # the server's word


def test_the_live_measure_and_the_charge_of_a_capped_request_never_exceed_max_tokens() -> None:
    """What the status line shows while streaming and what the ledger is charged, for a request asked
    with --max-tokens: the estimate stops at the cap (the Costing carried it, unused, before)."""
    costing = Costing.for_request(
        {"m": {"input": 1.0, "output": 2.0}}, "USD", "m", [{"role": "user", "content": "hi"}], max_tokens=50
    )
    builder = ReplyBuilder()
    builder.add(TextDelta("长" * 400))
    measured = costing.measure(builder)
    assert measured.tokens is not None and measured.tokens.completion == 50 and measured.tokens.estimated
    counted = costing.counted(builder.build())
    assert counted is not None and counted[3] == 50


def test_prompt_estimate_from_messages() -> None:
    messages = [{"role": "user", "content": "hello there"}]
    assert reply_cost(None, None, messages=messages).prompt == estimate_prompt_tokens(messages) == 3 + 4 + 3


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 10, "total_tokens": 25}, TokenCount(10, 15, False)),
        ({"completion_tokens": 5, "total_tokens": 25}, TokenCount(20, 5, False)),
        ({"prompt_tokens": 10, "total_tokens": 5}, TokenCount(10, 2, True)),  # a total that cannot be
        ({"total_tokens": 25}, TokenCount(2, 2, True)),
    ],
)
def test_total_tokens_bound_the_missing_count(usage: dict[str, Any], tokens: TokenCount) -> None:
    assert reply_cost(None, usage, prompt_text="abcdefgh", answer_text="abcdefgh").tokens == tokens


def test_partial_usage_estimates_the_missing_half() -> None:
    assert reply_cost(GPT, {"prompt_tokens": 10}, answer_text="abcdefgh").tokens == TokenCount(10, 2, True)


def test_anthropic_style_usage_names() -> None:
    assert reply_cost(GPT, {"input_tokens": 7, "output_tokens": 3}).tokens == TokenCount(7, 3, False)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "10", "completion_tokens": 5},
        {"prompt_tokens": -1, "completion_tokens": 5},
        {"prompt_tokens": True, "completion_tokens": 5},
        {"prompt_tokens": None, "completion_tokens": 5},
        {},
    ],
)
def test_unusable_usage_values_are_estimated(usage: dict[str, Any]) -> None:
    cost = reply_cost(GPT, usage, prompt_text="abcdefgh")
    assert cost.estimated and cost.prompt == 2


def test_float_counts_are_accepted() -> None:
    assert reply_cost(GPT, {"prompt_tokens": 10.0, "completion_tokens": 2.0}).tokens == TokenCount(
        10, 2, False
    )


def test_per_call_price_ignores_tokens() -> None:
    usage = {"prompt_tokens": 10**9, "completion_tokens": 10**9}
    assert reply_cost(Price(None, None, 0.3), usage) == Cost(0.3, False, 10**9, 10**9)
    assert reply_cost(Price(1.0, 1.0, 0.04), None, prompt_text="x").amount == 0.04


def test_unknown_or_incomplete_prices() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 50}
    assert reply_cost(None, usage) == Cost(None, False, 100, 50)
    assert reply_cost(Price(1.0, None, None), usage).amount is None  # output tokens but no output price
    no_output = {"prompt_tokens": 100, "completion_tokens": 0}
    assert reply_cost(Price(1.0, None, None), no_output).amount == pytest.approx(0.0001)


def test_zero_tokens_cost_nothing() -> None:
    assert reply_cost(GPT, None) == Cost(0.0, True, 0, 0)


def test_a_cost_still_unpacks_as_it_did() -> None:
    amount, estimated, prompt, completion = reply_cost(GPT, {"prompt_tokens": 1, "completion_tokens": 2})
    assert (amount, estimated, prompt, completion) == (approx(9e-6), False, 1, 2)


# -- format_money --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0.0123, "¥", "¥0.0123"),
        (1.2, "¥", "¥1.20"),
        (0.5, "$", "$0.50"),
        (0, "¥", "¥0.00"),
        (0.1, "¥", "¥0.10"),
        (0.05, "¥", "¥0.0500"),
        (0.0012345, "¥", "¥0.0012"),
        (0.000012345, "$", "$0.000012"),  # two significant digits, never ¥0.0000
        (0.0000001, "¥", "¥0.00000010"),
        (0.09999996, "¥", "¥0.10"),
        (1234567.891, "¥", "¥1,234,567.89"),
        (-0.5, "$", "-$0.50"),
        (3, "", "3.00"),
    ],
)
def test_format_money(amount: float, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_format_money_default_currency() -> None:
    assert format_money(2) == "¥2.00"


# -- UsageLedger ---------------------------------------------------------------------------------------------


def test_ledger_rows_accumulate_per_model_in_first_use_order() -> None:
    ledger = UsageLedger()
    ledger.add("gpt-4o-mini", 100, 50, 0.01, False)
    ledger.add("deepseek-chat", 10, 5, None, False)
    ledger.add("gpt-4o-mini", 200, 70, 0.02, True)
    ledger.add("deepseek-chat", 10, 5, 0.5, False)
    assert ledger.rows() == [
        LedgerRow("gpt-4o-mini", 2, 300, 120, approx(0.03), estimated=True, unpriced=0),
        LedgerRow("deepseek-chat", 2, 20, 10, 0.5, estimated=False, unpriced=1),  # 0.5 is a lower bound
    ]
    assert ledger.total() == LedgerTotal(4, 320, 130, approx(0.53), True, 1)
    assert len(ledger) == 4


def test_prices_set_later_count_for_earlier_replies() -> None:
    # The quickstart: replies, then prices, then a priced reply, then %chat usage, which showed "?".
    ledger = UsageLedger()
    ledger.add("gpt-4o-mini", 1_000_000, 0, None, False)
    ledger.add("gpt-4o-mini", 0, 1_000_000, None, True)
    prices = parse_prices({"gpt-4o-mini": {"input": 1.05, "output": 4.2}})
    cost = reply_cost(price_for(prices, "gpt-4o-mini"), {"prompt_tokens": 1_000_000, "completion_tokens": 0})
    ledger.add_cost("gpt-4o-mini", cost)
    assert ledger.rows() == [LedgerRow("gpt-4o-mini", 3, 2_000_000, 1_000_000, approx(1.05), True, 2)]
    assert ledger.rows(prices) == [
        LedgerRow("gpt-4o-mini", 3, 2_000_000, 1_000_000, approx(1.05 + 1.05 + 4.2), True, 0)
    ]
    table = ledger.table(prices=prices)
    assert "~¥6.30" in table and "?" not in table and "≥" not in table
    assert "≥ ~¥1.05" in ledger.table()  # without the prices: the known part, marked as a lower bound
    per_call = parse_prices({"gpt-*": {"per_call": 0.5}})
    assert ledger.total(per_call).cost == pytest.approx(1.05 + 2 * 0.5)


def test_ledger_table() -> None:
    ledger = UsageLedger()
    ledger.add("gpt-4o-mini", 1_200, 340, 0.0123, False)
    ledger.add("通义千问-max", 50, 20, None, True)
    # Columns: model left-aligned, the rest right-aligned, two spaces apart; a CJK character takes two
    # terminal columns, so "通义千问-max" is 12 wide. Widths: 12, 5, 6, 10, 10 -> 51 with the gaps.
    rule = "-" * (12 + 2 + 5 + 2 + 6 + 2 + 10 + 2 + 10)
    assert ledger.table() == "\n".join(
        [
            "model" + " " * 9 + "calls" + "  prompt" + "  completion" + " " * 8 + "cost",
            rule,
            "gpt-4o-mini" + " " * 7 + "1" + " " * 3 + "1,200" + " " * 9 + "340" + " " * 5 + "¥0.0123",
            "通义千问-max" + " " * 6 + "1" + " " * 5 + "~50" + " " * 9 + "~20" + " " * 11 + "?",
            rule,
            "total" + " " * 13 + "2" + " " * 2 + "~1,250" + " " * 8 + "~360" + " " * 2 + "≥ ~¥0.0123",
            "~ estimated from the text: the server sent no token counts",
            "? no price set for this model",
            "≥ some replies have no price: the cost shown is the part that is known",
        ]
    )


def test_ledger_legend_explains_only_the_marks_shown() -> None:
    ledger = UsageLedger()
    ledger.add("m", 1, 1, 1.5, False)
    table = ledger.table(currency="$")
    assert "$1.50" in table and not [mark for mark in "≥~?" if mark in table]
    ledger.add("n", 1, 1, None, True)  # estimated, and no price: "~" on its counts, "?" on its cost
    table = ledger.table()
    lines = table.splitlines()
    assert lines[3].split() == ["n", "1", "~1", "~1", "?"]
    assert lines[-3:] == [
        "~ estimated from the text: the server sent no token counts",
        "? no price set for this model",
        "≥ some replies have no price: the cost shown is the part that is known",
    ]


def test_ledger_table_all_unknown() -> None:
    ledger = UsageLedger()
    ledger.add("m", 1, 1, None, False)
    lines = ledger.table().splitlines()
    assert lines[-2].split() == ["total", "1", "1", "1", "?"]
    assert lines[-1] == "? no price set for this model"
    assert ledger.total().cost is None


def test_ledger_reset_and_empty() -> None:
    ledger = UsageLedger()
    assert ledger.table() == "no usage recorded yet"
    assert ledger.rows() == [] and ledger.total() == LedgerTotal(0, 0, 0, None, False, 0)
    ledger.add("m", 1, 1, 0.1, False)
    ledger.reset()
    assert ledger.rows() == [] and len(ledger) == 0


def test_end_to_end_price_to_ledger() -> None:
    prices = parse_prices({"deepseek-*": {"input": 2, "output": 8}})
    ledger = UsageLedger()
    for _ in range(3):
        cost = reply_cost(
            price_for(prices, "DeepSeek-Chat"), {"prompt_tokens": 1_000_000, "completion_tokens": 250_000}
        )
        ledger.add_cost("deepseek-chat", cost)
    assert ledger.rows() == [LedgerRow("deepseek-chat", 3, 3_000_000, 750_000, approx(12.0), False, 0)]
    assert "¥12.00" in ledger.table()
