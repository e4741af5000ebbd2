"""Filling ``{name}`` in a prompt from the user's namespace, and keeping a conversation. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional, Union

from ._errors import ConfigError

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


# What a lookup raises when the braces are simply not a placeholder for this object: the text stays as
# written. Anything else (a property or __getitem__ that fails for its own reasons) is an error to show.
_NOT_THERE = (AttributeError, KeyError, IndexError, TypeError)


def _fill_error(expr: str, what: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"cannot fill {{{expr}}}: {what} raised {type(exc).__name__}; nothing was sent",
        f"fix the variable, or write {{{{{expr}}}}} to send the braces as they are",
    )


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
        except _NOT_THERE:
            return _MISSING
        except Exception as exc:
            raise _fill_error(expr, f"its .{attr}" if attr is not None else f"its [{key}]", exc) from None
    return value


def _text(expr: str, value: Any) -> str:
    try:
        text = str(value)
    except Exception as exc:
        raise _fill_error(expr, "its str()", exc) from None
    if not isinstance(text, str):  # pragma: no cover - str() itself refuses a non-str __str__ result
        raise ConfigError(f"cannot fill {{{expr}}}: its str() is not text", "fix the variable")
    return text


def fill_variables(text: str, namespace: Mapping[str, Any]) -> str:
    """``{name}``, ``{name.attr}`` and ``{name[key]}`` become ``str(value)`` when they resolve;
    ``{{``/``}}`` become literal braces; everything else stays exactly as written.

    Raises:
        ConfigError: one line naming the placeholder, when the value's ``str()``, a property or a
            ``__getitem__`` fails with anything but "not there" (AttributeError, KeyError, IndexError,
            TypeError), so the user learns why instead of seeing a traceback.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = _resolve(match.group(1), namespace)
        return token if value is _MISSING else _text(match.group(1), value)

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

    def record(self, user: Content, answer: str, extra: Optional[list[dict[str, Any]]] = None) -> bool:
        """Add a finished turn: the user message, any intermediate messages (tool calls), the answer.

        The conversation never holds an empty assistant message (servers in front of Anthropic models
        reject one, and it would be re-sent every turn): an answer that is empty or only whitespace is
        left out; a turn with neither an answer nor tool-call steps is not recorded at all. Returns
        whether anything was recorded.
        """
        has_answer = bool(answer and answer.strip())
        if not has_answer and not extra:
            return False
        turn: list[dict[str, Any]] = [{"role": "user", "content": user}]
        turn.extend(extra or [])
        if has_answer:
            turn.append({"role": "assistant", "content": answer})
        self.turns.append(turn)
        return True

    def __len__(self) -> int:
        return len(self.turns)
