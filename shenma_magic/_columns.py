"""Showing a comparison: the models' answers side by side while they stream, and the output left behind.

Views (each a :class:`~shenma_magic._compare.ColumnsView`, called by the thread running the comparison):

* :class:`ColumnsWidgetView` (Jupyter frontends): a CSS grid of columns, each with the model's name, an
  ``Output`` widget that finished Markdown blocks are appended to once, and a live HTML widget for the
  growing tail and the status line. A column that is done is drawn in its final form at once.
* :class:`ColumnsMarkdownView`: the same grid without ipywidgets, re-sent as one HTML output.
* :class:`ColumnsTextView` (terminal IPython): one progress line per model while they stream (redrawn in
  place on a terminal, plain lines otherwise), then each answer in full under its model's name when done.
* :class:`CallbackColumns` (the Python API): each delta to a callback, nothing shown.

When every column is done the live view is replaced in place by :func:`columns_bundle`: ``text/html`` with
the same grid, ``text/markdown`` with one section per model and ``text/plain``, so a saved notebook,
nbconvert and GitHub show the whole comparison without a kernel or widget state.

A comparison in the background (``%%chat -m a,b --bg``) gives the Jupyter views an
:class:`~shenma_magic._display.Outlet`: as for a single reply, every display message then goes through it
(with the cell's parent header) and finished blocks become child widgets instead of outputs captured into
an ``Output`` widget, whose capture follows the kernel's idea of the current cell.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, TextIO

from ._models import Delta, NoticeDelta, ReasoningDelta, Reply, TextDelta
from ._render import BlockSplitter, escape, render_html

if TYPE_CHECKING:
    from ._compare import ColumnsView, LaneResult
    from ._display import Outlet

__all__ = [
    "CallbackColumns",
    "ColumnsFrontend",
    "ColumnsMarkdownView",
    "ColumnsTextView",
    "ColumnsWidgetView",
    "NotebookColumns",
    "columns_bundle",
    "grid_columns",
]

MAX_COLUMNS = 4  # side by side in a notebook; more models wrap into rows
# Plain colours and lengths only: a notebook opened untrusted keeps these through JupyterLab's sanitizer.
_COLUMN = "min-width: 0; padding: 0 10px 6px 10px; border-left: 3px solid #d0d7de; box-sizing: border-box;"
_HEADER = (
    "font-weight: bold; padding: 2px 0 4px 0; margin: 0 0 6px 0; border-bottom: 1px solid #d0d7de; "
    "overflow-wrap: anywhere;"
)
_MUTED = "color: #777; font-size: 0.85em;"
_CONTENT = "line-height: 1.6; font-size: 14px; overflow-wrap: anywhere;"
_WAITING = "waiting for the first token…"
_CHILD_INTERVAL = 0.02  # seconds of wait per block already appended, for views fed through an outlet
_REASONING_PREVIEW = 300
_REASONING = "white-space: pre-wrap; border-left: 3px solid #ccc; padding-left: 8px;"


class ColumnsFrontend(Protocol):
    """What a front door supplies to a comparison: where it is shown, and the small outputs around it."""

    def make_columns(self, models: Sequence[str]) -> ColumnsView: ...

    def notify(self, line: str) -> None: ...

    def show_images(self, images: list[Any]) -> None: ...


def grid_columns(count: int) -> int:
    """How many columns a row holds: all of them up to four, else as even rows as four allow (5 → 3 + 2)."""
    if count <= MAX_COLUMNS:
        return max(count, 1)
    rows = math.ceil(count / MAX_COLUMNS)
    return math.ceil(count / rows)


def grid_template(count: int) -> str:
    return f"repeat({grid_columns(count)}, minmax(0, 1fr))"


def _grid_style(count: int) -> str:
    return f"display: grid; grid-template-columns: {grid_template(count)}; width: 100%;"


def _header_html(model: str) -> str:
    return f'<div style="{_HEADER}">{escape(model)}</div>'


def _md_text(text: str) -> str:
    """Text safe inside Markdown (a heading, emphasis): no markup, no HTML, one line."""
    for ch in "\\`*_[]<>#|~$":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def _column_html(reply: Reply, status: str) -> str:
    """A finished column's body: the answer as a single reply's final output shows it."""
    from ._display import final_bundle

    return f'<div style="{_CONTENT}">{final_bundle(reply, status)["text/html"]}</div>'


def columns_bundle(results: Sequence[tuple[str, Reply, str]]) -> dict[str, str]:
    """The output a finished comparison leaves: (model, reply, status) per column, as HTML, Markdown, text."""
    from ._display import final_bundle

    html_cols: list[str] = []
    md_parts: list[str] = []
    plain_parts: list[str] = []
    for model, reply, status in results:
        bundle = final_bundle(reply, status)
        body = f'<div style="{_CONTENT}">{bundle["text/html"]}</div>'
        html_cols.append(f'<div style="{_COLUMN}">{_header_html(model)}{body}</div>')
        md_parts.append(f"### {_md_text(model)}\n\n{bundle['text/markdown']}")
        plain_parts.append(f"── {model} ──\n{bundle['text/plain']}\n[{status}]")
    grid = f'<div class="shenma-compare" style="{_grid_style(len(results))}">'
    return {
        "text/plain": "\n\n".join(plain_parts),
        "text/markdown": "\n\n---\n\n".join(md_parts),
        "text/html": f"{grid}{''.join(html_cols)}</div>",
    }


def _bundle_of(results: Sequence[LaneResult]) -> dict[str, str]:
    return columns_bundle([(r.model, r.reply, r.status) for r in results])


# -- Jupyter, with widgets -------------------------------------------------------------------------------


class _Column:
    """One column's live state: what has been shown, what is pending."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.splitter = BlockSplitter()
        self.pending: list[str] = []  # finished blocks, rendered, not yet appended
        self.reasoning: list[str] = []
        self.notice = ""
        self.sent_live: Optional[str] = None
        self.last_append = float("-inf")
        self.done = False
        self.cleared = False  # the Output of finished blocks has been emptied

    def take(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self.pending.extend(render_html(block) for block in self.splitter.feed(delta.text))
        elif isinstance(delta, ReasoningDelta):
            self.reasoning.append(delta.text)
        elif isinstance(delta, NoticeDelta):
            self.notice = delta.message

    def live_html(self, status: str, *, with_pending: bool) -> str:
        parts: list[str] = []
        if self.reasoning and not self.splitter.text:
            text = "".join(self.reasoning)
            self.reasoning = [text]
            preview = text[-_REASONING_PREVIEW:]
            lead = "…" if len(text) > len(preview) else ""
            parts.append(
                f'<div style="{_MUTED} {_REASONING}"><b>reasoning</b> ({len(text)} chars)<br>'
                f"{lead}{escape(preview)}</div>"
            )
        tail = self.splitter.tail
        body = ("".join(self.pending) if with_pending else "") + (render_html(tail) if tail else "")
        if body:
            parts.append(f'<div class="jp-RenderedHTMLCommon" style="{_CONTENT}">{body}</div>')
        if self.notice:
            parts.append(f'<div style="{_MUTED}">{escape(self.notice)}</div>')
        parts.append(f'<div style="{_MUTED}">{escape(status)}</div>')
        return "".join(parts)


class ColumnsWidgetView:
    """The live comparison for Jupyter frontends (ipywidgets, imported when a comparison is shown)."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        block_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        outlet: Optional[Outlet] = None,
        waiting: str = _WAITING,
    ) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._widgets = widgets
        self._display: Callable[..., Any] = display
        self._outlet = outlet
        self._clock = clock
        self._block_interval = block_interval
        self._columns = [_Column(m) for m in models]
        self._headers = [widgets.HTML(value=_header_html(m)) for m in models]
        self._blocks: list[Any] = [widgets.Output() if outlet is None else widgets.VBox() for _ in models]
        self._appended: list[Any] = []  # the child widgets of blocks (with an outlet), emptied at close
        self._live = [widgets.HTML(value=f'<div style="{_MUTED}">{escape(waiting)}</div>') for _ in models]
        self._boxes = [
            widgets.VBox(
                [h, b, live],
                layout=widgets.Layout(
                    min_width="0", padding="0 10px 6px 10px", border_left="3px solid #d0d7de"
                ),
            )
            for h, b, live in zip(self._headers, self._blocks, self._live, strict=True)
        ]
        self._grid = widgets.GridBox(
            self._boxes,
            # The final output sits in JupyterLab's rendered-HTML box, 20 px narrower on the right: the
            # same here, so the columns keep their places and widths when the live view is replaced.
            layout=widgets.Layout(
                grid_template_columns=grid_template(len(models)), width="100%", padding="0 20px 0 0"
            ),
        )
        self._handle: Any = None
        self._display_id = ""
        if outlet is None:
            self._handle = display(self._grid, display_id=True)
        else:
            self._display_id = outlet.display(self._grid._repr_mimebundle_())

    def on_delta(self, index: int, delta: Delta) -> None:
        self._columns[index].take(delta)

    def refresh(self, index: int, status: str) -> int:
        column = self._columns[index]
        if column.done:
            return 0
        sent = 0
        now = self._clock()
        if self._outlet is not None:
            # Each child added re-sends the list of children: the wait between appends grows with their
            # number, so a long answer costs about sqrt(duration) children, not one per interval.
            children = self._blocks[index].children
            wait = max(self._block_interval, _CHILD_INTERVAL * len(children))
            if column.pending and now - column.last_append >= wait:
                # Styled as the live tail and the final output are (an Output's HTML gets that class from
                # the frontend), so nothing moves when the blocks become children or the columns end.
                block = "".join(column.pending)
                child = self._widgets.HTML(
                    value=f'<div class="jp-RenderedHTMLCommon" style="{_CONTENT}">{block}</div>'
                )
                self._blocks[index].children = (*children, child)
                self._appended.append(child)
                column.pending = []
                column.last_append = now
                sent += 4  # the child's, its layout's and its style's comm_open, the new children
        elif column.pending and now - column.last_append >= self._block_interval:
            # Each finished block goes to the browser exactly once, appended to the column's Output.
            with self._blocks[index]:
                self._display({"text/html": f"<div>{''.join(column.pending)}</div>"}, raw=True)
            column.pending = []
            column.last_append = now
            sent += 1
        value = column.live_html(status, with_pending=True)
        if value != column.sent_live:
            self._live[index].value = value
            column.sent_live = value
            sent += 1
        return sent

    def finish(self, index: int, reply: Reply, status: str) -> int:
        column = self._columns[index]
        column.done = True
        # The column in its final form, rendered whole, once; its streamed blocks go.
        sent = self._clear_blocks(index)
        self._live[index].value = _column_html(reply, status)
        return sent + 1

    def _clear_blocks(self, index: int) -> int:
        column = self._columns[index]
        if column.cleared:
            return 0
        column.cleared = True
        if self._outlet is not None:
            self._blocks[index].children = ()  # the children are emptied and closed with the view
            return 1
        # A clear_output routed to the Output, not outputs=() from the kernel: a frontend that mirrors the
        # Output's outputs back to the kernel (nbclient does) would otherwise have its echo land after ours
        # and leave a second copy of the answer in the saved widget state.
        self._blocks[index].clear_output()
        return 3  # msg_id on, clear_output, msg_id off

    def close(self, results: Sequence[LaneResult]) -> None:
        if self._outlet is not None:
            self._outlet.update(self._display_id, _bundle_of(results))
        else:
            self._handle.update(_bundle_of(results), raw=True)
        # Emptied before closing, so a frontend that saves widget state keeps no second copy of the answers.
        for index in range(len(self._blocks)):
            self._clear_blocks(index)
        for widget in [*self._live, *self._headers, *self._appended]:
            widget.value = ""
        for widget in [*self._appended, *self._headers, *self._blocks, *self._live, *self._boxes, self._grid]:
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
                if part is not None:
                    part.close()
            widget.close()


# -- Jupyter, without widgets ----------------------------------------------------------------------------


class ColumnsMarkdownView:
    """The comparison as one HTML output re-sent at a slower rate, for frontends without ipywidgets."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        min_gap: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        outlet: Optional[Outlet] = None,
        waiting: str = _WAITING,
    ) -> None:
        self._columns = [_Column(m) for m in models]
        self._status = [waiting] * len(models)
        self._final: list[Optional[str]] = [None] * len(models)
        self._min_gap = min_gap
        self._clock = clock
        self._last = float("-inf")
        self._outlet = outlet
        self._handle: Any = None
        self._display_id = ""
        if outlet is not None:
            self._display_id = outlet.display(self._bundle())
        else:
            from IPython.display import display

            self._handle = display(self._bundle(), raw=True, display_id=True)

    def _update(self, bundle: dict[str, str]) -> None:
        if self._outlet is not None:
            self._outlet.update(self._display_id, bundle)
        else:
            self._handle.update(bundle, raw=True)

    def _bundle(self) -> dict[str, str]:
        cols = []
        for i, column in enumerate(self._columns):
            body = self._final[i] or column.live_html(self._status[i], with_pending=True)
            cols.append(f'<div style="{_COLUMN}">{_header_html(column.model)}{body}</div>')
        html = f'<div style="{_grid_style(len(cols))}">{"".join(cols)}</div>'
        return {"text/html": html, "text/plain": "\n".join(self._status)}

    def on_delta(self, index: int, delta: Delta) -> None:
        self._columns[index].take(delta)

    def refresh(self, index: int, status: str) -> int:
        self._status[index] = status
        now = self._clock()
        if now - self._last < self._min_gap:
            return 0
        self._last = now
        self._update(self._bundle())
        return 1

    def finish(self, index: int, reply: Reply, status: str) -> int:
        self._status[index] = status
        self._final[index] = _column_html(reply, status)
        self._update(self._bundle())
        return 1

    def close(self, results: Sequence[LaneResult]) -> None:
        self._update(_bundle_of(results))


