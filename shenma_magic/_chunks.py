"""OpenAI chat-completion chunks: events -> typed deltas. Pure.

Built for what relays really send, not only what OpenAI sends: usage chunks with ``"choices": []``,
Azure's first chunk with no choices, ``content: null``, reasoning under ``reasoning_content`` (DeepSeek,
new-api) or ``reasoning`` (OpenRouter, vLLM), errors as ``event: error``, ``{"error": ...}`` or vLLM's
``{"object": "error"}``, and ``[DONE]`` appended by a relay after an upstream timeout.

Every string that leaves this module is valid Unicode (it encodes as UTF-8): JSON escapes may split an
emoji's surrogate pair across two events (``"\\ud83d"`` then ``"\\ude00"``), which is paired here, and
lone surrogates become U+FFFD. See :mod:`shenma_magic._text`.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from ._errors import error_from_payload
from ._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    NoticeDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from ._secret import excerpt
from ._sse import ServerSentEvent
from ._text import is_high_surrogate, valid_json, valid_text

__all__ = ["ChunkDecoder", "deltas_from_completion", "text_of"]

_loads = json.loads
# Per-event hot path (100k events a reply is possible): raw_decode skips json.loads' whitespace regex, and
# tuple.__new__ skips NamedTuple's Python-level __new__ for the one delta nearly every event makes.
_new_tuple = tuple.__new__
_raw_decode = json.JSONDecoder().raw_decode


def text_of(content: Any) -> str:
    """Content is a string, null, or (some providers) a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _text_part(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    return ""


def _text_part(part: Any) -> str:
    if isinstance(part, dict):
        text = part.get("text")
        return text if isinstance(text, str) else ""
    return part if isinstance(part, str) else ""


def _str_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _arguments(value: Any) -> str:
    """Tool-call arguments are a JSON string; some servers send the object itself."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return ""


def _choice_deltas(choice: dict[str, Any], out: list[Delta]) -> Optional[str]:
    """Append the deltas of one choice to ``out``; return its finish reason, if it has one."""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        # A relay that wraps a non-streamed answer in SSE sends "message" instead of "delta".
        delta = choice.get("message")
    if isinstance(delta, dict):
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        text = content if type(content) is str else text_of(content)
        if text:
            out.append(_new_tuple(TextDelta, (text,)))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if not isinstance(call, dict):
                    continue
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                index = call.get("index")
                out.append(
                    ToolCallDelta(
                        index if isinstance(index, int) and not isinstance(index, bool) else position,
                        _str_or_none(call.get("id")),
                        _str_or_none(function.get("name")),
                        _arguments(function.get("arguments")),
                    )
                )
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason:
        out.append(FinishDelta(reason))
        return reason
    return None


# What a held-back high surrogate belongs to: the answer, the reasoning, or one tool call's arguments.
_Kind = Union[str, int]


class ChunkDecoder:
    """Turns dispatched events into deltas for choice 0, and keeps track of how the stream ended.

    ``decode`` raises :class:`~shenma_magic.StreamError` when the server reports an error in the stream.
    After ``[DONE]``, :attr:`done` is True and the reader should stop, even if the connection stays open.
    A piece that ends in the first half of a surrogate pair keeps that half back until the next piece of
    the same kind (answer, reasoning, one tool call's arguments), the finish, ``[DONE]`` or :meth:`flush`.
    """

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: Optional[str] = None
        self._named = False
        self._held: dict[_Kind, str] = {}  # kind -> a high surrogate waiting for its other half

    def decode(self, event: ServerSentEvent) -> list[Delta]:
        """The deltas of one event (often none)."""
        data = event.data
        if event.event == "error":
            try:
                payload: Any = _loads(data)
            except ValueError:
                payload = data
            raise error_from_payload(payload, event="error")  # type: ignore[misc]  # never None for "error"
        if data[:1] != "{":
            stripped = data.strip()
            if stripped == "[DONE]":
                self.done = True
                return self.flush()
            if not stripped:
                return []  # an empty data: payload, e.g. a relay's keep-alive
            if stripped[:1] != "{":
                split = self._split(stripped) if "\n" in stripped else None
                if split is not None:
                    return split
                return [NoticeDelta(f"skipped an event that is not JSON: {excerpt(stripped)}")]
            data = stripped
        try:
            obj, end = _raw_decode(data)
            if end != len(data):
                obj = _loads(data)
        except ValueError:
            split = self._split(data) if "\n" in data else None
            if split is not None:
                return split
            return [NoticeDelta(f"skipped a malformed event: {excerpt(data)}", lossy=True)]
        if not isinstance(obj, dict):
            return [NoticeDelta(f"skipped an event that is not an object: {excerpt(data)}")]
        out = self._deltas(obj)
        # Only a JSON escape of a surrogate ("\\udXXX") can put one in a string: text decoded from UTF-8
        # never holds one. So nearly every event skips the repair after one search for a backslash (a
        # one-character search is many times cheaper than one for "\\u" in non-ASCII text).
        if self._held or ("\\" in data and ("\\ud" in data or "\\uD" in data)):
            return self._repair(out)
        return out

    def _split(self, data: str) -> Optional[list[Delta]]:
        """Some proxies end an event with a single newline, so the blank line that ends an event comes
        (if ever) after several: their data lines arrive joined into one event that is not JSON. When each
        line is a JSON object on its own (or ``[DONE]``), read each as the chunk it is; otherwise None.
        The SSE framing stays as the spec says; only this layer knows a line should be a chunk."""
        lines: list[tuple[dict[str, Any], str]] = []
        done = False
        for line in data.split("\n"):
            line = line.strip()
            if not line:
                continue
            if line == "[DONE]":
                done = True
                break
            if line[:1] != "{":
                return None
            try:
                obj = _loads(line)
            except ValueError:
                return None
            if not isinstance(obj, dict):
                return None
            lines.append((obj, line))
        out: list[Delta] = []
        for obj, line in lines:
            deltas = self._deltas(obj)
            out.extend(self._repair(deltas) if self._held or "\\" in line else deltas)
        if done:
            self.done = True
            out.extend(self.flush())
        return out

    def decode_object(self, obj: dict[str, Any]) -> list[Delta]:
        """The deltas of one parsed chunk (or whole completion) object, every string valid Unicode."""
        return self._repair(self._deltas(obj))

    def flush(self) -> list[Delta]:
        """End of the stream: what is still held back, each half pair as U+FFFD (usually nothing)."""
        if not self._held:
            return []
        out: list[Delta] = []
        for kind in self._held:
            if kind == "text":
                out.append(TextDelta("\ufffd"))
            elif kind == "reasoning":
                out.append(ReasoningDelta("\ufffd"))
            elif isinstance(kind, int):
                out.append(ToolCallDelta(kind, None, None, "\ufffd"))
        self._held = {}
        return out

    def _deltas(self, obj: dict[str, Any]) -> list[Delta]:
        out: list[Delta] = []
        if "error" in obj or obj.get("object") == "error":
            err = error_from_payload(obj)
            if err is not None:
                raise err
        if not self._named:
            model = obj.get("model")
            if isinstance(model, str) and model:
                self._named = True
                out.append(MetaDelta(model, str(obj.get("id") or "")))
        choices = obj.get("choices")
        if choices and isinstance(choices, list):
            for choice in choices:
                # Only choice 0 is shown; n > 1 is not something a notebook cell displays.
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    reason = _choice_deltas(choice, out)
                    if reason is not None:
                        self.finish_reason = reason
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage:
            out.append(UsageDelta(usage))
        return out

    def _piece(self, kind: _Kind, text: str) -> str:
        """``text`` with a high surrogate held back from the previous piece of ``kind`` put in front, and
        its own trailing one held back in turn; then made valid."""
        held = self._held.pop(kind, "")
        if held:
            text = held + text
        if text and is_high_surrogate(text[-1]):
            self._held[kind] = text[-1]
            text = text[:-1]
        return valid_text(text)

    def _repair(self, out: list[Delta]) -> list[Delta]:
        fixed: list[Delta] = []
        for delta in out:
            if isinstance(delta, TextDelta):
                text = self._piece("text", delta.text)
                if text:
                    fixed.append(TextDelta(text))
            elif isinstance(delta, ReasoningDelta):
                text = self._piece("reasoning", delta.text)
                if text:
                    fixed.append(ReasoningDelta(text))
            elif isinstance(delta, ToolCallDelta):
                call_id, name = delta.id, delta.name
                fixed.append(
                    ToolCallDelta(
                        delta.call_index,
                        valid_text(call_id) if call_id else call_id,
                        valid_text(name) if name else name,
                        self._piece(delta.call_index, delta.arguments),
                    )
                )
            elif isinstance(delta, FinishDelta):
                fixed.extend(self.flush())  # the choice is over: nothing more will pair
                reason = valid_text(delta.reason)
                fixed.append(FinishDelta(reason))
                self.finish_reason = reason
            elif isinstance(delta, MetaDelta):
                fixed.append(MetaDelta(valid_text(delta.model), valid_text(delta.id)))
            elif isinstance(delta, UsageDelta):
                fixed.append(UsageDelta(valid_json(delta.usage)))
            else:
                fixed.append(delta)
        return fixed


def deltas_from_completion(obj: Any) -> list[Delta]:
    """Deltas for a whole (non-streamed) ``chat.completion`` object, for servers that ignore ``stream``."""
    if not isinstance(obj, dict):
        return [NoticeDelta("the server answered JSON that is not a completion")]
    decoder = ChunkDecoder()
    return decoder.decode_object(obj) + decoder.flush()
