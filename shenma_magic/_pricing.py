"""What a reply cost: prices per model, token counts (the server's, or an estimate), and a running tally.
Pure.

Relays price in their own currency and units, and change prices often, so nothing here knows any price:
the user supplies a table. When the server reports no usage (some relays drop it from streams), token counts
are estimated from the text, bounded by what is known (the request's ``max_tokens``, the server's
``total_tokens``), and every figure built on them is marked as an estimate.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional, Union

from ._errors import ConfigError
from ._tokencount import estimate_tokens

__all__ = [
    "Cost",
    "LedgerRow",
    "LedgerTotal",
    "Price",
    "TokenCount",
    "UsageLedger",
    "estimate_completion_tokens",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "format_money",
    "parse_prices",
    "price_for",
    "reply_cost",
]

# Chat templates wrap every message in a few tokens (role, start and end markers) and prime the reply with a
# few more: OpenAI's cookbook counts 3 per message plus the role, and 3 per request; llama.cpp's templates
# spend as many or more.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3
# An image costs at least OpenAI's low-detail base; more at high detail, which cannot be known here.
TOKENS_PER_IMAGE = 85

_KEYS = {"input", "output", "per_call"}
_GLOB = re.compile(r"[*?\[]")
_PRICE_HINT = (
    'give each model {"input": ..., "output": ...} (per million tokens), {"per_call": ...}, '
    "or an (input, output) pair"
)


class TokenCount(NamedTuple):
    """The tokens of one reply: the server's counts, or estimates when ``estimated``."""

    prompt: int
    completion: int
    estimated: bool


class Cost(NamedTuple):
    """What one reply cost and the tokens it is based on. ``amount`` is None when there is no price for
    the model (or a rate needed for a non-zero count is missing); ``estimated`` when either count is."""

    amount: Optional[float]
    estimated: bool
    prompt: int
    completion: int

    @property
    def tokens(self) -> TokenCount:
        return TokenCount(self.prompt, self.completion, self.estimated)


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


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):
        return 0
    tokens = 0
    for part in content:
        if isinstance(part, str):
            tokens += estimate_tokens(part)
        elif isinstance(part, dict):
            if part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                tokens += estimate_tokens(part["text"])
            elif part.get("type") in ("image_url", "input_image", "image"):
                tokens += TOKENS_PER_IMAGE
    return tokens


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], *, tools: Optional[Sequence[Mapping[str, Any]]] = None
) -> int:
    """A rough count of the prompt tokens a request spends: each message's text (and images, tool calls)
    plus the chat template's overhead, :data:`TOKENS_PER_MESSAGE` a message and :data:`TOKENS_PER_REQUEST`;
    the tool specs offered, counted from their JSON."""
    tokens = TOKENS_PER_REQUEST
    for message in messages:
        tokens += TOKENS_PER_MESSAGE + _content_tokens(message.get("content"))
        name = message.get("name")
        if isinstance(name, str):
            tokens += estimate_tokens(name)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    tokens += TOKENS_PER_REQUEST + estimate_tokens(
                        f"{function.get('name') or ''} {function.get('arguments') or ''}"
                    )
    if tools:
        tokens += estimate_tokens(json.dumps(list(tools), ensure_ascii=False))
    return tokens


def estimate_completion_tokens(text: str, *, max_tokens: Optional[int] = None) -> int:
    """A rough count of the tokens of a generated ``text``, never above the request's ``max_tokens``."""
    return _capped(estimate_tokens(text), max_tokens)


def _capped(tokens: int, max_tokens: Optional[int]) -> int:
    if max_tokens is not None and max_tokens >= 0:
        tokens = min(tokens, max_tokens)
    return tokens


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
    messages: Optional[Sequence[Mapping[str, Any]]] = None,
    tools: Optional[Sequence[Mapping[str, Any]]] = None,
    max_tokens: Optional[int] = None,
    prompt_estimate: Optional[int] = None,
    answer_estimate: Optional[int] = None,
) -> Cost:
    """The :class:`Cost` of one reply.

    Token counts come from the server's ``usage`` (``prompt_tokens``/``completion_tokens``, or the
    ``input_tokens``/``output_tokens`` some relays pass through; one of them from ``total_tokens`` when only
    the other is given). A count still missing is estimated and ``estimated`` is True: the prompt from
    ``messages`` (with the chat template's overhead, and ``tools``) or else ``prompt_text``; the completion
    from ``answer_text``, never above ``max_tokens``. ``prompt_estimate`` and ``answer_estimate``, when
    given, are those estimates already made (a prompt counted once, a :class:`TokenTally` of a streaming
    answer), used instead of counting the texts again. The cost is None when there is no price, or when a
    token price needed for a non-zero count is missing. A ``per_call`` price is the cost whatever the
    tokens.
    """
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    completion = _count(usage, "completion_tokens", "output_tokens")
    total = _count(usage, "total_tokens")
    if total is not None:
        if prompt is None and completion is not None and total >= completion:
            prompt = total - completion
        elif completion is None and prompt is not None and total >= prompt:
            completion = total - prompt
    estimated = prompt is None or completion is None
    if prompt is None:
        if prompt_estimate is not None:
            prompt = prompt_estimate
        elif messages is not None:
            prompt = estimate_prompt_tokens(messages, tools=tools)
        else:
            prompt = estimate_tokens(prompt_text)
    if completion is None:
        answer = answer_estimate if answer_estimate is not None else estimate_tokens(answer_text)
        completion = _capped(answer, max_tokens)
    return Cost(_priced(price, 1, prompt, completion), estimated, prompt, completion)


