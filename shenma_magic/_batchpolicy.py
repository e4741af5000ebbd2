"""How a batch of independent requests behaves toward the relay and the budget: which failures are
retried and when, how many requests may be in flight, when to stop, and what the run amounts to. Pure.

* :func:`judge` sorts a failure: retry it (429, 5xx, a timeout, a dropped connection), fail the row
  (400, a refused schema...), or stop the batch (a bad key, no quota left, no channel for the model:
  every other row would fail the same way).
* :class:`Limiter` is AIMD on the number of requests in flight: halved when the relay pushes back
  (429/503), once per round of requests that saw it; raised by 1 per success while ramping up (it
  doubles per round) and by 1 per round after a pushback, back to ramping once the relay has been quiet
  for two rounds.
* :func:`retry_delay` is the wait before the next attempt: the server's ``Retry-After`` when it sends
  one, else exponential backoff with jitter.
* :class:`Budget` keeps spent plus the estimate of what is in flight under ``max_cost``.
* :class:`Tally` counts the outcome and writes the summary line.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Optional

from ._errors import (
    APIStatusError,
    APITimeoutError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    KeyInRequestError,
    ShenmaError,
    is_no_channel,
    is_quota,
)
from ._pricing import Price, format_money
from ._secret import excerpt

__all__ = [
    "DEFAULT_ATTEMPTS",
    "OUTPUT_GUESS",
    "PUSHBACK_ATTEMPTS_FACTOR",
    "Budget",
    "Limiter",
    "Tally",
    "Verdict",
    "judge",
    "retry_delay",
]

DEFAULT_ATTEMPTS = 4  # tries per row, the first included
# A row refused because the relay is busy (429/503) was not at fault: it gets this many times the tries.
PUSHBACK_ATTEMPTS_FACTOR = 2
OUTPUT_GUESS = 256  # answer tokens per row assumed for estimates when max_tokens is not set
_RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
_PUSHBACK_STATUSES = frozenset({429, 503, 529})
_FATAL_STATUSES = frozenset({401, 402})
_LONGEST_WAIT = 300.0  # a Retry-After beyond this stops the batch rather than waiting that long
_FIRST_FAILURES = 10  # this many rows failed for good before any succeeded: the batch is stopped

Kind = Literal["retry", "fail", "fatal"]


class Verdict(NamedTuple):
    """What to do after a failed attempt: ``retry`` the row, ``fail`` it, or stop the batch (``fatal``).
    ``pushback``: the relay asked for less (lower the concurrency); ``wait``: its Retry-After, seconds."""

    kind: Kind
    pushback: bool = False
    wait: Optional[float] = None


def judge(error: ShenmaError) -> Verdict:
    """Sort one failed attempt (see the module docstring)."""
    if isinstance(error, KeyInRequestError):
        return Verdict("fail")  # that row's text holds a key; the other rows may well not
    if isinstance(error, ConfigError):
        return Verdict("fatal")
    if isinstance(error, APIStatusError):
        text = f"{error.server_message} {error.code or ''}"
        if error.status_code in _FATAL_STATUSES or is_quota(text) or is_no_channel(text):
            return Verdict("fatal")
        if error.status_code in _RETRY_STATUSES:
            wait = error.retry_after
            if wait is not None and wait > _LONGEST_WAIT:
                return Verdict("fatal", True, wait)
            return Verdict("retry", error.status_code in _PUSHBACK_STATUSES, wait)
        return Verdict("fail")
    if isinstance(error, (APITimeoutError, ConnectionLostError, ConnectError)):
        return Verdict("retry")
    return Verdict("fail")


def retry_delay(
    attempt: int,
    wait: Optional[float],
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` ≥ 1 tries made): the server's ``wait`` if it
    gave one, else ``base · 2^(attempt-1)`` up to ``cap``, jittered into its upper half so rows that failed
    together do not all come back together."""
    if wait is not None:
        return max(0.0, wait)
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay * (0.5 + 0.5 * rng())


