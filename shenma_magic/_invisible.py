"""What a reader never sees: format characters, control characters and terminal escape sequences. Pure.

A model can echo a key with such characters between its characters: ``sk-ab\\u200bcd…``, a ``\\r`` or an
SGR sequence every few characters. On screen, and in a copy of the text, the key reads whole (a terminal
view drops ``\\r``; a browser draws a zero-width space as nothing), yet no run of the key's characters is
in the text. :func:`fold` gives the text without them and a map back, so the key matcher can find a key in
what a reader sees and mask it where it stands, invisible characters and all.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Optional

__all__ = ["ANY_INVISIBLE", "INVISIBLE_CHARS", "Folded", "fold", "strip_invisible"]

#: A regex character class body: C0 controls but tab and newline, DEL and C1 controls (terminals act on
#: them or drop them), and the format characters screens draw as nothing: soft hyphen, combining grapheme
#: joiner, Arabic letter mark, Mongolian vowel separator, zero-width space and (non-)joiners, BiDi marks,
#: embeddings and isolates, word joiner and invisible operators, variation selectors, BOM, tag characters.
INVISIBLE_CHARS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
# One invisible character. A "\r" before "\n" is a line break, not something hidden in a line: leaving it
# out keeps text with Windows line ends off the slow path.
_ONE = "[" + INVISIBLE_CHARS.replace("\x0b-\x1f", "\x0b\x0c\x0e-\x1f") + "]|\r(?!\n)"

# ECMA-48 sequences, bounded so a hostile "sequence" cannot swallow a whole reply: CSI (ESC [ or 0x9B,
# parameters, intermediates, a final byte); the string controls OSC, DCS, SOS, PM, APC (ESC ] P X ^ _, or
# their 8-bit forms) up to BEL or ST; and the other escapes (ESC, intermediates, a final byte that opens
# none of the above).
_CSI = r"(?:\x1b\[|\x9b)[0-?]{0,64}[ -/]{0,16}"
_STRING = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]{0,512}"
_ESCAPE = r"\x1b[ -/]{0,16}"
_FOLD = re.compile(f"(?:{_CSI}[@-~]|{_STRING}(?:\\x07|\\x1b\\\\|\\x9c)|{_ESCAPE}[0-OQ-WYZ\\\\`-~]|{_ONE})+")
# A sequence not finished yet at the end of a text that is still arriving (its next piece may end it).
_OPEN_END = re.compile(f"(?:{_CSI}|{_STRING}\\x1b?|{_ESCAPE})\\Z")
_OPEN_REACH = 600  # longer than any bounded sequence above
#: Finds the first character that may start something :func:`fold` removes (a plain class: the fastest
#: scan; a "\r" before "\n" is found too, and then nothing is removed).
ANY_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")
_FIRST = re.compile(_ONE)


class Folded:
    """A text without its invisible parts (``text``), and where each of its characters stood."""

    __slots__ = ("_at", "_shift", "text")

    def __init__(self, text: str, at: list[int], shift: list[int]) -> None:
        self.text = text
        self._at = at  # folded index after each removed stretch
        self._shift = shift  # characters removed up to and including that stretch

    def original(self, index: int) -> int:
        """Where character ``index`` of :attr:`text` stands in the original text."""
        j = bisect_right(self._at, index) - 1
        return index + (self._shift[j] if j >= 0 else 0)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original stretch from folded ``start`` to ``end`` (> start): the invisible parts inside it
        included, those around it not."""
        return self.original(start), self.original(end - 1) + 1


def fold(text: str, *, open_end: bool = False) -> Optional[Folded]:
    """``text`` without its invisible characters and escape sequences, or None if it has none (one regex
    scan). ``open_end``: also drop a sequence begun but not finished at the very end."""
    # Two quick scans (a plain class, then the exact first character) before the slower one from there.
    first = ANY_INVISIBLE.search(text)
    if first is not None:
        first = _FIRST.search(text, first.start())
    if first is None:
        return None
    end = len(text)
    if open_end:
        unfinished = _OPEN_END.search(text, max(0, end - _OPEN_REACH))
        if unfinished is not None:
            end = unfinished.start()
    parts: list[str] = []
    at: list[int] = []
    shift: list[int] = []
    last = length = removed = 0
    for match in _FOLD.finditer(text, first.start(), end):
        start, stop = match.span()
        parts.append(text[last:start])
        length += start - last
        removed += stop - start
        at.append(length)
        shift.append(removed)
        last = stop
    parts.append(text[last:end])
    length += end - last
    if end < len(text):
        removed += len(text) - end
        at.append(length)
        shift.append(removed)
    if not at:
        return None
    return Folded("".join(parts), at, shift)


def strip_invisible(text: str) -> str:
    """``text`` without its invisible characters and escape sequences."""
    folded = fold(text)
    return text if folded is None else folded.text
