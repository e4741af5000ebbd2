"""Text for a terminal: outside text made harmless, and finished Markdown blocks made readable.

Pure. A server or a model controls every character of the answer, so before anything reaches a
terminal :func:`terminal_safe` turns control characters into visible marks or drops them: ESC (so no
OSC 52 clipboard write, title change, ``\\x1b[8m`` conceal or cursor move), the other C0 controls but
tab and newline, DEL, the C1 controls U+0080–U+009F (8-bit CSI/OSC in some terminals) and the BiDi
embeddings, overrides and isolates that reorder what is shown. ``\\r`` is dropped (``\\r\\n`` becomes
``\\n``; a lone ``\\r`` cannot overwrite a line). The package's own SGR styling is added afterwards.

:class:`TerminalBlocks` lets prose stream as it arrives but holds a table until its last row (then
aligns its columns, counting East Asian wide characters as two cells) and, on a TTY, a fenced code
block until its closing fence (then colours it with Pygments).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

from ._highlight import highlight_terminal

__all__ = ["TerminalBlocks", "align_table", "display_width", "terminal_safe"]

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
DIM = "\x1b[2m"
RESET = "\x1b[0m"


def _mark(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if ch == "\r":
        return ""
    if code < 0x20:
        return chr(0x2400 + code)  # ␛, ␇, ␈...: the Control Pictures block
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # a lone surrogate cannot be encoded for any stream
    return f"<U+{code:04X}>"


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as a visible mark (or ``\\r`` dropped)."""
    return _UNSAFE.sub(_mark, text)


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes: wide/fullwidth characters 2, combining and format marks 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


_DELIMITER_CELL = re.compile(r"\s*:?-+:?\s*")


