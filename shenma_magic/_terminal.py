"""Terminal IPython: the answer written to a text stream as it arrives."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from ._models import Delta, NoticeDelta, ReasoningDelta, Reply, TextDelta

__all__ = ["TextView"]


class TextView:
    """Terminal IPython: the answer goes to stdout as it arrives, then the status line."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._out = stream or sys.stdout
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._in_reasoning = False
        self._wrote = False
        self._ends_with_newline = True

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._tty else text

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()
            self._wrote = True
            self._ends_with_newline = text.endswith("\n")

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            if not self._in_reasoning:
                self._in_reasoning = True
                self._write(self._dim("[reasoning] "))
            self._write(self._dim(delta.text))
        elif isinstance(delta, TextDelta):
            if self._in_reasoning:
                self._in_reasoning = False
                self._write("\n\n")
            self._write(delta.text)
        elif isinstance(delta, NoticeDelta):
            self._write(("" if self._ends_with_newline else "\n") + self._dim(f"[{delta.message}]") + "\n")

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        lead = "" if self._ends_with_newline or not self._wrote else "\n"
        self._write(lead + self._dim(f"[{status}]") + "\n")
        if reply.error:
            self._write(f"⚠ {reply.error}\n")
