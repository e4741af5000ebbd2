"""What a reply cost: prices per model, token counts (the server's, or an estimate), and a running tally.
Pure.

Relays price in their own currency and units, and change prices often, so nothing here knows any price:
the user supplies a table. When the server reports no usage (some relays drop it from streams), token counts
are estimated from the text and every figure built on them is marked as an estimate.
"""

from __future__ import annotations

import fnmatch
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from ._errors import ConfigError

__all__ = [
    "Price",
    "UsageLedger",
    "estimate_tokens",
    "format_money",
    "parse_prices",
    "price_for",
    "reply_cost",
]

_KEYS = {"input", "output", "per_call"}
_GLOB = re.compile(r"[*?\[]")
# Ideographs and kana/hangul: tokenizers spend about one token on each (often more, rarely less).
_CJK = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_PRICE_HINT = (
    'give each model {"input": ..., "output": ...} (per million tokens), {"per_call": ...}, '
    "or an (input, output) pair"
)


class Price(NamedTuple):
    """A model's price. Token prices are per million tokens; ``per_call`` is a flat price per request
    (image models, some relays' per-use pricing) and, when set, token counts do not matter."""

    input_per_million: Optional[float]
    output_per_million: Optional[float]
    per_call: Optional[float]


def _number(model: str, field: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"price for {model}: {field} is {value}, not a number", _PRICE_HINT)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"price for {model}: {field} is {value!r}, not a number", _PRICE_HINT) from None
    if not isinstance(value, (int, float)):
        raise ConfigError(
            f"price for {model}: {field} is a {type(value).__name__}, not a number", _PRICE_HINT
        )
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"price for {model}: {field} is {value}, not a price", "prices are numbers ≥ 0")
    return number


def parse_prices(table: Mapping[str, Any]) -> dict[str, Price]:
    """Check and convert a user's price table.

    Keys are model names or glob patterns (``"deepseek-*"``); values are ``{"input": x, "output": y}``
    (per million tokens), ``{"per_call": z}``, or an ``(input, output)`` pair.

    Raises:
        ConfigError: not a mapping, or an entry that is not a price (the message names the model).
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"the price table is a {type(table).__name__}, not a dict", _PRICE_HINT)
    prices: dict[str, Price] = {}
    for model, entry in table.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"price table key {model!r} is not a model name", "use model names as keys")
        name = model.strip()
        if isinstance(entry, Mapping):
            unknown = sorted(str(k) for k in entry if k not in _KEYS)
            if unknown:
                raise ConfigError(
                    f"price for {name}: unknown field {', '.join(repr(k) for k in unknown)}",
                    "the fields are input, output (per million tokens) and per_call",
                )
            price = Price(
                _number(name, "input", entry.get("input")),
                _number(name, "output", entry.get("output")),
                _number(name, "per_call", entry.get("per_call")),
            )
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            price = Price(_number(name, "input", entry[0]), _number(name, "output", entry[1]), None)
        else:
            raise ConfigError(f"price for {name} is {entry!r}, which is not a price", _PRICE_HINT)
        if price == Price(None, None, None):
            raise ConfigError(f"price for {name} names no price", _PRICE_HINT)
        prices[name] = price
    return prices


def price_for(prices: Mapping[str, Price], model: str) -> Optional[Price]:
    """The price of ``model``: an exact (case-insensitive) entry, else the most specific matching glob
    pattern (the longest; among equals, the one with fewer wildcards, then the first). None if none fits."""
    wanted = model.strip().lower()
    if not wanted:
        return None
    for key, price in prices.items():
        if key.lower() == wanted:
            return price
    best: Optional[tuple[int, int]] = None
    chosen: Optional[Price] = None
    for key, price in prices.items():
        pattern = key.lower()
        if not _GLOB.search(pattern) or not fnmatch.fnmatchcase(wanted, pattern):
            continue
        rank = (len(pattern), -len(_GLOB.findall(pattern)))
        if best is None or rank > best:
            best, chosen = rank, price
    return chosen


def estimate_tokens(text: str) -> int:
    """A rough token count for when the server reports none.

    CJK characters (Chinese, Japanese kana, Korean hangul, fullwidth punctuation) count about one token
    each; all other text about one token per 4 characters. Real tokenizers differ by model, typically
    within ±30% of this. Non-empty text is at least 1 token; empty text is 0.
    """
    if not text:
        return 0
    other = _CJK.sub("", text)
    cjk = len(text) - len(other)
    return max(1, cjk + math.ceil(len(other) / 4))


def _count(usage: Optional[Mapping[str, Any]], *names: str) -> Optional[int]:
    if not usage:
        return None
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, float) and value >= 0 and value.is_integer():
            return int(value)
    return None


def reply_cost(
    price: Optional[Price],
    usage: Optional[Mapping[str, Any]],
    *,
    prompt_text: str = "",
    answer_text: str = "",
) -> tuple[Optional[float], bool, int, int]:
    """(cost, estimated, prompt_tokens, completion_tokens) for one reply.

    Token counts come from the server's ``usage`` (``prompt_tokens``/``completion_tokens``, or the
    ``input_tokens``/``output_tokens`` some relays pass through); a count that is missing is estimated from
    the text with :func:`estimate_tokens`, and ``estimated`` is True. The cost is None when there is no
    price, or when a token price needed for a non-zero count is missing. A ``per_call`` price is the cost
    whatever the tokens.
    """
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    completion = _count(usage, "completion_tokens", "output_tokens")
    estimated = prompt is None or completion is None
    if prompt is None:
        prompt = estimate_tokens(prompt_text)
    if completion is None:
        completion = estimate_tokens(answer_text)
    if price is None:
        return None, estimated, prompt, completion
    if price.per_call is not None:
        return price.per_call, estimated, prompt, completion
    cost = 0.0
    for tokens, rate in ((prompt, price.input_per_million), (completion, price.output_per_million)):
        if tokens == 0:
            continue
        if rate is None:
            return None, estimated, prompt, completion
        cost += tokens * rate / 1_000_000
    return cost, estimated, prompt, completion


def format_money(amount: float, currency: str = "¥") -> str:
    """``¥1.20``, ``$0.50``, ``¥0.0123``: two decimals from 0.1 up; below that four, or more where needed to
    keep two significant digits (``¥0.000012``), so a cheap reply never shows as ``¥0.00``."""
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    decimals = 2 if value == 0 or value >= 0.1 else max(4, 1 - math.floor(math.log10(value)))
    if decimals > 2 and round(value, decimals) >= 0.1:
        decimals = 2  # 0.0999996 rounds up into the two-decimal range: show "0.10", not "0.1000"
    return f"{sign}{currency}{value:,.{decimals}f}"


def _width(text: str) -> int:
    """Terminal/monospace width: wide (CJK) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


