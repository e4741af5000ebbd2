"""The status line under a reply: model, timing, tokens, cost, how it ended. Pure."""

from __future__ import annotations

from typing import Optional

from ._models import CUT_REASONS

__all__ = ["finish_text", "status_text"]


def finish_text(finish_reason: str) -> str:
    """How the status line says why the model stopped, when that is not a plain ``stop``."""
    if finish_reason in CUT_REASONS:
        return f"cut at the token limit (finish: {finish_reason})"
    return f"finish: {finish_reason}"


def status_text(
    *,
    model: str,
    elapsed: float,
    first_token: Optional[float],
    tokens: Optional[tuple[int, int, bool]],
    finish_reason: Optional[str],
    cost: str = "",
    state: str = "",
) -> str:
    """``gpt-4o-mini · first token 0.41 s · 3.2 s · 120 → 342 tokens · 107 tok/s · ¥0.0004``.

    ``tokens`` is (prompt, completion, estimated); estimated counts are shown with ``~``.
    """
    parts = [model] if model else []
    if first_token is not None:
        parts.append(f"first token {first_token:.2f} s")
    parts.append(f"{elapsed:.1f} s")
    if tokens is not None:
        prompt, completion, estimated = tokens
        mark = "~" if estimated else ""
        parts.append(f"{mark}{prompt} → {mark}{completion} tokens" + (" (estimated)" if estimated else ""))
        if completion and first_token is not None and elapsed - first_token > 0.05:
            parts.append(f"{mark}{completion / (elapsed - first_token):.0f} tok/s")
    if cost:
        parts.append(cost)
    if finish_reason and finish_reason != "stop":
        parts.append(finish_text(finish_reason))
    if state:
        parts.append(state)
    return " · ".join(parts)
