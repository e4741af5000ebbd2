"""Cutting a growing Markdown answer into blocks that render the same alone as in the whole. Pure.

A live view sends each finished block to the browser once and re-sends only the unfinished tail, so
what it shows must not depend on where the answer was cut: a block is cut off only where Markdown's
block structure starts afresh (a blank line, then a line at column 0 that cannot continue what came
before). Rendering the blocks one by one and joining the HTML gives the HTML of the whole text, which is
what lets the final output be laid out exactly like the live view (see ``tests/test_blockcut.py``).

Where a cut would change the meaning, there is none: a list goes on across blank lines while items of
the same kind follow, a fenced code block holds blank lines, an indented line continues its block. So a
block can grow without bound (a huge table, a huge code block, one enormous line); the live tail is then
shown by :meth:`BlockCutter.preview`, which bounds what is rendered and sent.

What is open is read as the renderer reads it (``_markdown``, ``_math``), not as Markdown without math
would: display math (``$$``, ``\\[``, a math environment) is tried before a fence and, if its closer
ends a line before any blank line, holds every line up to it, a fence line too; it never holds a blank
line. A text of top-level blocks only is cut by these rules alone; once a line may open a list item or a
quote, the renderer's own block parser says whether a cut is safe (and which top-level fence is open).

The cost is linear in the text: each character is looked at a bounded number of times, whatever the
size of the deltas (a million one-character deltas, or 3 MB on one line).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any, NamedTuple, Optional

from ._math import block_opener

__all__ = ["BlockCutter", "Preview", "split_blocks"]

_FENCE = re.compile(r"(`{3,}|~{3,})(.*)")  # on a line's text after its indentation
_BULLET = re.compile(r"^([-*+])(?:[ \t]|$)")
_ORDERED = re.compile(r"^\d{1,9}([.)])(?:[ \t]|$)")
# A link reference or footnote definition, also in a quote or a list item (wider is only safer).
_REFERENCE = re.compile(r"^[ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+[ \t>]*)*\[[^\]]+\]:")
_DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_MAYBE_DELIMITER_ROW = re.compile(r"[ \t]*[-|:][-|: \t]*$")  # every row markdown-it's table rule takes
# What may open a list item or a quote (after at most 3 columns): then the block is no longer read at the
# top level for sure, and the parser is asked before a cut.
_CONTAINER = re.compile(r">|[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)")
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


class _Fence(NamedTuple):
    """An open fenced code block."""

    char: str  # "`" or "~"
    length: int  # of its opening run
    indent: int  # columns before its opening run
    top: bool  # a top-level fence for certain (else a guess: it may be inside a list item)


class _Math(NamedTuple):
    """A display-math opener whose closer has not come yet: a block if the closer ends a line before a
    blank line does, else the opener's line is text (and the lines after it read as if it were)."""

    closer: str  # "$$", "\\]" or "\\end{env}"
    line: int  # index in _lines of the line that opened it
    row: int  # index of that line as the renderer counts lines
    pipe: bool  # that line holds a "|": a delimiter row after it makes it a table's header instead


