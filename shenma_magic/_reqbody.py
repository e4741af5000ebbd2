"""A chat request's body: serialized once, measured, and refused if it carries a key the client knows. Pure.

The check runs on the serialized bytes, so it sees exactly what would be sent; each key is also looked for
in its JSON-escaped form, which is how a key with a quote or a backslash stands inside a body. The measure
(characters of text, messages) is kept for the advice on an empty reply to a large request.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from ._errors import KeyInRequestError, ShenmaError
from ._secret import KeyMatcher, KnownKey, Secret

__all__ = ["Body", "chat_body", "encode", "key_matcher", "key_refusal"]

Message = dict[str, Any]


class Body:
    """A serialized request body, with a repr that does not spill the conversation into a traceback."""

    __slots__ = ("chars", "data", "messages")

    def __init__(self, data: bytes, chars: int, messages: int) -> None:
        self.data = data
        self.chars = chars
        self.messages = messages

    def __repr__(self) -> str:
        return f"<request body: {len(self.data)} bytes, {self.messages} messages>"


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def encode(body: dict[str, Any]) -> bytes:
    """The body as UTF-8 JSON (non-ASCII text as itself, not escaped)."""
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a broken earlier answer) cannot be UTF-8; as a JSON escape it is valid JSON
        # that servers read as U+FFFD, and the request still goes out.
        return json.dumps(body, ensure_ascii=True).encode("ascii")


def chat_body(
    messages: Sequence[Message],
    *,
    model: str,
    temperature: Optional[float],
    max_tokens: Optional[int],
    extra: Optional[dict[str, Any]],
) -> Body:
    """The body of a streamed chat completion (usage asked for); ``extra`` is merged in last."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        payload["temperature"] = temperature
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if extra:
        payload.update(extra)
    return Body(
        encode(payload),
        sum(_text_chars(m.get("content")) for m in messages if isinstance(m, dict)),
        len(messages),
    )


def key_matcher(key: Secret, known_keys: Optional[Callable[[], Iterable[KnownKey]]]) -> KeyMatcher:
    """The keys to refuse in bodies and mask in replies: ``key`` (the one in use) and ``known_keys()``,
    each also in its JSON-escaped form (what it looks like inside a serialized body)."""
    items: list[KnownKey] = []
    if key:
        items.append((key, "the key in use"))
    if known_keys is not None:
        # A broken key file must not stop the check of the keys we do know.
        with contextlib.suppress(ShenmaError):
            items.extend(known_keys())
    escaped: list[KnownKey] = []
    for item in items:
        value, source = item if isinstance(item, tuple) else (item, "")
        raw = value.reveal() if isinstance(value, Secret) else value
        if raw:
            quoted = json.dumps(raw, ensure_ascii=False)[1:-1]
            if quoted != raw:
                escaped.append((Secret(quoted), source))
    return KeyMatcher([*items, *escaped])


def key_refusal(body: Body, matcher: KeyMatcher) -> Optional[KeyInRequestError]:
    """The error to raise instead of sending ``body`` when it holds a known key (named by its mask and
    where it comes from), else None."""
    runs = matcher.runs(body.data.decode("utf-8", "replace"))
    if not runs:
        return None
    index = runs[0][2]
    source = matcher.source(index)
    said = f"{matcher.label(index)}, {source}" if source else matcher.label(index)
    return KeyInRequestError(
        f"the message holds an API key ({said}): nothing was sent",
        "remove it from the cell, or from the variables filled into it",
    )