def _priced(price: Optional[Price], calls: int, prompt: int, completion: int) -> Optional[float]:
    if price is None:
        return None
    if price.per_call is not None:
        return price.per_call * calls
    cost = 0.0
    for tokens, rate in ((prompt, price.input_per_million), (completion, price.output_per_million)):
        if tokens == 0:
            continue
        if rate is None:
            return None
        cost += tokens * rate / 1_000_000
    return cost


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


class LedgerRow(NamedTuple):
    """One model's line in the usage ledger."""

    model: str
    calls: int
    prompt: int
    completion: int
    cost: Optional[float]  # the known part; None when no reply of the model has a price
    estimated: bool  # some token count (and so some cost) is estimated
    unpriced: int  # replies without a price: the cost, if any, is a lower bound


class LedgerTotal(NamedTuple):
    """The sum of every row of the usage ledger."""

    calls: int
    prompt: int
    completion: int
    cost: Optional[float]
    estimated: bool
    unpriced: int


class _Row:
    __slots__ = ("calls", "completion", "cost", "estimated", "priced", "prompt", "unpriced")

    def __init__(self) -> None:
        self.calls = 0
        self.prompt = 0
        self.completion = 0
        self.cost = 0.0
        self.priced = 0  # replies whose cost is in self.cost
        self.estimated = False
        # Replies recorded without a price: (calls, prompt tokens, completion tokens), priced later if the
        # user sets a price for the model.
        self.unpriced = (0, 0, 0)


class UsageLedger:
    """Tokens and money spent, per model, since the ledger was created or reset.

    A reply recorded without a price keeps its tokens: :meth:`rows`, :meth:`total` and :meth:`table`
    price them with the prices they are given, so prices set after some replies still count for them.
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    def add(
        self, model: str, prompt_tokens: int, completion_tokens: int, cost: Optional[float], estimated: bool
    ) -> None:
        """Record one reply. ``cost`` None means the price is unknown (for now)."""
        row = self._rows.setdefault(model, _Row())
        row.calls += 1
        row.prompt += prompt_tokens
        row.completion += completion_tokens
        if cost is None:
            calls, prompt, completion = row.unpriced
            row.unpriced = (calls + 1, prompt + prompt_tokens, completion + completion_tokens)
        else:
            row.cost += cost
            row.priced += 1
        row.estimated = row.estimated or estimated

    def add_cost(self, model: str, cost: Cost) -> None:
        """Record one reply from its :class:`Cost`."""
        self.add(model, cost.prompt, cost.completion, cost.amount, cost.estimated)

    def rows(self, prices: Optional[Mapping[str, Price]] = None) -> list[LedgerRow]:
        """One :class:`LedgerRow` per model, in the order the models were first used; replies recorded
        without a price are priced with ``prices`` where it has one for the model."""
        out = []
        for model, r in self._rows.items():
            cost: Optional[float] = r.cost if r.priced else None
            unpriced, prompt, completion = r.unpriced
            if unpriced and prices:
                late = _priced(price_for(prices, model), unpriced, prompt, completion)
                if late is not None:
                    cost, unpriced = (cost or 0.0) + late, 0
            out.append(LedgerRow(model, r.calls, r.prompt, r.completion, cost, r.estimated, unpriced))
        return out

    def total(self, prices: Optional[Mapping[str, Price]] = None) -> LedgerTotal:
        """The :class:`LedgerTotal` of :meth:`rows`; its cost is the known part (None if none is known)."""
        rows = self.rows(prices)
        known = [r.cost for r in rows if r.cost is not None]
        return LedgerTotal(
            sum(r.calls for r in rows),
            sum(r.prompt for r in rows),
            sum(r.completion for r in rows),
            sum(known) if known else None,
            any(r.estimated for r in rows),
            sum(r.unpriced for r in rows),
        )

    def table(self, currency: str = "¥", prices: Optional[Mapping[str, Price]] = None) -> str:
        """A plain-text table, one line per model and a total, then a legend for the marks that appear:
        ``~`` estimated, ``?`` no price, ``≥`` a lower bound (some replies had no price)."""
        if not self._rows:
            return "no usage recorded yet"

        def money(cost: Optional[float], estimated: bool, unpriced: int) -> str:
            if cost is None:
                return "?"
            shown = ("~" if estimated else "") + format_money(cost, currency)
            return "≥ " + shown if unpriced else shown

        def count(tokens: int, estimated: bool) -> str:
            return ("~" if estimated else "") + f"{tokens:,}"

        lines = [["model", "calls", "prompt", "completion", "cost"]]
        figures: list[tuple[str, Union[LedgerRow, LedgerTotal]]] = [(r.model, r) for r in self.rows(prices)]
        figures.append(("total", self.total(prices)))
        for name, row in figures:
            lines.append(
                [
                    name,
                    f"{row.calls:,}",
                    count(row.prompt, row.estimated),
                    count(row.completion, row.estimated),
                    money(row.cost, row.estimated, row.unpriced),
                ]
            )
        widths = [max(_width(line[i]) for line in lines) for i in range(5)]
        out = [
            "  ".join(_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(line)).rstrip()
            for line in lines
        ]
        rule = "-" * _width(out[0])
        out.insert(1, rule)
        out.insert(len(out) - 1, rule)
        cells = [cell for line in lines[1:] for cell in line[1:]]
        notes = []
        if any(cell.startswith("~") or cell.startswith("≥ ~") for cell in cells):
            notes.append("~ estimated from the text: the server sent no token counts")
        if "?" in cells:
            notes.append("? no price set for this model")
        if any(cell.startswith("≥") for cell in cells):
            notes.append("≥ some replies have no price: the cost shown is the part that is known")
        return "\n".join(out + notes)

    def reset(self) -> None:
        """Forget everything recorded."""
        self._rows.clear()

    def __len__(self) -> int:
        """The number of replies recorded."""
        return sum(r.calls for r in self._rows.values())
