"""A rough token count of text, for when the server reports none; also kept as the text arrives. Pure.

:func:`estimate_tokens` counts a whole text. :class:`TokenTally` gives exactly the same count for text
fed in pieces, in time linear in the text however often it is read: a live status line reads it on every
refresh, and counting the whole reply each time made a long reply's refreshes ever slower.
"""

from __future__ import annotations

import re

__all__ = ["TokenTally", "estimate_tokens"]

# Ideographs and kana/hangul: tokenizers spend one to two tokens on each (fewer only for tokenizers built for
# Chinese), so an estimate counts one and a half.
_CJK = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_BATCH = 512  # pieces held before they are counted: many tiny deltas cost one regex call per batch


def _split(text: str) -> tuple[int, int]:
    """(CJK characters, other characters) of ``text``."""
    other = len(_CJK.sub("", text))
    return len(text) - other, other


def _tokens(cjk: int, other: int) -> int:
    if not (cjk or other):
        return 0
    return max(1, (3 * cjk + 1) // 2 + -(-other // 4))  # -(-n // 4): n / 4 rounded up, in integers


def estimate_tokens(text: str) -> int:
    """A rough token count for when the server reports none.

    CJK characters (Chinese, Japanese kana, Korean hangul, fullwidth punctuation) count one and a half
    tokens each; all other text one token per 4 characters. Real tokenizers differ by model, typically
    within ±40% of this. Non-empty text is at least 1 token; empty text is 0.
    """
    return _tokens(*_split(text)) if text else 0


class TokenTally:
    """:func:`estimate_tokens` of everything :meth:`add` was given, joined, without joining or counting
    any of it twice. The count depends only on how many characters of each kind there are, so pieces of
    different texts (answer, reasoning, tool-call arguments) may come in any order."""

    __slots__ = ("_cjk", "_other", "_pending")

    def __init__(self) -> None:
        self._pending: list[str] = []  # pieces not counted yet
        self._cjk = 0
        self._other = 0

    def add(self, text: str) -> None:
        if text:
            self._pending.append(text)
            if len(self._pending) >= _BATCH:
                self._count()

    def _count(self) -> None:
        cjk, other = _split("".join(self._pending))
        self._pending = []
        self._cjk += cjk
        self._other += other

    @property
    def tokens(self) -> int:
        if self._pending:
            self._count()
        return _tokens(self._cjk, self._other)