class _Row:
    __slots__ = ("calls", "completion", "cost", "estimated", "prompt", "unknown")

    def __init__(self) -> None:
        self.calls = 0
        self.prompt = 0
        self.completion = 0
        self.cost = 0.0
        self.unknown = False
        self.estimated = False


class UsageLedger:
    """Tokens and money spent, per model, since the ledger was created or reset."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    def add(
        self, model: str, prompt_tokens: int, completion_tokens: int, cost: Optional[float], estimated: bool
    ) -> None:
        """Record one reply. ``cost`` None means the price is unknown; the model's total is then unknown."""
        row = self._rows.setdefault(model, _Row())
        row.calls += 1
        row.prompt += prompt_tokens
        row.completion += completion_tokens
        if cost is None:
            row.unknown = True
        else:
            row.cost += cost
        row.estimated = row.estimated or estimated

    def rows(self) -> list[tuple[str, int, int, int, Optional[float], bool]]:
        """(model, calls, prompt tokens, completion tokens, cost or None if any price was unknown, whether
        any figure is estimated), in the order the models were first used."""
        return [
            (model, r.calls, r.prompt, r.completion, None if r.unknown else r.cost, r.estimated)
            for model, r in self._rows.items()
        ]

    def total(self) -> tuple[int, int, int, Optional[float], bool]:
        """(calls, prompt tokens, completion tokens, known cost or None if none is known, any estimated)."""
        rows = list(self._rows.values())
        known = [r.cost for r in rows if not r.unknown]
        return (
            sum(r.calls for r in rows),
            sum(r.prompt for r in rows),
            sum(r.completion for r in rows),
            sum(known) if known else None,
            any(r.estimated for r in rows),
        )

    def table(self, currency: str = "¥") -> str:
        """A plain-text table, one line per model and a total; ``~`` marks estimates, ``?`` unknown prices."""
        if not self._rows:
            return "no usage recorded yet"

        def money(cost: Optional[float], estimated: bool) -> str:
            if cost is None:
                return "?"
            return ("~" if estimated else "") + format_money(cost, currency)

        lines = [["model", "calls", "prompt", "completion", "cost"]]
        for model, calls, prompt, completion, cost, estimated in self.rows():
            lines.append([model, f"{calls:,}", f"{prompt:,}", f"{completion:,}", money(cost, estimated)])
        calls, prompt, completion, known, estimated = self.total()
        some_unknown = any(r.unknown for r in self._rows.values())
        total_cost = money(known, estimated)
        if some_unknown and known is not None:
            total_cost = "≥ " + total_cost  # the unknown prices can only add to it
        lines.append(["total", f"{calls:,}", f"{prompt:,}", f"{completion:,}", total_cost])
        widths = [max(_width(line[i]) for line in lines) for i in range(5)]
        out = [
            "  ".join(_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(line)).rstrip()
            for line in lines
        ]
        rule = "-" * _width(out[0])
        out.insert(1, rule)
        out.insert(len(out) - 1, rule)
        notes = []
        if any(r.estimated for r in self._rows.values()):
            notes.append("~ estimated from the text: the server sent no token counts")
        if some_unknown:
            notes.append("? no price set for this model")
        return "\n".join(out + notes)

    def reset(self) -> None:
        """Forget everything recorded."""
        self._rows.clear()

    def __len__(self) -> int:
        """The number of replies recorded."""
        return sum(r.calls for r in self._rows.values())