class Limiter:
    """How many requests may be in flight: starts at ``bound``; halved on pushback, raised on success.

    Below ``threshold`` each success adds 1 (the limit doubles per round of requests); at or above it, each
    adds 1/limit (one more per round), so that just under the relay's own limit the client probes gently
    instead of knocking again at once. A pushback sets the threshold to the halved limit; two rounds
    without one (2 × limit successes) set it back to the bound, so a relay that recovered gets the full
    concurrency back in a few rounds.

    A pushback halves the limit once per "epoch": the requests that were already in flight when it was
    lowered carry the old epoch, and their own pushbacks (the same burst, seen again) do not halve it again.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._limit = float(bound)
        self.threshold = float(bound)
        self.epoch = 0
        self._quiet = 0  # successes since the last pushback

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def success(self) -> None:
        step = 1.0 if self._limit < self.threshold else 1.0 / self._limit
        self._limit = min(float(self.bound), self._limit + step)
        self._quiet += 1
        if self._quiet >= 2 * self._limit:
            self.threshold = float(self.bound)

    def pushback(self, epoch: int) -> bool:
        """The relay pushed back on a request started in ``epoch``; True if the limit was lowered."""
        if epoch != self.epoch:
            return False
        self._limit = max(1.0, self._limit / 2)
        self.threshold = self._limit
        self._quiet = 0
        self.epoch += 1
        return True


def row_cost(price: Optional[Price], prompt_tokens: float, completion_tokens: float) -> Optional[float]:
    """The cost of one request with these token counts; None without a price (or a needed rate)."""
    if price is None:
        return None
    if price.per_call is not None:
        return price.per_call
    cost = 0.0
    for tokens, rate in (
        (prompt_tokens, price.input_per_million),
        (completion_tokens, price.output_per_million),
    ):
        if tokens <= 0:
            continue
        if rate is None:
            return None
        cost += tokens * rate / 1_000_000
    return cost


class Budget:
    """Spent money plus the estimate of the requests in flight, kept under ``limit`` (None: no limit).

    A request's estimate is its prompt tokens (estimated from the text, scaled by how far the server's
    counts have differed from such estimates so far) plus its answer: ``max_tokens`` when set, else the
    larger of :data:`OUTPUT_GUESS` and 1.25 × the mean answer so far.
    """

    def __init__(self, limit: Optional[float], price: Optional[Price], max_tokens: Optional[int]) -> None:
        self.limit = limit
        self.price = price
        self.max_tokens = max_tokens
        self.spent = 0.0
        self._held: dict[int, float] = {}
        self._held_total = 0.0
        self._estimated_prompt = 0
        self._actual_prompt = 0
        self._answers = 0
        self._answer_tokens = 0

    @property
    def output_tokens(self) -> int:
        """Answer tokens assumed per request."""
        if self.max_tokens is not None:
            return self.max_tokens
        if self._answers >= 5:
            return max(OUTPUT_GUESS, int(1.25 * self._answer_tokens / self._answers))
        return OUTPUT_GUESS

    def estimate(self, prompt_tokens: int) -> float:
        ratio = self._actual_prompt / self._estimated_prompt if self._estimated_prompt else 1.0
        cost = row_cost(self.price, prompt_tokens * max(1.0, ratio), self.output_tokens)
        return cost or 0.0

    @property
    def in_flight(self) -> float:
        return self._held_total

    def admit(self, row: int, prompt_tokens: int) -> bool:
        """Reserve the estimate of a request for ``row``; False (nothing reserved) if it would pass the
        limit."""
        estimate = self.estimate(prompt_tokens)
        if self.limit is not None and self.spent + self._held_total + estimate > self.limit:
            return False
        self._held[row] = estimate
        self._held_total += estimate
        return True

    def settle(
        self,
        row: int,
        cost: Optional[float],
        *,
        estimated_prompt: int,
        prompt: int,
        completion: int,
        answered: bool,
    ) -> None:
        """A request for ``row`` ended: release its reservation, add what it cost (an unpriced cost counts
        as its estimate), and learn from its token counts."""
        held = self._held.pop(row, 0.0)
        self._held_total = max(0.0, self._held_total - held)
        self.spent += cost if cost is not None else 0.0
        if answered:
            self._estimated_prompt += estimated_prompt
            self._actual_prompt += prompt
            self._answers += 1
            self._answer_tokens += completion


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


@dataclass
class Tally:
    """What a batch came to, for the progress display and the summary line."""

    total: Optional[int] = None
    done: int = 0  # answered (sent now, or from the store)
    from_store: int = 0
    failed: int = 0
    not_sent: int = 0
    retries: int = 0  # attempts that were retried
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    priced: bool = False  # a cost is known for at least one request
    estimated: bool = False  # some token count (so some cost) is an estimate
    reasons: Counter[str] = field(default_factory=Counter)
    failed_rows: list[int] = field(default_factory=list)  # the first few, for the summary
    stopped: str = ""  # why no more rows were sent, if the batch stopped early

    def fail(self, row: int, reason: str) -> None:
        self.failed += 1
        self.reasons[excerpt(reason, 100)] += 1
        if len(self.failed_rows) < 5:
            self.failed_rows.append(row)

    def charge(self, prompt: int, completion: int, cost: Optional[float], estimated: bool) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.estimated = self.estimated or estimated
        if cost is not None:
            self.cost += cost
            self.priced = True

    @property
    def hopeless(self) -> bool:
        """The first rows sent all failed for good: the rest would too (a wrong model name, a bad option)."""
        return self.failed >= _FIRST_FAILURES and self.done == self.from_store

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def money(self, currency: str) -> str:
        if not self.priced:
            return ""
        return ("~" if self.estimated else "") + format_money(self.cost, currency)

    def summary(self, currency: str = "¥", elapsed: Optional[float] = None) -> str:
        """``238 done, 2 failed (HTTP 400: … — rows 17, 203) · 12 from the store · 9,120 tokens · ¥0.83 ·
        48.2 s``; rows are numbered from 0 in the order of the data."""
        parts = [f"{self.done:,} done"]
        if self.failed:
            reason, _count = self.reasons.most_common(1)[0]
            others = len(self.reasons) - 1
            rows = ", ".join(str(r) for r in self.failed_rows)
            more = " …" if self.failed > len(self.failed_rows) else ""
            label = "row" if self.failed == 1 else "rows"
            also = f"; and {plural(others, 'other reason')}" if others else ""
            parts[0] += f", {self.failed:,} failed ({reason}{also} — {label} {rows}{more})"
        if self.not_sent:
            parts[0] += f", {self.not_sent:,} not sent"
        extras = []
        if self.from_store:
            extras.append(f"{self.from_store:,} from the store")
        if self.retries:
            extras.append(plural(self.retries, "retry").replace("retrys", "retries"))
        tokens = self.prompt_tokens + self.completion_tokens
        if tokens:
            extras.append(("~" if self.estimated else "") + plural(tokens, "token"))
        if self.priced:
            extras.append(self.money(currency))
        if elapsed is not None:
            extras.append(f"{elapsed:.1f} s")
        line = " · ".join([parts[0], *extras])
        if self.stopped:
            line += f" — {self.stopped}"
        return line


def estimate_line(
    *, rows: Optional[int], sample: int, prompt_tokens: float, budget: Budget, currency: str
) -> Optional[str]:
    """Before a priced batch starts: what it should cost, and on what the estimate rests. None unpriced."""
    per_row = budget.estimate(round(prompt_tokens))
    if budget.price is None or not per_row:
        return None
    output = budget.output_tokens
    answer = (
        f"≤ {output:,} (max_tokens)"
        if budget.max_tokens is not None
        else f"~{output:,} (a guess: set max_tokens)"
    )
    basis = (
        f"prompt ~{prompt_tokens:,.0f} tokens/row from the first {sample:,} rows, answer {answer} tokens/row"
    )
    if rows is None:
        return f"estimate: {format_money(per_row, currency)} per row to send ({basis})"
    return f"estimate: ~{format_money(per_row * rows, currency)} for {rows:,} rows to send ({basis})"