class BlockCutter:
    """Feed answer text; get back the blocks it finished, as exact pieces of the text.

    All blocks returned by :meth:`feed` and :meth:`close`, joined, are exactly the text fed.
    """

    def _reset(self) -> None:
        self._lines: list[str] = []  # complete lines of the current block, without their "\n"
        self._starts: list[int] = []  # where each of them starts in the block
        self._rows: list[int] = []  # the renderer's line number of each one's start ("\r" ends lines too)
        self._row = 0  # lines of the current block as the renderer counts them
        self._chars = 0  # characters of the current block in _lines (with their "\n")
        self._content = False  # the current block has a non-blank line
        self._partial: list[str] = []  # the line being written, in pieces
        self._partial_len = 0
        self._decided = True  # whether the line being written was already checked for a cut
        self._blank = False  # the last complete line was blank
        self._fence: Optional[_Fence] = None
        self._fence_head = ""  # the open fence's first line, e.g. "```python"
        self._fence_line = 0  # index in _lines of that line
        self._math: list[_Math] = []  # display math that may be open, outermost first, closers distinct
        # Every line since the block began (or since a top-level fence closed) was read at the top level:
        # no line could open a list item or a quote. Then the fence and math above are the renderer's
        # own reading, and a blank line outside a fence is where a fresh block can start.
        self._top = True
        self._lists: set[str] = set()  # the kinds of list item in the current block
        self._refusals = 0  # cuts the parser refused in the current block
        self._refused_at = 0  # the block's size at the last one
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
        if self._partial:
            self._line("".join(self._partial))  # the last line too may define a link reference
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
        if not (self._blank and self._content) or (self._fence is not None and self._fence.top):
            self._decided = True
            return
        if "\r" in line:
            line, complete = line.split("\r", 1)[0], True  # the renderer's first line of it
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
        if self._top and self._fence is None:
            self._cut(finished)  # nothing but top-level blocks, none open: a blank line ended them all
            return
        if self._refusals >= _MAX_REFUSALS and self._chars < 2 * self._refused_at:
            return  # asked often in vain: ask again once the block has doubled (linear all the same)
        open_block = _open_block(self._source_of_lines(), self._row, line)
        if open_block is None:
            self._cut(finished)
            return
        # The rules above missed a container or a fence that goes on (a fence after a list item): no cut
        # here. A top-level fence the parser saw is followed from here on as the renderer reads it.
        self._refusals += 1
        self._refused_at = self._chars
        if open_block.type == "fence" and open_block.markup:
            markup = open_block.markup
            self._fence = _Fence(markup[0], len(markup), 0, True)
            self._fence_head = (markup + open_block.info).strip()
            self._fence_line = bisect_right(self._rows, open_block.map[0]) - 1

    def _cut(self, finished: list[str]) -> None:
        finished.append(self._source_of_lines())
        self._refusals = 0
        self._refused_at = 0
        self._top = True
        self._fence = None
        self._math = []
        self._lines = []
        self._starts = []
        self._rows = []
        self._row = 0
        self._chars = 0
        self._content = False
        self._lists = set()
        self._table_head = ""
        self._table_start = -1

    def _source_of_lines(self) -> str:
        return "\n".join(self._lines) + "\n"

    def _line(self, line: str) -> None:
        """Add one complete line to the current block and follow what it opens and closes."""
        index = len(self._lines)
        self._lines.append(line)
        self._starts.append(self._chars)
        self._rows.append(self._row)
        self._chars += len(line) + 1
        if "\r" not in line:
            self._row_of(line, index)
            return
        # The renderer reads "\r\n" and a lone "\r" as line ends too.
        for row in (line[:-1] if line.endswith("\r") else line).split("\r"):
            self._row_of(row, index)

    def _row_of(self, line: str, index: int) -> None:
        """Classify one line as the renderer counts lines (``index``: the line of the text it is in).

        The renderer's block rules, read at the top level: a fence opens on a line indented less than 4
        columns and holds everything up to its closing fence; display math (``$$``, ``\\[``, a math
        environment) is tried before fences, and is a block only if its closer, followed by nothing,
        comes before a blank line; then it holds every line up to it, fence lines too. So until its
        closer or a blank line comes, both readings are followed: the lines after the opener are read
        as if it were text, and the closer, if it comes first, undoes what they opened."""
        row = self._row
        self._row += 1
        blank = not line.strip(" \t")
        if self._math:
            if blank:
                self._math = []  # no closer before a blank line: no math block, the lines read as text
            elif self._math_closes(line, row):
                self._blank = False
                return
        body = line.lstrip(" \t")
        lead = len(line) - len(body)
        if "\t" in line[:lead]:
            lead = len(line[:lead].expandtabs(4))
        if self._fence is not None:
            self._blank = blank  # (a guessed fence may have ended with a list item: cut after a blank)
            if self._closes_fence(body, lead):
                if self._fence.top and not self._top:
                    self._top, self._lists = True, set()  # a top-level fence ended whatever came before it
                self._fence = None
            elif not self._fence.top and _REFERENCE.match(line):
                self.references = True  # a guessed fence may be none: a definition here may be real
            return
        if blank:
            self._blank = True
            self._table_start = -1
            return
        self._blank = False
        self._content = True
        if lead <= 3 and _CONTAINER.match(body):
            self._top = False
            marker = _list_marker(body, True)
            if marker is not None:
                self._lists.add(marker)
        if _REFERENCE.match(line):
            self.references = True
        # Indented 4 columns or more, a line at the top level continues a paragraph or is indented code;
        # past a list item's marker it may still open a fence or math (a guess: the parser decides cuts).
        if (lead <= 3 or not self._top) and self._opens(body, lead, index, row):
            return
        self._follow_table(body.rstrip(), index)

    def _opens(self, body: str, lead: int, index: int, row: int) -> bool:
        """Follow a fence or display math that ``body`` opens; True if a fence opened."""
        fence = _FENCE.match(body)
        if fence:
            marks, info = fence.groups()
            if marks[0] == "`" and "`" in info:
                return False  # a backtick fence's info string holds no backtick: this is text
            self._fence = _Fence(marks[0], len(marks), lead, self._top and lead <= 3)
            self._fence_head, self._fence_line = body.strip(), index
            return True
        found = block_opener(body)
        if found is not None:
            opener, closer = found
            # A closer on the opener's own line decides at once (a one-line block, or text after it).
            if closer not in body[len(opener) :] and all(math.closer != closer for math in self._math):
                # (An opener whose closer is already awaited ends where that one does: nothing to add.)
                self._math.append(_Math(closer, index, row, "|" in body))
        return False

    def _math_closes(self, line: str, row: int) -> bool:
        """Whether ``line`` ends a display-math block (then it and the lines since its opener are math)."""
        last = self._math[-1]
        if last.pipe and last.row == row - 1 and _MAYBE_DELIMITER_ROW.match(line):
            # The table rule comes first: the opener may be a header row. Unsure which: the parser decides.
            self._math.pop()
            self._top = False
        keep: list[_Math] = []
        for math in self._math:
            at = line.find(math.closer)
            if at == -1:
                keep.append(math)
            elif not line[at + len(math.closer) :].strip():
                # A math block: whatever its lines opened (a fence) was text in it. Ones opened before
                # it are still awaited.
                self._math = keep
                self._fence = None
                return True
            # Else its first closer has text after it: the opener was text; nothing changes.
        self._math = keep
        return False

    def _closes_fence(self, body: str, lead: int) -> bool:
        """CommonMark's closing fence: the same character, at least as long, nothing after it but spaces,
        indented less than 4 columns at the top level (for a guessed fence, at most 3 more than it)."""
        fence = self._fence
        assert fence is not None
        if lead > (3 if fence.top else fence.indent + 3):
            return False
        run = len(body) - len(body.lstrip(fence.char))
        return run >= fence.length and not body[run:].strip(" \t")

    def _follow_table(self, stripped: str, index: int) -> None:
        """Note the header rows of a table being written (the preview keeps them in front of its rows)."""
        if stripped.startswith("|"):
            if self._table_start == -1:
                self._table_start = index
            if (
                not self._table_head
                and index > self._table_start
                and "-" in stripped
                and _DELIMITER_ROW.match(stripped)
            ):
                self._table_head = f"{self._lines[index - 1]}\n{self._lines[index]}"
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
        if self._math:
            end, held, partial = self._math[0].line, True, 0
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


_MAX_REFUSALS = 8
_Token = Any  # a markdown-it Token


def _open_block(block: str, index: int, line: str) -> Optional[_Token]:
    """The top-level block that runs across ``line`` (which follows ``block``, ``index`` lines as the
    renderer counts them) when the renderer parses them (its block rules: math, tables and all), or None
    if every block before it is closed when it starts. (A line may start no block at all, e.g. a link
    reference definition: that is a fresh start too.)"""
    from ._markdown import block_tokens

    for token in block_tokens(block + line + "\n"):
        if token.level == 0 and token.nesting != -1 and token.map is not None:
            first, last = token.map
            if first < index < last:
                return token
    return None


def split_blocks(text: str) -> list[str]:
    """The blocks of a whole text, as :class:`BlockCutter` cuts it (joined, they are ``text``)."""
    cutter = BlockCutter()
    return cutter.feed(text) + cutter.close()
