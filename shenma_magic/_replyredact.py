"""The redactor every piece of server text passes before it is yielded or raised. Pure.

Streamed fields (the answer, the reasoning, each tool call's name and arguments) each get a
:class:`~._secret.StreamRedactor`, which holds back what could be the start of a key until the next delta
shows it is not, so a key split across deltas is masked too; whole values (model, ids, usage, notices,
the texts of an error) are masked as they are. Values shown on one line are also put on one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import APIStatusError, ShenmaError, StreamError, one_line
from ._httperrors import request_id_from
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
from ._secret import KeyMatcher, StreamRedactor, mask_keys

__all__ = ["ReplyRedactor", "clean_error"]

# NamedTuple's Python-level __new__ costs more than the rest of the per-delta path.
_new_tuple = tuple.__new__


def _masked(matcher: KeyMatcher, text: str) -> str:
    return mask_keys(matcher.mask(text)) if matcher else mask_keys(text)


class ReplyRedactor:
    """One :class:`StreamRedactor` per streamed field (answer, reasoning, each tool call's name and
    arguments); whole values (model, ids, usage, notices) are masked as they are."""

    def __init__(self, matcher: KeyMatcher) -> None:
        self.matcher = matcher
        self._active = bool(matcher)
        self.text = StreamRedactor(matcher)
        self.reasoning = StreamRedactor(matcher)
        self.tools: dict[int, tuple[StreamRedactor, StreamRedactor]] = {}

    def whole(self, text: str) -> str:
        return _masked(self.matcher, text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.whole(value)
        if isinstance(value, dict):
            return {self._value(k) if isinstance(k, str) else k: self._value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v) for v in value]
        return value

    def feed(self, delta: Delta) -> Sequence[Delta]:
        if type(delta) is TextDelta:  # nearly every delta: the fast path first
            if not self._active:
                return (delta,)
            if self.reasoning.pending:
                # The reasoning before this answer text comes out before it (what it held back is let go,
                # masked): a view that writes in order must not show it after the answer.
                return [*self._let_go(self.reasoning, ReasoningDelta), *self.feed(delta)]
            text = self.text.feed(delta.text)
            if text is delta.text:
                return (delta,)
            return (_new_tuple(TextDelta, (text,)),) if text else ()
        if not self._active and isinstance(delta, (ReasoningDelta, ToolCallDelta)):
            return (delta,)
        if isinstance(delta, ReasoningDelta):
            before = self._let_go(self.text, TextDelta) if self.text.pending else []
            text = self.reasoning.feed(delta.text)
            return [*before, ReasoningDelta(text)] if text else before
        if isinstance(delta, ToolCallDelta):
            name_r, args_r = self.tools.setdefault(
                delta.call_index, (StreamRedactor(self.matcher), StreamRedactor(self.matcher))
            )
            name = name_r.feed(delta.name) if delta.name else None
            return [
                ToolCallDelta(
                    delta.call_index,
                    self.whole(delta.id) if delta.id else delta.id,
                    name or None,
                    args_r.feed(delta.arguments),
                )
            ]
        # Values shown on one line (the status line, notices) are also put on one line.
        if isinstance(delta, FinishDelta):
            # Flushing early never shows a run: what was held is masked as it is let go.
            return [*self.flush(), FinishDelta(one_line(self.whole(delta.reason)))]
        if isinstance(delta, MetaDelta):
            return [MetaDelta(one_line(self.whole(delta.model)), one_line(self.whole(delta.id)))]
        if isinstance(delta, UsageDelta):
            return [UsageDelta(self._value(delta.usage))]
        if isinstance(delta, NoticeDelta):
            return [NoticeDelta(one_line(self.whole(delta.message)), delta.lossy)]
        return [delta]  # pragma: no cover - every delta type is handled above

    @staticmethod
    def _let_go(redactor: StreamRedactor, kind: type[TextDelta] | type[ReasoningDelta]) -> list[Delta]:
        text = redactor.flush()
        return [kind(text)] if text else []

    def flush(self) -> list[Delta]:
        # Only the field fed last can still hold text (feeding one field lets the other go).
        out: list[Delta] = [
            *self._let_go(self.text, TextDelta),
            *self._let_go(self.reasoning, ReasoningDelta),
        ]
        for index, (name_r, args_r) in self.tools.items():
            name, arguments = name_r.flush(), args_r.flush()
            if name or arguments:
                out.append(ToolCallDelta(index, None, name or None, arguments))
        return out


def clean_error(err: ShenmaError, matcher: KeyMatcher, headers: Any = None) -> ShenmaError:
    """``err`` with keys masked in every text, each on one line, and the server's request id named (from
    the error, else from the response ``headers``)."""

    def clean(text: str) -> str:
        return one_line(_masked(matcher, text))

    if isinstance(err, (APIStatusError, StreamError)) and not err.request_id:
        err.request_id = request_id_from(headers)
    err.message = clean(err.message)
    err.hint = clean(err.hint)
    for name in ("server_message", "request_id", "code", "type"):
        value = getattr(err, name, None)
        if isinstance(value, str):
            setattr(err, name, clean(value))
    rid = getattr(err, "request_id", None)
    if isinstance(rid, str) and rid and rid not in err.message:
        err.message = f"{err.message} (request id: {rid})"
    err.args = (err.message,)
    return err
