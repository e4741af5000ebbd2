"""The status line under a reply: model, timing, tokens, cost, how it ended. Pure."""

from __future__ import annotations

from typing import Optional

from ._models import CUT_REASONS

__all__ = ["MIN_RATE_WINDOW", "finish_text", "seconds_text", "status_text"]


def finish_text(finish_reason: str) -> str:
    """How the status line says why the model stopped, when that is not a plain ``stop``."""
    if finish_reason in CUT_REASONS:
        return f"cut at the token limit (finish: {finish_reason})"
    return f"finish: {finish_reason}"


MIN_RATE_WINDOW = 0.025
"""Seconds the tokens after the first must have taken for a tok/s figure to mean something: below that
they arrived in one burst (a buffering proxy, a tiny reply), and the rate would be noise."""


def seconds_text(seconds: float) -> str:
    """``0.41 s``, ``3.2 s``, ``125 s``: fewer decimals as the figure grows. The same rounding for every
    figure, so a larger time never shows as a smaller number."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def status_text(
    *,
    model: str,
    elapsed: float,
    first_token: Optional[float],
    tokens: Optional[tuple[int, int, bool]],
    finish_reason: Optional[str],
    cost: str = "",
    state: str = "",
    last_token: Optional[float] = None,
) -> str:
    """``gpt-4o-mini · first token 0.41 s · 3.2 s · 120 → 342 tokens · 107 tok/s · ¥0.0004``.

    ``elapsed``, ``first_token`` and ``last_token`` are seconds since the request was sent (the last two
    when the first and the last piece of the answer arrived; None if unknown). ``tokens`` is a
    :class:`~shenma_magic._pricing.TokenCount` (prompt, completion, estimated); estimated counts are shown
    with ``~``. The total is never shown smaller than the first-token time, and tok/s only when the tokens
    after the first took at least :data:`MIN_RATE_WINDOW` seconds, counted to ``last_token`` when given
    (so the wait for the usage chunk and ``[DONE]`` does not lower the rate).
    """
    if first_token is not None:
        first_token = max(0.0, first_token)
        elapsed = max(elapsed, first_token)
    if last_token is not None:
        elapsed = max(elapsed, last_token)
    parts = [model] if model else []
    if first_token is not None:
        parts.append(f"first token {seconds_text(first_token)}")
    parts.append(seconds_text(max(0.0, elapsed)))
    if tokens is not None:
        prompt, completion, estimated = tokens
        mark = "~" if estimated else ""
        parts.append(f"{mark}{prompt} → {mark}{completion} tokens" + (" (estimated)" if estimated else ""))
        if first_token is not None and completion >= 2:
            end = last_token if last_token is not None and last_token >= first_token else elapsed
            window = end - first_token
            if window >= MIN_RATE_WINDOW:
                # The first token came at first_token; the rest are what the window produced.
                parts.append(f"{mark}{(completion - 1) / window:.0f} tok/s")
    if cost:
        parts.append(cost)
    if finish_reason and finish_reason != "stop":
        parts.append(finish_text(finish_reason))
    if state:
        parts.append(state)
    return " · ".join(parts)
