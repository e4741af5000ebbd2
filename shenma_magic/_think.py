"""Inline reasoning: a reply that opens with ``<think> … </think>`` has its thinking moved out of the answer.

Reasoning models behind some relays and local servers (DeepSeek-R1 on some channels, QwQ and R1 distills
on Ollama's or llama.cpp's OpenAI endpoints without a reasoning parser) send their thinking inside the
answer's text instead of in ``reasoning_content``. Left there, it fills the answer, the saved notebook and
the next request's history. :class:`ThinkSplitter` turns that text into :class:`ReasoningDelta` pieces, as
if the server had sent it in its own field, while the reply streams. Pure.

Only a reply whose text *opens* with the tag (after blank space) is split, which is how these models
write it; ``<think>`` anywhere later is the answer's own text and stays. Tags cut across deltas
(``<thi`` + ``nk>``) are read whole: at most the length of a tag is held back, and only while it could
still be one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._models import Delta, FinishDelta, ReasoningDelta, TextDelta, ToolCallDelta

__all__ = ["ThinkSplitter"]

_OPEN = "<think>"
_CLOSE = "</think>"
# ASCII only: "K" (the Kelvin sign) is not a "k". A search, not str.lower(), so that indexes stay right
# ("İ".lower() is two characters).
_CLOSE_AT = re.compile(re.escape(_CLOSE), re.IGNORECASE | re.ASCII)
_MAX_LEADING = 1024  # blank space held while the reply could still open with the tag; then it is the answer

_START, _THINKING, _AFTER, _ANSWER = 0, 1, 2, 3  # _AFTER: the tag closed, no answer text yet


def _held_prefix(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could begin ``tag`` (ASCII case-insensitive)."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if _ascii_lower(text[-size:]) == tag[:size]:
            return size
    return 0


def _ascii_lower(text: str) -> str:
    return text.lower() if text.isascii() else text


class ThinkSplitter:
    """Feed every delta of one reply in order; get the deltas with inline thinking made reasoning."""

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._held = ""  # text not yet given out: a possible opening tag, or a possible closing tag

    def feed(self, delta: Delta) -> Sequence[Delta]:
        if self._state == _ANSWER:
            # The hot path, once per delta of every reply: after the first characters each goes straight
            # through (a tuple: cheaper to make than a list).
            return (delta,)
        if isinstance(delta, TextDelta):
            return self._text(self._held + delta.text)
        if isinstance(delta, (FinishDelta, ToolCallDelta)):
            # The answer's text is over: what was held is what it turned out to be, before this.
            return [*self.flush(), delta]
        # The model's name, usage, a notice, server-side reasoning: they say nothing of the text, and what
        # is held (blank space, part of a tag) shows nothing, so they may pass it.
        return [delta]

    def _text(self, text: str) -> list[Delta]:
        self._held = ""
        if self._state == _AFTER:
            # The line breaks between the thinking and the answer belong to neither.
            text = text.lstrip("\r\n")
            if not text:
                return []
            self._state = _ANSWER
            return [TextDelta(text)]
        if self._state == _START:
            opening = text.lstrip()
            if len(text) - len(opening) > _MAX_LEADING:
                self._state = _ANSWER
                return [TextDelta(text)]
            if _ascii_lower(opening[: len(_OPEN)]) == _OPEN:
                self._state = _THINKING
                text = opening[len(_OPEN) :]
            elif _OPEN.startswith(_ascii_lower(opening)):
                self._held = text  # blank space, "<", "<th"…: it may still open a tag
                return []
            else:
                self._state = _ANSWER
                return [TextDelta(text)]
        # Thinking: look for the closing tag, holding back a part of one.
        found = _CLOSE_AT.search(text)
        if found:
            self._state = _AFTER
            end = found.start()
            out: list[Delta] = [ReasoningDelta(text[:end])] if end else []
            return out + self._text(text[found.end() :])
        keep = _held_prefix(text, _CLOSE)
        if keep:
            self._held = text[-keep:]
            text = text[:-keep]
        return [ReasoningDelta(text)] if text else []

    def flush(self) -> list[Delta]:
        """The end of the reply (or of its text): whatever was held back, as what it turned out to be."""
        held, self._held = self._held, ""
        if self._state == _START:
            self._state = _ANSWER
            return [TextDelta(held)] if held else []
        if self._state == _THINKING:
            return [ReasoningDelta(held)] if held else []
        self._state = _ANSWER
        return []
