"""The HTML frame of a reply, one for the live view and the final output, so nothing moves at the end. Pure.

Every piece of a reply (the reasoning line, each Markdown block, the status line...) sits in its own
``<div>`` with no margin or padding that also contains the margins of what is inside it (``overflow-x:
auto`` makes it a block formatting context, and puts a wide table's scroll bar right under the table).
Stacked, such pieces take the same room whether they are in one output or spread over several outputs,
as the live view spreads them; so the final output, which holds them all at once, lays the answer out
exactly as the live view did. Rules such as "the first heading of an output has no top margin" apply
inside each piece alike in both.
"""

from __future__ import annotations

import html
from typing import Optional

from ._blockcut import split_blocks
from ._render import render_html

__all__ = [
    "LIVE_STYLE",
    "answer_blocks",
    "block",
    "error_line",
    "frame",
    "muted_line",
    "reasoning_line",
    "skipped_note",
    "status_line",
]

_PIECE = "margin: 0; padding: 0; overflow-x: auto;"
MUTED = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em;"
_ERROR = "color: var(--jp-error-color1, #c62828);"
# One line whatever its length: the live reasoning line changes text all the time, never height.
_ONE_LINE = "white-space: nowrap; overflow: hidden; text-overflow: ellipsis;"

# While a reply streams, its status line moves to each new output at the bottom: the one it leaves is
# hidden at once by this rule, in the same layout pass as the new output appears, so the height never
# dips for a frame. (JupyterLab keeps an overlay as the output area's last child, hence :has rather
# than :last-child; where the rule does not apply, the old status line goes one message later.)
LIVE_STYLE = (
    "<style>.jp-OutputArea-child:has(~ .jp-OutputArea-child) .shenma-live-status { display: none; }</style>"
)


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def frame(inner: str) -> str:
    """What one output holds: its pieces in the reply's wrapper."""
    return f'<div class="shenma-reply" style="margin: 0; padding: 0;">{inner}</div>'


def block(rendered: str, css_class: str = "shenma-block", style: str = "") -> str:
    """One piece of the reply (already HTML)."""
    return f'<div class="{css_class}" style="{_PIECE}{style}">{rendered}</div>'


def answer_blocks(text: str) -> list[str]:
    """The answer as pieces, one per Markdown block, each rendered on its own (what the live view shows)."""
    return [block(render_html(source)) for source in split_blocks(text)]


def status_line(text: str, *, live: bool = False) -> str:
    css_class = "shenma-status shenma-live-status" if live else "shenma-status"
    return block(escape(text), css_class, MUTED)


def muted_line(text: str) -> str:
    return block(escape(text), "shenma-note", MUTED)


def error_line(text: str) -> str:
    return block(f"⚠ {escape(text)}", "shenma-error", _ERROR)


def reasoning_line(chars: int, *, latest: str = "", full: Optional[str] = None) -> str:
    """The reasoning, folded into one line: while streaming with its latest words, at the end with the
    whole text inside (closed, so the line is the same height either way)."""
    summary = f"reasoning ({chars:,} chars)"
    if latest:
        summary += f" · …{latest}"
    body = f'<div style="white-space: pre-wrap;">{escape(full)}</div>' if full is not None else ""
    head = f'<summary style="{_ONE_LINE}">{escape(summary)}</summary>'
    return block(f'<details style="margin: 0;">{head}{body}</details>', "shenma-reasoning", MUTED)


def skipped_note(chars: int) -> str:
    """The line above a live tail too long to show whole."""
    return muted_line(f"… {_amount(chars)} above, shown in full when this block is finished")


def _amount(chars: int) -> str:
    if chars >= 1_000_000:
        return f"{chars / 1_000_000:.1f} M characters"
    if chars >= 10_000:
        return f"{chars // 1000:,}k characters"
    return f"{chars:,} characters"
