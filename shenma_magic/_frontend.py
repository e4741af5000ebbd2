"""The notebook's side of a turn: which live view a reply streams into, and the small outputs around it.

A :class:`NotebookFrontend` is what ``%%chat`` hands to :meth:`Session.run`: a live view in Jupyter,
plain text in terminal IPython (or as ``%chat display`` says). ``%%chat --bg`` hands
:meth:`Session.start` a :class:`BackgroundFrontend` (a Jupyter frontend: everything through the cell's
outlet) or a :class:`TerminalBackgroundFrontend` (the whole reply printed once it has ended); a headless run
gets a :class:`NotedFrontend` around the usual one, since it runs in the foreground there. A comparison
(``-m a,b --bg``) gets the same three with columns: :class:`BackgroundColumns` (for
:meth:`Session.start_compare`), :class:`TerminalBackgroundColumns` and :class:`NotedColumns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._columns import NotebookColumns
    from ._compare import ColumnsView
    from ._display import Outlet, View

__all__ = [
    "BackgroundColumns",
    "BackgroundFrontend",
    "NotebookFrontend",
    "NotedColumns",
    "NotedFrontend",
    "TerminalBackgroundColumns",
    "TerminalBackgroundFrontend",
]

CANNOT_ASK = "a background reply cannot ask: register the tool as trusted, or run the cell without --bg"
WAITING = "waiting for the first token…"


class NotebookFrontend:
    def __init__(self, *, rich: bool, display: str = "auto") -> None:
        from ._display import Extras

        self._rich = rich  # a Jupyter frontend (rich outputs), or a terminal (plain lines)
        self._mode = display
        self._extras = Extras(rich=rich)

    def make_view(self) -> View:
        from ._display import LiveView, TextView

        mode = self._mode
        if mode == "auto":
            mode = "widget" if self._rich else "text"
        if mode in ("widget", "markdown"):
            # The cell's Extras is its output log: the reply's final output replaces its live outputs
            # and keeps the cell's other outputs (thumbnails, tool lines, earlier rounds).
            return LiveView(outputs=self._extras)
        return TextView()

    def ask(self, question: str) -> bool:
        return self._extras.ask(question)

    def notify(self, line: str) -> None:
        self._extras.line(line)

    def show_images(self, images: list[Any]) -> None:
        self._extras.images(images)


class NotedFrontend:
    """The usual frontend, with a note at the end of every status line (``--bg`` run in the foreground)."""

    def __init__(self, frontend: NotebookFrontend, note: str) -> None:
        self._frontend = frontend
        self._note = note

    def make_view(self) -> View:
        from ._background import WithNote

        return WithNote(self._frontend.make_view(), self._note)

    def ask(self, question: str) -> bool:
        return self._frontend.ask(question)

    def notify(self, line: str) -> None:
        self._frontend.notify(line)

    def show_images(self, images: list[Any]) -> None:
        self._frontend.show_images(images)


class NotedColumns:
    """The usual comparison frontend, with a note at the end of every column's status line."""

    def __init__(self, frontend: NotebookColumns, note: str) -> None:
        self._frontend = frontend
        self._note = note

    def make_columns(self, models: Sequence[str]) -> ColumnsView:
        from ._background import ColumnsWithNote

        return ColumnsWithNote(self._frontend.make_columns(models), self._note)

    def notify(self, line: str) -> None:
        self._frontend.notify(line)

    def show_images(self, images: list[Any]) -> None:
        self._frontend.show_images(images)


class BackgroundFrontend:
    """A ``--bg`` turn in a Jupyter frontend: views, lines and thumbnails all go through the cell's outlet,
    so they land in that cell from the worker thread; nothing is printed and nobody is asked."""

    def __init__(self, outlet: Outlet, *, display: str = "auto", waiting: str = WAITING) -> None:
        from ._display import Extras

        self._outlet = outlet
        self._mode = display
        self._waiting = waiting
        self._log = Extras(rich=True, outlet=outlet)  # what this cell shows, through the outlet

    def make_view(self) -> View:
        from ._display import LiveView

        waiting, self._waiting = self._waiting, WAITING  # only the first view waits for another reply
        # "text" would print from the worker thread, into whichever cell runs: the live view instead.
        return LiveView(outlet=self._outlet, outputs=self._log, waiting=waiting)

    def ask(self, question: str) -> bool:
        self.notify(CANNOT_ASK)
        return False

    def notify(self, line: str) -> None:
        self._log.line(line)

    def show_images(self, images: list[Any]) -> None:
        self._log.images(images)


class TerminalBackgroundFrontend:
    """A ``--bg`` turn in terminal IPython: each reply printed whole once it has ended, under a header
    naming its job; lines printed as they come (one write each, above the prompt)."""

    def __init__(self, header: str) -> None:
        self.header = header  # the magic fills in the job number once the job exists

    def make_view(self) -> View:
        from ._background import ReportView

        return ReportView(lambda: self.header)

    def ask(self, question: str) -> bool:
        self.notify(CANNOT_ASK)
        return False

    def notify(self, line: str) -> None:
        print(f"[{line}]")

    def show_images(self, images: list[Any]) -> None:
        for image in images:
            print(f"[image: {image.label}]")


class BackgroundColumns(BackgroundFrontend):
    """A ``--bg`` comparison in a Jupyter frontend: the columns, lines and thumbnails through the outlet."""

    def make_columns(self, models: Sequence[str]) -> ColumnsView:
        from ._livecolumns import ColumnsLiveView

        waiting, self._waiting = self._waiting, WAITING
        # "text" would print from the worker thread, into whichever cell runs: the live columns instead.
        return ColumnsLiveView(models, outlet=self._outlet, outputs=self._log, waiting=waiting)


class TerminalBackgroundColumns(TerminalBackgroundFrontend):
    """A ``--bg`` comparison in terminal IPython: each model's answer printed whole as it ends."""

    def make_columns(self, models: Sequence[str]) -> ColumnsView:
        from ._background import ColumnsReportView

        return ColumnsReportView(models, lambda: self.header)
