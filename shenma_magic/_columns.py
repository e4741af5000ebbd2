"""Showing a comparison: the models' answers side by side while they stream, and the output left behind.

Views (each a :class:`~shenma_magic._compare.ColumnsView`, called by the thread running the comparison):

* :class:`~._livecolumns.ColumnsLiveView` (Jupyter frontends; also under its old names
  ``ColumnsWidgetView`` and ``ColumnsMarkdownView``): plain display outputs updated in place, the
  columns side by side, each finished block sealed once; when every column is done one output,
  :func:`~._livecolumns.columns_bundle` (``text/html`` with the same columns, ``text/markdown`` with one
  section per model and ``text/plain``), so a saved notebook, nbconvert and GitHub show the whole
  comparison without a kernel.
* :class:`ColumnsTextView` (terminal IPython): one progress line per model while they stream (redrawn in
  place on a terminal, plain lines otherwise), then each answer in full under its model's name when done.
* :class:`CallbackColumns` (the Python API): each delta to a callback, nothing shown.

A comparison in the background (``%%chat -m a,b --bg``) gives the Jupyter view an
:class:`~shenma_magic._display.Outlet`: as for a single reply, every display message then goes through it
(with the cell's parent header).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, TextIO

from ._layout import MAX_COLUMNS, grid_columns
from ._livecolumns import ColumnsLiveView, columns_bundle
from ._models import Delta, Reply
from ._termtext import DIM, RESET, display_width, terminal_safe

if TYPE_CHECKING:
    from ._compare import ColumnsView, LaneResult

__all__ = [
    "MAX_COLUMNS",
    "CallbackColumns",
    "ColumnsFrontend",
    "ColumnsLiveView",
    "ColumnsMarkdownView",
    "ColumnsTextView",
    "ColumnsWidgetView",
    "NotebookColumns",
    "columns_bundle",
    "grid_columns",
    "printable",
]

_WAITING = "waiting for the first token…"

# The names the frontends knew the Jupyter views by; one view serves both settings now (no widgets).
ColumnsWidgetView = ColumnsLiveView
ColumnsMarkdownView = ColumnsLiveView

# Model text made safe for a terminal: the single reply's helper (control characters, escape sequences,
# BiDi controls and line/paragraph separators shown as visible marks, known keys masked).
printable = terminal_safe


class ColumnsFrontend(Protocol):
    """What a front door supplies to a comparison: where it is shown, and the small outputs around it."""

    def make_columns(self, models: Sequence[str]) -> ColumnsView: ...

    def notify(self, line: str) -> None: ...

    def show_images(self, images: list[Any]) -> None: ...


# -- terminal --------------------------------------------------------------------------------------------


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns (wide characters take two), with an ellipsis if cut."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


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
            self._write(f"[{terminal_safe(', '.join(self._models))}: each answer follows when it is done]\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def _dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self._tty else text

    def _erase(self) -> str:
        # Up to the first progress line, then clear to the end of the screen.
        return f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""

    def _lines(self) -> str:
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        self._drawn = len(self._open)
        return "".join(self._dim(_fit(terminal_safe(self._status[i]), width)) + "\n" for i in self._open)

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
            self._write(f"[{terminal_safe(status)}]\n")
            return 1
        return 0

    def finish(self, index: int, reply: Reply, status: str) -> int:
        if index in self._open:
            self._open.remove(index)
        parts = [f"── {terminal_safe(self._models[index])} ──\n"]
        if reply.reasoning:
            parts.append(self._dim(f"[reasoning] {terminal_safe(reply.reasoning)}") + "\n\n")
        text = terminal_safe(reply.text)
        if text:
            parts.append(text if text.endswith("\n") else text + "\n")
        parts.append(self._dim(f"[{terminal_safe(status)}]") + "\n")
        if reply.error:
            parts.append(f"⚠ {terminal_safe(reply.error)}\n")
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
    """The notebook's frontend for a comparison: live columns in Jupyter, lines in a terminal (or as
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
        if mode in ("widget", "markdown"):
            # The cell's Extras is its output log: the final output replaces the live ones and keeps the
            # cell's other outputs (the thumbnails sent with the question).
            return ColumnsLiveView(models, outputs=self._extras)
        return ColumnsTextView(models)

    def notify(self, line: str) -> None:
        self._extras.line(line)

    def show_images(self, images: list[Any]) -> None:
        self._extras.images(images)