# -- terminal --------------------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns (wide characters take two), with an ellipsis if cut."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


# Whole escape sequences (CSI, OSC/DCS/APC strings, two-character ones), so no "[2J" is left behind.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)


def printable(text: str) -> str:
    """Model text made safe for a terminal: escape sequences and other control characters (carriage
    returns, backspaces) are dropped, newlines and tabs kept."""
    text = _ESCAPES.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


class ColumnsTextView:
    """Terminal IPython: one progress line per model while they stream, then each answer in full."""

    def __init__(
        self,
        models: Sequence[str],
        stream: Optional[TextIO] = None,
        *,
        redraw: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = stream or sys.stdout
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._models = list(models)
        self._status = [f"{m} · {_WAITING}" for m in models]
        self._open = list(range(len(models)))
        self._drawn = 0
        self._redraw = redraw
        self._clock = clock
        self._last = float("-inf")
        self._announced: set[int] = set()
        if self._tty:
            self._draw()
        else:
            self._write(f"[{', '.join(self._models)}: each answer follows when it is done]\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._tty else text

    def _erase(self) -> str:
        # Up to the first progress line, then clear to the end of the screen.
        return f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""

    def _lines(self) -> str:
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        self._drawn = len(self._open)
        return "".join(self._dim(_fit(printable(self._status[i]), width)) + "\n" for i in self._open)

    def _draw(self) -> None:
        self._write(self._erase() + self._lines())
        self._last = self._clock()

    def on_delta(self, index: int, delta: Delta) -> None:
        pass

    def refresh(self, index: int, status: str) -> int:
        self._status[index] = status
        if self._tty:
            if self._clock() - self._last >= self._redraw:
                self._draw()
                return 1
            return 0
        if index not in self._announced:  # no redrawing on a pipe or a log: one line when it starts
            self._announced.add(index)
            self._write(f"[{printable(status)}]\n")
            return 1
        return 0

    def finish(self, index: int, reply: Reply, status: str) -> int:
        if index in self._open:
            self._open.remove(index)
        parts = [f"── {printable(self._models[index])} ──\n"]
        if reply.reasoning:
            parts.append(self._dim(f"[reasoning] {printable(reply.reasoning)}") + "\n\n")
        text = printable(reply.text)
        if text:
            parts.append(text if text.endswith("\n") else text + "\n")
        parts.append(self._dim(f"[{printable(status)}]") + "\n")
        if reply.error:
            parts.append(f"⚠ {printable(reply.error)}\n")
        parts.append("\n")
        block = "".join(parts)
        if self._tty:
            self._write(self._erase() + block + self._lines())
            self._last = self._clock()
        else:
            self._write(block)
        return 1

    def close(self, results: Sequence[LaneResult]) -> None:
        if self._tty and self._drawn:
            self._write(self._erase())
            self._drawn = 0


# -- the Python API --------------------------------------------------------------------------------------


class CallbackColumns:
    """Nothing shown: each delta goes to ``on_delta(model, delta)``, in the caller's thread."""

    def __init__(self, models: Sequence[str], on_delta: Optional[Callable[[str, Delta], None]]) -> None:
        self._models = list(models)
        self._on_delta = on_delta

    def on_delta(self, index: int, delta: Delta) -> None:
        if self._on_delta is not None:
            self._on_delta(self._models[index], delta)

    def refresh(self, index: int, status: str) -> int:
        return 0

    def finish(self, index: int, reply: Reply, status: str) -> int:
        return 0

    def close(self, results: Sequence[LaneResult]) -> None:
        pass


class QuietColumns:
    """The Python API's frontend for a comparison: callbacks, notices collected, no images shown."""

    def __init__(self, on_delta: Optional[Callable[[str, Delta], None]], notices: list[str]) -> None:
        self._on_delta = on_delta
        self._notices = notices

    def make_columns(self, models: Sequence[str]) -> ColumnsView:
        return CallbackColumns(models, self._on_delta)

    def notify(self, line: str) -> None:
        self._notices.append(line)

    def show_images(self, images: list[Any]) -> None:
        pass


class NotebookColumns:
    """The notebook's frontend for a comparison: widgets in Jupyter, lines in a terminal (or as
    ``%chat display`` says)."""

    def __init__(self, *, rich: bool, display: str = "auto") -> None:
        from ._display import Extras

        self._rich = rich
        self._mode = display
        self._extras = Extras(rich=rich)

    def make_columns(self, models: Sequence[str]) -> ColumnsView:
        mode = self._mode
        if mode == "auto":
            mode = "widget" if self._rich else "text"
        if mode == "widget":
            try:
                return ColumnsWidgetView(models)
            except ImportError:
                return ColumnsMarkdownView(models)
        if mode == "markdown":
            return ColumnsMarkdownView(models)
        return ColumnsTextView(models)

    def notify(self, line: str) -> None:
        self._extras.line(line)

    def show_images(self, images: list[Any]) -> None:
        self._extras.images(images)
