"""Prices, token counts and the usage ledger."""

from __future__ import annotations

import math
import time
import unicodedata
from typing import Any

import pytest

from shenma_magic._errors import ConfigError
from shenma_magic._pricing import (
    Price,
    UsageLedger,
    estimate_tokens,
    format_money,
    parse_prices,
    price_for,
    reply_cost,
)

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
        parse_prices([("gpt-4o", 1, 2)])  # type: ignore[arg-type]


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


# -- estimate_tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("hello world, this is forty characters!!", 10),
        ("你好世界", 4),
        ("你好，世界！", 6),  # fullwidth punctuation counts like the characters
        ("こんにちは", 5),
        ("안녕하세요", 5),
        ("用Python写代码", 4 + 2),  # 4 CJK + "Python" (6 characters -> 2)
        ("😀", 1),
        ("   ", 1),
    ],
)
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_estimate_tokens_huge_text_is_fast() -> None:
    text = ("数据分析 data analysis " * 100_000)[:2_000_000]
    started = time.perf_counter()
    tokens = estimate_tokens(text)
    assert time.perf_counter() - started < 2
    assert 500_000 < tokens < 2_000_000


# -- reply_cost ----------------------------------------------------------------------------------------------

GPT = Price(1.0, 4.0, None)


def test_cost_from_reported_usage() -> None:
    usage = {"prompt_tokens": 1_000, "completion_tokens": 500, "total_tokens": 1_500}
    cost, estimated, prompt, completion = reply_cost(GPT, usage, prompt_text="ignored", answer_text="ignored")
    assert cost == pytest.approx(1_000 * 1.0 / 1e6 + 500 * 4.0 / 1e6)
    assert (estimated, prompt, completion) == (False, 1_000, 500)


def test_cost_estimated_without_usage() -> None:
    cost, estimated, prompt, completion = reply_cost(
        GPT, None, prompt_text="你好" * 50, answer_text="a" * 400
    )
    assert (estimated, prompt, completion) == (True, 100, 100)
    assert cost == pytest.approx(100 / 1e6 + 400 / 1e6)


def test_partial_usage_estimates_the_missing_half() -> None:
    _, estimated, prompt, completion = reply_cost(GPT, {"prompt_tokens": 10}, answer_text="abcdefgh")
    assert (estimated, prompt, completion) == (True, 10, 2)


def test_anthropic_style_usage_names() -> None:
    _, estimated, prompt, completion = reply_cost(GPT, {"input_tokens": 7, "output_tokens": 3})
    assert (estimated, prompt, completion) == (False, 7, 3)


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
    _, estimated, prompt, _ = reply_cost(GPT, usage, prompt_text="abcdefgh")
    assert estimated and prompt == 2


def test_float_counts_are_accepted() -> None:
    assert reply_cost(GPT, {"prompt_tokens": 10.0, "completion_tokens": 2.0})[1:] == (False, 10, 2)


def test_per_call_price_ignores_tokens() -> None:
    assert reply_cost(Price(None, None, 0.3), {"prompt_tokens": 10**9, "completion_tokens": 10**9}) == (
        0.3,
        False,
        10**9,
        10**9,
    )
    assert reply_cost(Price(1.0, 1.0, 0.04), None, prompt_text="x")[0] == 0.04


def test_unknown_or_incomplete_prices() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 50}
    assert reply_cost(None, usage) == (None, False, 100, 50)
    assert reply_cost(Price(1.0, None, None), usage)[0] is None  # output tokens but no output price
    no_output = {"prompt_tokens": 100, "completion_tokens": 0}
    assert reply_cost(Price(1.0, None, None), no_output)[0] == pytest.approx(0.0001)


def test_zero_tokens_cost_nothing() -> None:
    assert reply_cost(GPT, None) == (0.0, True, 0, 0)


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


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_ledger_rows_accumulate_per_model_in_first_use_order() -> None:
    ledger = UsageLedger()
    ledger.add("gpt-4o-mini", 100, 50, 0.01, False)
    ledger.add("deepseek-chat", 10, 5, None, False)
    ledger.add("gpt-4o-mini", 200, 70, 0.02, True)
    ledger.add("deepseek-chat", 10, 5, 0.5, False)
    assert ledger.rows() == [
        ("gpt-4o-mini", 2, 300, 120, pytest.approx(0.03), True),
        ("deepseek-chat", 2, 20, 10, None, False),  # one unknown price makes the model's cost unknown
    ]
    assert ledger.total() == (4, 320, 130, pytest.approx(0.03), True)
    assert len(ledger) == 4


def test_ledger_table() -> None:
    ledger = UsageLedger()
    ledger.add("gpt-4o-mini", 1_200, 340, 0.0123, False)
    ledger.add("通义千问-max", 50, 20, None, True)
    table = ledger.table()
    lines = table.splitlines()
    assert lines[0].split() == ["model", "calls", "prompt", "completion", "cost"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == ["gpt-4o-mini", "1", "1,200", "340", "¥0.0123"]
    assert lines[3].split() == ["通义千问-max", "1", "50", "20", "?"]
    assert lines[5].split() == ["total", "2", "1,250", "360", "≥", "~¥0.0123"]
    # Right-aligned columns: every row ends where the header does, CJK counted as two columns.
    assert {_width(line) for line in lines[:6]} == {_width(lines[0])}
    assert "~ estimated" in table and "? no price" in table


def test_ledger_table_all_known_and_currency() -> None:
    ledger = UsageLedger()
    ledger.add("m", 1, 1, 1.5, False)
    table = ledger.table(currency="$")
    assert "$1.50" in table and "≥" not in table and "~" not in table and "?" not in table


def test_ledger_table_all_unknown() -> None:
    ledger = UsageLedger()
    ledger.add("m", 1, 1, None, False)
    assert ledger.table().splitlines()[-2].split()[-1] == "?"
    assert ledger.total()[3] is None


def test_ledger_reset_and_empty() -> None:
    ledger = UsageLedger()
    assert ledger.table() == "no usage recorded yet"
    assert ledger.rows() == [] and ledger.total() == (0, 0, 0, None, False)
    ledger.add("m", 1, 1, 0.1, False)
    ledger.reset()
    assert ledger.rows() == [] and len(ledger) == 0


def test_end_to_end_price_to_ledger() -> None:
    prices = parse_prices({"deepseek-*": {"input": 2, "output": 8}})
    ledger = UsageLedger()
    for _ in range(3):
        cost, estimated, prompt, completion = reply_cost(
            price_for(prices, "DeepSeek-Chat"), {"prompt_tokens": 1_000_000, "completion_tokens": 250_000}
        )
        ledger.add("deepseek-chat", prompt, completion, cost, estimated)
    assert ledger.rows() == [("deepseek-chat", 3, 3_000_000, 750_000, pytest.approx(12.0), False)]
    assert "¥12.00" in ledger.table()
