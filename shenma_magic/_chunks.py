"""OpenAI chat-completion chunks: events -> typed deltas. Pure.

Built for what relays really send, not only what OpenAI sends: usage chunks with ``"choices": []``,
Azure's first chunk with no choices, ``content: null``, reasoning under ``reasoning_content`` (DeepSeek,
new-api) or ``reasoning`` (OpenRouter, vLLM), errors as ``event: error``, ``{"error": ...}`` or vLLM's
``{"object": "error"}``, and ``[DONE]`` appended by a relay after an upstream timeout.
"""

from __future__ import annotations

import json
from typing import Any, Optional

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
            part.get("text") or "" if isinstance(part, dict) else str(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    return ""


def _choice_deltas(choice: dict[str, Any], out: list[Delta]) -> None:
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
                        index if isinstance(index, int) else position,
                        call.get("id") or None,
                        function.get("name") or None,
                        function.get("arguments") or "",
                    )
                )
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason:
        out.append(FinishDelta(reason))


class ChunkDecoder:
    """Turns dispatched events into deltas for choice 0, and keeps track of how the stream ended.

    ``decode`` raises :class:`~shenma_magic.StreamError` when the server reports an error in the stream.
    After ``[DONE]``, :attr:`done` is True and the reader should stop, even if the connection stays open.
    """

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: Optional[str] = None
        self._named = False

    def decode(self, event: ServerSentEvent) -> list[Delta]:
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
                return []
            if not stripped:
                return []  # an empty data: payload, e.g. a relay's keep-alive
            if stripped[:1] != "{":
                return [NoticeDelta(f"skipped an event that is not JSON: {excerpt(stripped)}")]
            data = stripped
        try:
            obj, end = _raw_decode(data)
            if end != len(data):
                obj = _loads(data)
        except ValueError:
            return [NoticeDelta(f"skipped a malformed event: {excerpt(data)}", lossy=True)]
        if not isinstance(obj, dict):
            return [NoticeDelta(f"skipped an event that is not an object: {excerpt(data)}")]
        return self.decode_object(obj)

    def decode_object(self, obj: dict[str, Any]) -> list[Delta]:
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
                    _choice_deltas(choice, out)
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage:
            out.append(UsageDelta(usage))
        for delta in out:
            if isinstance(delta, FinishDelta):
                self.finish_reason = delta.reason
        return out


def deltas_from_completion(obj: Any) -> list[Delta]:
    """Deltas for a whole (non-streamed) ``chat.completion`` object, for servers that ignore ``stream``."""
    if not isinstance(obj, dict):
        return [NoticeDelta("the server answered JSON that is not a completion")]
    return ChunkDecoder().decode_object(obj)
