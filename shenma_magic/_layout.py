"""The HTML frame of a reply, one for the live view and the final output, so nothing moves at the end. Pure.

Every piece of a reply (the reasoning line, each Markdown block, the status line...) sits in its own
``<div>`` with no margin or padding that also contains the margins of what is inside it (``overflow-x:
auto`` makes it a block formatting context, and puts a wide table's scroll bar right under the table).
Stacked, such pieces take the same room whether they are in one output or spread over several outputs,
as the live view spreads them; so the final output, which holds them all at once, lays the answer out
exactly as the live view did. Rules such as "the first heading of an output has no top margin" apply
inside each piece alike in both.

A comparison's columns use the same pieces, each column in a box of its own (:func:`column_box`): in
the final output the boxes are cells of a CSS grid (:func:`columns_grid`). While streaming, each
column is a run of outputs, one after the other, and the stylesheet :func:`columns_style` lays out
the cell's output area as CSS columns (``column-count``, a column break before each model), each
output placed where the grid will put its column, so the two layouts match. A frontend without
JupyterLab's output classes shows the models' outputs one under the other.
"""

from __future__ import annotations

import html
import math
from typing import Optional

from ._blockcut import BlockCutter, split_blocks
from ._render import join_markdown, render_block, render_html

__all__ = [
    "LIVE_STYLE",
    "MAX_COLUMNS",
    "answer_blocks",
    "answer_pieces",
    "block",
    "column_box",
    "column_head",
    "columns_grid",
    "columns_style",
    "empty_slot",
    "error_line",
    "frame",
    "grid_columns",
    "hide_preview",
    "live_marker",
    "muted_line",
    "placed_block",
    "preview_box",
    "reasoning_line",
    "row_break",
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


def answer_pieces(text: str) -> tuple[list[str], str]:
    """The answer as the live view shows it, one piece per Markdown block each rendered on its own, and
    its safe Markdown copy, both from one parse of each block. Link reference or footnote definitions tie
    blocks together: such an answer is one piece, parsed whole."""
    cutter = BlockCutter()
    sources = cutter.feed(text) + cutter.close()
    rendered = [render_block(text)] if cutter.references else [render_block(s) for s in sources]
    return [block(r.html) for r in rendered], join_markdown(r.markdown for r in rendered)


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


# -- a comparison's columns -------------------------------------------------------------------------------

MAX_COLUMNS = 4  # side by side in a notebook; more models wrap into rows
# Plain colours and lengths only: a notebook opened untrusted keeps these through JupyterLab's sanitizer.
_COLUMN = "margin: 0; padding: 0 10px; border-left: 3px solid #d0d7de; box-sizing: border-box; min-width: 0;"
_HEADER = (
    "font-weight: bold; padding: 2px 0 4px 0; margin: 0 0 6px 0; border-bottom: 1px solid #d0d7de; "
    "overflow-wrap: anywhere;"
)
_ROW_GAP = 12  # px between rows of columns
# JupyterLab's output prompt column and the right padding of its rendered HTML, where the final output's
# grid sits; the live outputs are placed as if in that grid.
_PROMPT = "var(--jp-cell-prompt-width, 64px)"
_HTML_RIGHT = "20px"


def grid_columns(count: int) -> int:
    """How many columns a row holds: all of them up to four, else as even rows as four allow (5 → 3 + 2)."""
    if count <= MAX_COLUMNS:
        return max(count, 1)
    rows = math.ceil(count / MAX_COLUMNS)
    return math.ceil(count / rows)


def column_head(model: str) -> str:
    """The model's name at the top of its column."""
    return f'<div class="shenma-model" style="{_HEADER}">{escape(model)}</div>'


def column_box(inner: str, classes: str = "shenma-column") -> str:
    """One column, or one live output of a column (the same box, so the pieces inside line up)."""
    return f'<div class="{classes}" style="{_COLUMN}">{inner}</div>'


def empty_slot(classes: str) -> str:
    """A live output a column has not used yet: nothing, no height."""
    return f'<div class="{classes}" style="margin: 0;"></div>'


def row_break() -> str:
    """The live output between two rows of columns: the gap between the grid's rows."""
    return f'<div class="shenma-row-break" style="margin: 0; height: {_ROW_GAP}px;"></div>'


def columns_grid(cells: list[str], per_row: int) -> str:
    """The final output's columns (:func:`column_box` each) side by side, ``per_row`` to a row."""
    style = (
        f"display: grid; grid-template-columns: repeat({per_row}, minmax(0, 1fr)); "
        f"row-gap: {_ROW_GAP}px; align-items: start; margin: 0; padding: 0;"
    )
    return f'<div class="shenma-compare" style="{style}">{"".join(cells)}</div>'


def placed_block(piece: str, model: int, index: int) -> str:
    """Block ``index`` of column ``model`` (a :func:`block`), marked for :func:`hide_preview`."""
    head = '<div class="'
    if not piece.startswith(head):
        return piece
    return f"{head}shenma-b-{model}-{index} {piece[len(head) :]}"


def preview_box(inner: str, model: int, index: int) -> str:
    """A live column's preview of its unfinished block, block ``index`` once it is finished."""
    return f'<div class="shenma-p-{model}-{index}" style="margin: 0; padding: 0;">{inner}</div>'


def hide_preview(model: int, index: int) -> str:
    """A rule that hides the preview of block ``index`` of column ``model`` where an output before it
    holds the finished block: for the moment between the two messages that move it."""
    before = f".jp-OutputArea-child:has(.shenma-b-{model}-{index})"
    return f"<style>{before} ~ .jp-OutputArea-child .shenma-p-{model}-{index} {{ display: none; }}</style>"


def live_marker(per_row: int) -> str:
    """What the live stylesheet looks for in a cell's outputs: ``per_row`` columns are streaming here."""
    return f'<div class="shenma-live-columns-{per_row}" style="margin: 0;"></div>'


def columns_style(per_row: int, count: int) -> str:
    """The stylesheet that shows a cell's live column outputs side by side in JupyterLab (and Notebook 7).

    Each output of a column carries ``shenma-slot shenma-slot-P`` (P: its place in the row); the first
    of each column also ``shenma-slot-first`` (a column break before it); the one holding model M's
    status line ``shenma-tail-M``. Other outputs of the cell (thumbnails before the comparison, the gaps
    between rows) span all columns. Every rule needs the marker of :func:`live_marker` among the cell's
    outputs: once the final output replaces them, nothing here applies any more.
    """
    area = f".jp-OutputArea:has(> .jp-OutputArea-child .shenma-live-columns-{per_row})"
    slot = f"{area} > .jp-OutputArea-child:has(.shenma-slot)"
    rules = [
        f"{area} {{ column-count: {per_row}; column-gap: 0; }}",
        f"{area} > .jp-OutputArea-child:not(:has(.shenma-slot)) {{ column-span: all; }}",
        f"{slot} > .jp-OutputPrompt {{ display: none; }}",
        f"{slot} > .jp-OutputArea-output {{ padding: 0; margin: 0; }}",
        f"{area} > .jp-OutputArea-child:has(.shenma-slot-first) {{ break-before: column; }}",
    ]
    # The final grid sits right of the prompt column and left of the rendered HTML's right padding;
    # CSS columns fill the whole area: each output is moved and narrowed to its grid column's place.
    gutter = f"({_PROMPT} + {_HTML_RIGHT})"
    for place in range(per_row):
        rules.append(
            f"{area} > .jp-OutputArea-child:has(.shenma-slot-{place}) {{ "
            f"margin-left: calc({_PROMPT} - {place} * {gutter} / {per_row}); "
            f"width: calc(100% - {gutter} / {per_row}); }}"
        )
    # A column's status line moves to its next output when blocks are sealed: the message that fills the
    # next output comes first, and this hides the old line at once, so it never shows twice.
    for model in range(count):
        tail = f".shenma-tail-{model}"
        rules.append(
            f"{area} > .jp-OutputArea-child:has(~ .jp-OutputArea-child {tail}) {tail} .shenma-status "
            "{ display: none; }"
        )
    return "<style>" + "\n".join(rules) + "</style>"
