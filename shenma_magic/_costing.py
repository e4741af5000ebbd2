"""Tokens and cost of one request as its reply streams, and charging them to a ledger. Pure.

The counts are the server's when it reports usage, else estimates from the text (marked as such); the
cost needs a price for the model from the user's table.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

from ._chunks import text_of
from ._models import Reply, ReplyBuilder

if TYPE_CHECKING:
    from ._pricing import Price, UsageLedger
    from ._run import Measure

__all__ = ["Costing", "generated_text", "prompt_text"]


def generated_text(reply: Union[Reply, ReplyBuilder]) -> str:
    """Everything the model generated (answer, reasoning, tool-call arguments), for token estimates."""
    calls = "".join(str(c.get("function", {}).get("arguments", "")) for c in reply.tool_calls)
    return f"{reply.text}{reply.reasoning}{calls}"


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(text_of(m.get("content")) for m in messages)


@dataclass(frozen=True)
class Costing:
    """How one request's reply is counted and priced."""

    price: Optional[Price]
    currency: str
    prompt: str
    message_count: int
    max_tokens: Optional[int]

    @classmethod
    def for_request(
        cls,
        prices: Mapping[str, Any],
        currency: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: Optional[int] = None,
    ) -> Costing:
        from ._pricing import parse_prices, price_for

        price = price_for(parse_prices(prices), model) if prices else None
        return cls(price, currency, prompt_text(messages), len(messages), max_tokens)

    @functools.cached_property
    def _prompt_estimate(self) -> int:
        # The prompt does not change while a reply streams: counted once, not on every status refresh.
        from ._pricing import estimate_tokens

        return estimate_tokens(self.prompt)

    def _cost(
        self, usage: Optional[dict[str, Any]], *, answer: str = "", answer_estimate: Optional[int] = None
    ) -> tuple[Optional[float], bool, int, int]:
        from ._pricing import reply_cost

        return reply_cost(
            self.price,
            usage,
            prompt_estimate=self._prompt_estimate,
            answer_text=answer,
            answer_estimate=answer_estimate,
            max_tokens=self.max_tokens,  # an estimate never above what the request allowed
        )

    def measure(self, builder: ReplyBuilder) -> Measure:
        """The tokens and cost of what the reply has so far (summed over a turn's rounds by the policy).
        Called on every refresh of a live status line: the builder keeps its token estimate as deltas
        arrive, so this costs the same early and late in a long reply."""
        from ._run import Measure, Tokens

        cost, estimated, prompt, completion = self._cost(
            builder.usage, answer_estimate=builder.generated_tokens
        )
        return Measure(Tokens(prompt, completion, estimated), cost)

    def money(self, amount: float) -> str:
        from ._pricing import format_money

        return format_money(amount, self.currency)

    def counted(self, reply: Reply) -> Optional[tuple[Optional[float], bool, int, int]]:
        """(cost, estimated, prompt tokens, completion tokens) of one round; None for a request that failed
        before the model produced anything (it is not charged)."""
        if not (reply.usage or reply.text or reply.reasoning or reply.tool_calls):
            return None
        return self._cost(reply.usage, answer=generated_text(reply))

    def charge(self, ledger: UsageLedger, model: str, reply: Reply) -> None:
        """Add one round's tokens and cost to ``ledger``; a request that failed before the model produced
        anything is not charged."""
        figures = self.counted(reply)
        if figures is not None:
            cost, estimated, prompt, completion = figures
            ledger.add(model, prompt, completion, cost, estimated)
