"""The log as text: one line per exchange (``%chat log``) and spend by day and model (``%chat usage
--since``). Pure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

from ._exchange import ExchangeRecord, UsageRow
from ._pricing import _pad, _width, format_money
from ._secret import excerpt

__all__ = ["log_line", "usage_table"]


def _money(cost: Optional[float], estimated: bool, unpriced: int, currency: str) -> str:
    if cost is None:
        return "?" if unpriced else ""
    text = ("~" if estimated else "") + format_money(cost, currency)
    return "≥ " + text if unpriced else text  # the unpriced replies can only add to it


def log_line(record: ExchangeRecord, *, currency: str = "¥", notebook: bool = False) -> str:
    """``#12  2026-11-02 14:03  gpt-4o-mini  question → answer  12→34 tok  ¥0.0004``, local time; the
    notebook's file name first when ``notebook``; ``replayed`` and the error, if any, at the end."""
    when = record.time.astimezone().strftime("%Y-%m-%d %H:%M")
    parts = [f"#{record.id}", when]
    if notebook:
        parts.append(os.path.basename(record.notebook.rstrip(os.sep)) or record.notebook)
    parts.append(record.model or record.requested_model or "?")
    said = excerpt(record.reply or record.reasoning, 50) or (
        f"[{len(record.tool_calls)} tool call{'s' if len(record.tool_calls) != 1 else ''}]"
        if record.tool_calls
        else "—"
    )
    parts.append(f"{excerpt(record.prompt, 50) or '—'} → {said}")
    if record.prompt_tokens or record.completion_tokens:
        mark = "~" if record.cost_estimated else ""
        parts.append(f"{mark}{record.prompt_tokens}→{mark}{record.completion_tokens} tok")
    if record.cost is not None and not record.replayed:
        parts.append(
            ("~" if record.cost_estimated else "") + format_money(record.cost, record.currency or currency)
        )
    if record.replayed:
        parts.append("replayed")
    if record.error:
        parts.append(f"⚠ {excerpt(record.error, 60)}")
    return "  ".join(parts)


def usage_table(rows: Sequence[UsageRow], currency: str = "¥") -> str:
    """A plain-text table of tokens and cost per day and model, a total per model, and a grand total;
    ``~`` marks estimates, ``?`` replies without a price."""
    if not rows:
        return "no replies in the log for that time"
    lines = [["day", "model", "replies", "prompt", "completion", "cost"]]
    for row in rows:
        lines.append(
            [
                row.day.isoformat(),
                row.model,
                f"{row.replies:,}",
                f"{row.prompt_tokens:,}",
                f"{row.completion_tokens:,}",
                _money(row.cost, row.estimated, row.unpriced, currency),
            ]
        )
    models: dict[str, list[UsageRow]] = {}
    for row in rows:
        models.setdefault(row.model, []).append(row)
    body = len(lines)

    def total(label: str, model: str, group: Sequence[UsageRow]) -> list[str]:
        known = [r.cost for r in group if r.cost is not None]
        return [
            label,
            model,
            f"{sum(r.replies for r in group):,}",
            f"{sum(r.prompt_tokens for r in group):,}",
            f"{sum(r.completion_tokens for r in group):,}",
            _money(
                sum(known) if known else None,
                any(r.estimated for r in group),
                sum(r.unpriced for r in group),
                currency,
            ),
        ]

    if len(models) > 1 or len(rows) > 1:
        for index, (model, group) in enumerate(models.items()):
            lines.append(total("by model" if index == 0 else "", model, group))
    lines.append(total("total", "", rows))
    widths = [max(_width(line[i]) for line in lines) for i in range(6)]
    out = [
        "  ".join(_pad(cell, widths[i], right=i > 1) for i, cell in enumerate(line)).rstrip()
        for line in lines
    ]
    rule = "-" * max(_width(line) for line in out)
    out.insert(1, rule)
    out.insert(body + 1, rule)
    notes = []
    if any(r.estimated for r in rows):
        notes.append("~ estimated from the text: the server sent no token counts")
    if any(r.unpriced for r in rows):
        notes.append("? no price set for this model (%config ChatMagics.prices)")
    return "\n".join(out + notes)
