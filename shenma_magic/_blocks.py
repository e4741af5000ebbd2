"""Cutting a growing answer into finished Markdown blocks and a growing tail, for the live view."""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["BlockSplitter"]

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class BlockSplitter:
    """Cuts a growing answer into finished Markdown blocks and a growing tail.

    A finished block never changes again, so the live view sends it to the browser once; only the tail is
    re-sent while it grows. A block ends at a blank line outside a code fence, once the next line has
    started and is not indented (an indented line may continue a list item). A block longer than
    ``max_tail`` is cut too, so the tail stays small: code at a line end (the piece gets a closing fence,
    the tail gets the opening one back), a table at a row end (the tail gets the header rows back), prose
    at a sentence end where no code span, emphasis or link is left open. These cuts exist only while
    streaming: the final output renders the whole answer at once.
    """

    def __init__(self, max_tail: int = 2000) -> None:
        self.max_tail = max_tail
        self._parts: list[str] = []
        self._done = 0  # answer characters already handed out in finished blocks
        self._scan = 0  # start of the first line not classified yet
        self._fence: Optional[str] = None  # the open fence's marker, e.g. "```"
        self._fence_header = ""  # the open fence's whole first line, e.g. "```python"
        self._table_header = ""  # the header and delimiter rows of the table being written
        self._resume = ""  # what the tail needs in front of it after a cut (fence or table header)
        self._blank = False
        self._prev_line = ""

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def tail(self) -> str:
        """The unfinished part, as Markdown source that renders on its own."""
        rest = self.text[self._done :]
        return f"{self._resume}\n{rest}" if self._resume and rest else rest

    def feed(self, text: str) -> list[str]:
        """Add answer text; return the blocks it finished, as Markdown sources that render on their own."""
        if not text:
            return []
        self._parts.append(text)
        full = self.text
        finished: list[str] = []
        pos = self._scan
        while True:
            nl = full.find("\n", pos)
            if nl == -1:
                break
            line = full[pos:nl]
            start, pos = pos, nl + 1
            self._classify(full, line, start, finished)
            self._prev_line = line
        self._scan = pos
        if len(full) - self._done > self.max_tail:
            self._cut_long(full, pos, finished)
        return [b for b in finished if b.strip()]

    def _classify(self, full: str, line: str, start: int, finished: list[str]) -> None:
        stripped = line.strip()
        if self._fence is not None:
            marker = self._fence[0]
            if (
                stripped.startswith(marker)
                and set(stripped) == {marker}
                and len(stripped) >= len(self._fence)
            ):
                self._fence = None
            return
        if not stripped:
            self._blank = True
            return
        if self._blank and not line[:1].isspace():
            if start > self._done:
                finished.append(self._take(full, start))
            self._resume = ""  # a new block: nothing of the last one is carried over
            self._table_header = ""
        self._blank = False
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            self._fence = opened.group(1)
            self._fence_header = stripped
        elif stripped.startswith("|") and set(stripped) <= set("|:- ") and "-" in stripped:
            self._table_header = f"{self._prev_line}\n{line}"
        elif not stripped.startswith("|"):
            self._table_header = ""

    def _take(self, full: str, end: int, closing: str = "") -> str:
        block = full[self._done : end].rstrip("\n")
        if self._resume:
            block = f"{self._resume}\n{block}"
        self._resume = ""
        self._done = end
        return f"{block}\n{closing}\n" if closing else block + "\n"

    def _cut_long(self, full: str, pos: int, finished: list[str]) -> None:
        if self._fence is not None:
            if pos > self._done:
                finished.append(self._take(full, pos, closing=self._fence))
                self._resume = self._fence_header
            return
        if self._table_header:
            if pos > self._done:
                finished.append(self._take(full, pos))
                self._resume = self._table_header
            return
        segment = full[self._done :]
        best = -1
        for marker in ("\n", "。", "！", "？", ". ", "! ", "? "):
            at = segment.rfind(marker)
            if at > 0 and _balanced(segment[: at + len(marker)]):
                best = max(best, at + len(marker))
        if best > 0:
            finished.append(self._take(full, self._done + best))


def _balanced(text: str) -> bool:
    """No code span, bold, link or math left open: a cut here does not change how either side reads."""
    double = text.count("$$")
    return (
        text.count("`") % 2 == 0
        and text.count("**") % 2 == 0
        and double % 2 == 0
        and (text.count("$") - 2 * double) % 2 == 0
        and text.count("[") == text.count("]")
        and text.count("(") == text.count(")")
        and text.count("\\begin{") == text.count("\\end{")
    )
