"""Terminal IPython: the answer written to a text stream as it arrives.

Everything from outside (answer, reasoning, notices, the status line's model name, errors) passes
:func:`._termtext.terminal_safe` before it is written; the only escape sequences in the output are the
package's own SGR styling, and only when the stream is a TTY. Prose streams as it arrives; a table is
written aligned once its last row is in and, on a TTY, a fenced code block coloured once it closes.
"""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from ._models import Delta, NoticeDelta, ReasoningDelta, Reply, TextDelta
from ._termtext import DIM, RESET, TerminalBlocks, terminal_safe

__all__ = ["TextView"]


class TextView:
    """Terminal IPython: the answer goes to ``stream`` (stdout) as it arrives, then the status line."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._out = stream or sys.stdout
        try:
            self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        except Exception:  # a closed or odd stream: plain text
            self._tty = False
        self._blocks = TerminalBlocks(tty=self._tty)
        self._in_reasoning = False
        self._wrote = False
        self._ends_with_newline = True

    def _dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self._tty else text

    def _write(self, text: str) -> None:
        if not text:
            return
        try:
            self._out.write(text)
        except UnicodeEncodeError:
            # A stream that cannot carry every character (an ASCII locale): show what it can.
            encoding = getattr(self._out, "encoding", None) or "ascii"
            self._out.write(text.encode(encoding, "replace").decode(encoding, "replace"))
        self._out.flush()
        self._wrote = True
        self._ends_with_newline = text.endswith("\n")

    def _flush_blocks(self) -> None:
        self._write(self._blocks.finish())

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            if not self._in_reasoning:
                self._in_reasoning = True
                self._write(self._dim("[reasoning] "))
            self._write(self._dim(terminal_safe(delta.text)))
        elif isinstance(delta, TextDelta):
            if self._in_reasoning:
                self._in_reasoning = False
                self._write("\n\n")
            self._write(self._blocks.feed(terminal_safe(delta.text)))
        elif isinstance(delta, NoticeDelta):
            self._flush_blocks()
            lead = "" if self._ends_with_newline else "\n"
            self._write(lead + self._dim(f"[{terminal_safe(delta.message)}]") + "\n")

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        self._flush_blocks()
        lead = "" if self._ends_with_newline or not self._wrote else "\n"
        self._write(lead + self._dim(f"[{terminal_safe(status)}]") + "\n")
        # After Ctrl-C the status says "interrupted" and the one error line comes from the cell itself.
        if reply.error and not reply.error.startswith("interrupted (Ctrl-C)"):
            self._write(f"⚠ {terminal_safe(reply.error)}\n")
