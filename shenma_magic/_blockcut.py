"""Cutting a growing Markdown answer into blocks that render the same alone as in the whole. Pure.

A live view sends each finished block to the browser once and re-sends only the unfinished tail, so
what it shows must not depend on where the answer was cut: a block is cut off only where Markdown's
block structure starts afresh (a blank line, then a line at column 0 that cannot continue what came
before). Rendering the blocks one by one and joining the HTML gives the HTML of the whole text, which is
what lets the final output be laid out exactly like the live view (see ``tests/test_blocks.py``).

Where a cut would change the meaning, there is none: a list goes on across blank lines while items of
the same kind follow, a fenced code block or a display-math block (``$$``, ``\\[``, ``\\begin{env}``)
holds blank lines, an indented line continues its block. So a block can grow without bound (a huge
table, a huge code block, one enormous line); the live tail is then shown by :meth:`BlockCutter.preview`,
which bounds what is rendered and sent.

The cost is linear in the text: each character is looked at a bounded number of times, whatever the
size of the deltas (a million one-character deltas, or 3 MB on one line).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional

__all__ = ["BlockCutter", "Preview", "split_blocks"]

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
_BULLET = re.compile(r"^([-*+])(?:[ \t]|$)")
_ORDERED = re.compile(r"^\d{1,9}([.)])(?:[ \t]|$)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:")
_DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_BEGIN = re.compile(r"^\s*\\begin\{([^}]{1,40})\}")
# A line that may open a container (list item, quote), a fence, a math block or indented content: only a
# block without one can be cut without asking the parser (paragraphs, headings, tables, rules).
_MAY_CONTAIN = re.compile(r"[ \t]|[-*+>`~$\\]|\d{1,9}[.)]")
_OPEN_MARKER = re.compile(r"[-*+]|\d{1,9}[.)]?")
_UNDECIDED = "?"


def _list_marker(line: str, complete: bool) -> Optional[str]:
    """The kind of list item a column-0 line starts ('-', '*', '+', '.', ')'), None if it starts none,
    or ``_UNDECIDED`` while an incomplete line could still go either way ("1", "1.", "-")."""
    if not complete and _OPEN_MARKER.fullmatch(line):
        return _UNDECIDED  # "-" may become "- item" or "---"; "1." may become "1. item" or "1.5"
    bullet = _BULLET.match(line)
    if bullet:
        return bullet.group(1)
    ordered = _ORDERED.match(line)
    if ordered:
        return ordered.group(1)
    return None


class Preview(NamedTuple):
    """What a live view shows of the unfinished tail: Markdown to render, or plain text."""

    markdown: str  # Markdown source to render ('' if nothing yet)
    plain: str  # or text to show as it is (the end of one enormous line), '' otherwise
    skipped: int  # characters of the tail left out before what is shown
    held: bool  # a display-math block is being written and is not shown until it closes


class BlockCutter:
    """Feed answer text; get back the blocks it finished, as exact pieces of the text.

    All blocks returned by :meth:`feed` and :meth:`close`, joined, are exactly the text fed.
    """

    def _reset(self) -> None:
        self._lines: list[str] = []  # complete lines of the current block, without their "\n"
        self._starts: list[int] = []  # where each of them starts in the block
        self._chars = 0  # characters of the current block in _lines (with their "\n")
        self._content = False  # the current block has a non-blank line
        self._partial: list[str] = []  # the line being written, in pieces
        self._partial_len = 0
        self._decided = True  # whether the line being written was already checked for a cut
        self._blank = False  # the last complete line was blank
        self._fence: Optional[tuple[str, int, int]] = None  # (marker char, length, indent) of an open fence
        self._fence_head = ""  # the open fence's first line, e.g. "```python"
        self._fence_line = 0  # index in _lines of that line
        self._math: Optional[str] = None  # what closes an open display-math block: "$$", "\\]", "\\end{x}"
        self._math_line = 0  # index in _lines of the line that opened it
        self._lists: set[str] = set()  # the kinds of list item in the current block
        self._refusals = 0  # cuts the parser refused in the current block
        self._simple = True  # no line of the current block could open a container or a fence
        self._table_head = ""  # header and delimiter rows of the table the current block ends in
        self._table_line = 0  # index in _lines of that header row
        self._table_start = -1  # index in _lines of the first row of a possible table being written

    def __init__(self) -> None:
        self._reset()
        self.references = False  # a link reference or footnote definition was seen (they span blocks)

    # -- feeding ---------------------------------------------------------------------------------------

    def feed(self, text: str) -> list[str]:
        """Add text; return the blocks it finished (possibly none)."""
        finished: list[str] = []
        start = 0
        while True:
            nl = text.find("\n", start)
            if nl == -1:
                break
            piece = text[start:nl]
            if self._partial:
                self._partial.append(piece)
                line = "".join(self._partial)
                self._partial = []
                self._partial_len = 0
            else:
                line = piece
            if not self._decided:
                self._check_cut(line, True, finished)
            self._line(line)
            self._decided = False
            start = nl + 1
        rest = text[start:]
        if rest:
            self._partial.append(rest)
            self._partial_len += len(rest)
            if not self._decided:
                # A cut is decided by a line's first characters: make it as soon as they are here.
                head = self._partial[0] if len(self._partial[0]) >= 12 else "".join(self._partial)[:12]
                self._check_cut(head, False, finished)
        return finished

    def close(self) -> list[str]:
        """The end of the text: return what is left as the last block ([] if nothing is)."""
        rest = self._source()
        self._reset()  # close() twice returns [] the second time
        return [rest] if rest else []

    @property
    def tail_chars(self) -> int:
        """Characters of the unfinished block."""
        return self._chars + self._partial_len

    @property
    def tail(self) -> str:
        """The unfinished block as it stands (its whole source: for small tails and tests)."""
        return self._source()

    def _source(self) -> str:
        lines = "\n".join(self._lines) + "\n" if self._lines else ""
        return lines + "".join(self._partial)

    def _check_cut(self, line: str, complete: bool, finished: list[str]) -> None:
        """A line starts after a blank line: cut the block before it if nothing can carry over."""
        if not (self._blank and self._content) or self._fence or self._math:
            self._decided = True
            return
        if not line or line[0] in " \t":
            # Indented: continues the block (a list item's paragraph, indented code...). Blank: wait.
            self._decided = bool(line) or complete
            return
        if self._lists:
            marker = _list_marker(line, complete)
            if marker == _UNDECIDED:
                return
            if marker in self._lists:
                self._decided = True  # the list goes on (a loose list, or an outer one after a nested one)
                return
        self._decided = True
        if self._refusals >= _MAX_REFUSALS:
            return
        source = self._source_of_lines()
        if not self._simple and not _starts_fresh(source, len(self._lines), line):
            # The rules above missed a container that goes on (a fence in a list item that a less
            # indented line closed, say): no cut here. A block refused too often stays whole.
            self._refusals += 1
            return
        finished.append(source)
        self._refusals = 0
        self._simple = True
        self._lines = []
        self._starts = []
        self._chars = 0
        self._content = False
        self._lists = set()
        self._table_head = ""
        self._table_start = -1

    def _source_of_lines(self) -> str:
        return "\n".join(self._lines) + "\n"

    def _line(self, line: str) -> None:
        """Classify one complete line and add it to the current block."""
        index = len(self._lines)
        self._lines.append(line)
        self._starts.append(self._chars)
        self._chars += len(line) + 1
        if self._fence is not None:
            if _closes_fence(line, self._fence):
                self._fence = None
            return
        stripped = line.strip()
        if not stripped:
            self._blank = True
            self._table_start = -1
            return
        self._blank = False
        self._content = True
        if self._simple and _MAY_CONTAIN.match(line):
            self._simple = False
        # Fences are looked for inside a display-math block too: a renderer without math sees them, and
        # a cut is safe only where no reading of the text has a fence or a math block open.
        fence = _FENCE.match(line)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            self._fence = (fence.group(2)[0], len(fence.group(2)), len(fence.group(1).expandtabs(4)))
            self._fence_head, self._fence_line = stripped, index
            return
        if self._math is not None:
            if self._math in line:
                self._math = None
            return
        if _REFERENCE.match(line):
            self.references = True
        body = line.lstrip(" ")
        if len(line) - len(body) <= 3:
            marker = _list_marker(body, True)
            if marker is not None:
                self._lists.add(marker)
        # The math openers are looked for anywhere a line starts (also inside list items).
        if stripped.startswith("$$") and "$$" not in stripped[2:]:
            self._math, self._math_line = "$$", index
        elif stripped.startswith("\\[") and "\\]" not in stripped:
            self._math, self._math_line = "\\]", index
        else:
            begin = _BEGIN.match(line)
            if begin and f"\\end{{{begin.group(1)}}}" not in line:
                self._math, self._math_line = f"\\end{{{begin.group(1)}}}", index
        if stripped.startswith("|"):
            if self._table_start == -1:
                self._table_start = index
            if (
                not self._table_head
                and index > self._table_start
                and "-" in stripped
                and _DELIMITER_ROW.match(stripped)
            ):
                self._table_head = f"{self._lines[index - 1]}\n{line}"
                self._table_line = index - 1
        else:
            self._table_start = -1
            self._table_head = ""

    # -- the live tail ---------------------------------------------------------------------------------

    def preview(self, limit: int) -> Preview:
        """The unfinished block as a live view should show it, in at most about ``limit`` characters.

        Rows that may become a table are held back until the delimiter row makes them one (so they never
        show as raw ``| a | b |`` text first); an open display-math block is held back until it closes.
        A tail longer than ``limit`` is shown by its last lines (after the open fence's first line, or
        the table's header rows, so that they still render as code or a table); the end of one enormous
        line is shown as plain text.
        """
        lines = self._lines
        end = len(lines)
        held = False
        partial = self._partial_len
        if self._math is not None:
            end, held, partial = self._math_line, True, 0
        elif self._fence is None and not self._table_head:
            if self._table_start != -1:
                end, partial = self._table_start, 0  # rows of a possible table, no delimiter row yet
            elif self._partial and self._partial[0].lstrip().startswith("|"):
                partial = 0
        if partial > limit:
            text = self._partial_end(limit)
            skipped = self.tail_chars - len(text)
            if self._fence is not None:
                return Preview(f"{self._fence_head}\n{text}\n", "", skipped, held)
            return Preview("", text, skipped, held)
        budget = limit - partial
        i = end
        stop = self._starts[end] if end < len(lines) else self._chars
        while i > 0 and stop - self._starts[i - 1] <= budget:
            i -= 1
        body = (
            "\n".join(lines[i:end]) + ("\n" if i < end else "") + ("".join(self._partial) if partial else "")
        )
        if i == 0:
            return Preview(body, "", 0, held)
        context = ""
        if self._fence is not None and self._fence_line < i:
            context = self._fence_head + "\n"
        elif self._fence is None and self._table_head and self._table_line < i:
            context = self._table_head + "\n"
        return Preview(context + body, "", self._starts[i], held)

    def _partial_end(self, limit: int) -> str:
        """The last ``limit`` characters of the line being written, without joining all of it."""
        pieces: list[str] = []
        size = 0
        for piece in reversed(self._partial):
            pieces.append(piece)
            size += len(piece)
            if size >= limit:
                break
        return "".join(reversed(pieces))[-limit:]


def _closes_fence(line: str, fence: tuple[str, int, int]) -> bool:
    """CommonMark's closing fence: the same character, at least as long, nothing after it, indented at
    most 3 columns more than the opening one (stricter would only keep a block whole a little longer)."""
    char, length, indent = fence
    body = line.lstrip(" \t")
    lead = len(line[: len(line) - len(body)].expandtabs(4))
    if lead > indent + 3:
        return False
    run = len(body) - len(body.lstrip(char))
    return run >= length and not body[run:].strip()


_MAX_REFUSALS = 8
_parser: Any = None


def _starts_fresh(block: str, index: int, line: str) -> bool:
    """Whether every block before ``line`` (which follows ``block``, ``index`` lines) is closed when it
    starts, as CommonMark (markdown-it, block rules only) parses it: no top-level block runs across it.
    (A line may start no block at all, e.g. a link reference definition: that is a fresh start too.)"""
    global _parser
    if _parser is None:
        from markdown_it import MarkdownIt

        _parser = MarkdownIt("commonmark", {"html": False}).enable(["table"])
        _parser.core.ruler.disable(["inline"])  # the block structure is all that matters here
    for token in _parser.parse(block + line + "\n"):
        if token.level == 0 and token.nesting != -1 and token.map is not None:
            first, last = token.map
            if first < index < last:
                return False
    return True


def split_blocks(text: str) -> list[str]:
    """The blocks of a whole text, as :class:`BlockCutter` cuts it (joined, they are ``text``)."""
    cutter = BlockCutter()
    return cutter.feed(text) + cutter.close()
