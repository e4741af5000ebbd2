"""The notebook's side of a turn: which live view a reply streams into, and the small outputs around it.

A :class:`NotebookFrontend` is what ``%%chat`` hands to :meth:`Session.run`: widgets in a Jupyter frontend,
plain text in terminal IPython (or as ``%chat display`` says).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._display import View

__all__ = ["NotebookFrontend"]


class NotebookFrontend:
    def __init__(self, *, rich: bool, display: str = "auto") -> None:
        from ._display import Extras

        self._rich = rich  # a Jupyter frontend (rich outputs), or a terminal (plain lines)
        self._mode = display
        self._extras = Extras(rich=rich)

    def make_view(self) -> View:
        from ._display import MarkdownView, TextView, WidgetView

        mode = self._mode
        if mode == "auto":
            mode = "widget" if self._rich else "text"
        if mode == "widget":
            try:
                return WidgetView()
            except ImportError:
                return MarkdownView()
        if mode == "markdown":
            return MarkdownView()
        return TextView()

    def ask(self, question: str) -> bool:
        return self._extras.ask(question)

    def notify(self, line: str) -> None:
        self._extras.line(line)

    def show_images(self, images: list[Any]) -> None:
        self._extras.images(images)