def _split_row(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    cells: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in row:
        if ch == "|" and not escaped:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        escaped = ch == "\\" and not escaped
    cells.append("".join(current).strip())
    return cells


def align_table(lines: list[str]) -> Optional[list[str]]:
    """A GFM table's rows with their columns aligned (still a valid table), or None if not a table."""
    if len(lines) < 2:
        return None
    header = _split_row(lines[0])
    delimiter = _split_row(lines[1])
    if len(delimiter) != len(header) or not all(_DELIMITER_CELL.fullmatch(c) for c in delimiter):
        return None
    aligns = []
    for cell in delimiter:
        cell = cell.strip()
        left, right = cell.startswith(":"), cell.endswith(":")
        aligns.append("center" if left and right else "right" if right else ":left" if left else "left")
    rows = [header] + [_split_row(line) for line in lines[2:]]
    columns = max(len(row) for row in rows)
    aligns += ["left"] * (columns - len(aligns))  # cells beyond the header's count are kept too
    rows = [row + [""] * (columns - len(row)) for row in rows]
    widths = [max(3, *(display_width(row[c]) for row in rows)) for c in range(columns)]

    def pad(text: str, width: int, align: str) -> str:
        room = width - display_width(text)
        if align == "right":
            return " " * room + text
        if align == "center":
            return " " * (room // 2) + text + " " * (room - room // 2)
        return text + " " * room

    def render(row: list[str]) -> str:
        return "| " + " | ".join(pad(row[c], widths[c], aligns[c]) for c in range(columns)) + " |"

    marks = []
    for width, align in zip(widths, aligns, strict=True):
        dashes = "-" * width
        if align == "center":
            dashes = ":" + dashes[2:] + ":"
        elif align == "right":
            dashes = dashes[1:] + ":"
        elif align == ":left":
            dashes = ":" + dashes[1:]
        marks.append(dashes)
    delimiter_line = "| " + " | ".join(marks) + " |"
    return [render(rows[0]), delimiter_line, *(render(row) for row in rows[1:])]


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})([^`]*)$")


def _fence_open(line: str) -> Optional[tuple[str, str]]:
    match = _FENCE.match(line)
    if match is None:
        return None
    marker, info = match.group(1), match.group(2)
    if marker[0] == "~" or "`" not in info:
        return marker, info.strip().split(maxsplit=1)[0] if info.strip() else ""
    return None


def _fence_closes(line: str, marker: str) -> bool:
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and len(stripped) >= len(marker)
        and set(stripped) == {marker[0]}
    )


class TerminalBlocks:
    """Markdown text in, terminal text out: prose as it arrives, tables and (on a TTY) code when done.

    Feed only :func:`terminal_safe` text: the output adds SGR sequences (on a TTY) and nothing else.
    """

    def __init__(self, *, tty: bool) -> None:
        self._tty = tty
        self._held = ""  # the start of the current line, not written yet (its kind is undecided)
        self._mode = "start"  # start | prose | table | fence
        self._block: list[str] = []
        self._fence = ""
        self._language = ""

    def feed(self, text: str) -> str:
        out: list[str] = []
        pos = 0
        while pos < len(text):
            newline = text.find("\n", pos)
            if self._mode == "prose":
                end = len(text) if newline == -1 else newline + 1
                out.append(text[pos:end])
                pos = end
                if newline != -1:
                    self._mode = "start"
                continue
            if newline == -1:
                self._held += text[pos:]
                out.append(self._decide())
                break
            line = self._held + text[pos:newline]
            self._held = ""
            pos = newline + 1
            out.append(self._line(line))
        return "".join(out)

    def finish(self) -> str:
        """Whatever is still held, written out (an unclosed fence or a table at the very end)."""
        held, self._held = self._held, ""
        if self._mode == "fence":
            if held:
                self._block.append(held)
            return self._code(closed=False)
        out = self._table() if self._mode == "table" else ""
        self._mode = "start"
        return out + held

    def _decide(self) -> str:
        """Settle a partial line's kind as soon as its first characters tell."""
        if self._mode not in ("start", "table"):
            return ""  # a fence is held line by line until it closes
        head = self._held.lstrip(" ")
        if len(self._held) - len(head) > 3:
            return self._prose_now()  # indented: a continuation line, prose for us
        if not head or head[0] == "|":
            return ""  # only spaces so far, or a table row: wait for the whole line
        if self._mode == "start" and self._tty and head[0] in "`~":
            run = len(head) - len(head.lstrip(head[0]))
            if run >= 3 or run == len(head):
                return ""  # a fence opener, or maybe one: wait for the whole line
        return self._prose_now()

    def _prose_now(self) -> str:
        out = self._table() if self._mode == "table" else ""
        held, self._held = self._held, ""
        self._mode = "prose"
        return out + held

    def _line(self, line: str) -> str:
        if self._mode == "fence":
            self._block.append(line)
            if _fence_closes(line, self._fence):
                return self._code(closed=True)
            return ""
        if self._mode == "table":
            if line.lstrip(" ").startswith("|"):
                self._block.append(line)
                return ""
            out = self._table()
            return out + self._line(line)
        opened = _fence_open(line) if self._tty else None
        if opened is not None:
            self._mode = "fence"
            self._fence, self._language = opened
            self._block = [line]
            return ""
        if line.lstrip(" ").startswith("|") and len(line) - len(line.lstrip(" ")) <= 3:
            self._mode = "table"
            self._block = [line]
            return ""
        return line + "\n"

    def _table(self) -> str:
        lines, self._block = self._block, []
        self._mode = "start"
        aligned = align_table(lines)
        return "".join(line + "\n" for line in (aligned or lines))

    def _code(self, *, closed: bool) -> str:
        lines, self._block = self._block, []
        self._mode = "start"
        opener, body = lines[0], lines[1:]
        closing = body.pop() if closed and body else None
        code = "".join(line + "\n" for line in body)
        coloured = highlight_terminal(code, self._language) if code else None
        out = [f"{DIM}{opener}{RESET}\n", coloured if coloured is not None else code]
        if closing is not None:
            out.append(f"{DIM}{closing}{RESET}\n")
        return "".join(out)
