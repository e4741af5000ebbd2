"""Filling ``{name}`` in a prompt from the user's namespace, and keeping a conversation. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional, Union

__all__ = ["Conversation", "fill_variables"]

# {name}, {name.attr}, {name[key]} and chains of them; anything else in braces is left alone, because code
# in prompts is full of braces ({"a": 1}, f-strings, LaTeX, JSON schemas).
_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\[\]{}\n]+\])*)\}"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]{}\n]+)\]")
_MISSING = object()


def _key(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        return text


def _resolve(expr: str, namespace: Mapping[str, Any]) -> Any:
    name_end = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expr)
    assert name_end is not None
    value = namespace.get(name_end.group(0), _MISSING)
    if value is _MISSING:
        return _MISSING
    for step in _STEP.finditer(expr, name_end.end()):
        attr, key = step.groups()
        try:
            value = getattr(value, attr) if attr is not None else value[_key(key)]
        except Exception:  # any failure means "not a placeholder": leave the text as written
            return _MISSING
    return value


def fill_variables(text: str, namespace: Mapping[str, Any]) -> str:
    """``{name}``, ``{name.attr}`` and ``{name[key]}`` become ``str(value)`` when they resolve;
    ``{{``/``}}`` become literal braces; everything else stays exactly as written."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = _resolve(match.group(1), namespace)
        return token if value is _MISSING else str(value)

    return _PLACEHOLDER.sub(replace, text)


Content = Union[str, list[dict[str, Any]]]


class Conversation:
    """The turns of one chat. A turn is the user's message and everything that answered it.

    The system prompt is not stored in the turns: it is put first when messages are built, so it is sent
    exactly once however often it changes.
    """

    def __init__(self) -> None:
        self.turns: list[list[dict[str, Any]]] = []

    def reset(self) -> None:
        self.turns = []

    def messages(
        self, user: Content, *, system: Optional[str] = None, max_turns: Optional[int] = None
    ) -> list[dict[str, Any]]:
        """The messages to send for a new user message: system, the last ``max_turns`` turns, then it."""
        turns = self.turns if not max_turns or max_turns <= 0 else self.turns[-max_turns:]
        out: list[dict[str, Any]] = []
        if system:
            out.append({"role": "system", "content": system})
        for turn in turns:
            out.extend(turn)
        out.append({"role": "user", "content": user})
        return out

    def record(self, user: Content, answer: str, extra: Optional[list[dict[str, Any]]] = None) -> None:
        """Add a finished turn: the user message, any intermediate messages (tool calls), the answer."""
        turn: list[dict[str, Any]] = [{"role": "user", "content": user}]
        turn.extend(extra or [])
        turn.append({"role": "assistant", "content": answer})
        self.turns.append(turn)

    def __len__(self) -> int:
        return len(self.turns)
