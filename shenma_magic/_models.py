"""What a streamed reply is made of: typed deltas, and the finished :class:`Reply`. Pure."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

from ._tokencount import TokenTally

__all__ = [
    "CUT_REASONS",
    "Delta",
    "FinishDelta",
    "MetaDelta",
    "NoticeDelta",
    "ReasoningDelta",
    "Reply",
    "ReplyBuilder",
    "TextDelta",
    "ToolCallDelta",
    "UsageDelta",
]


class TextDelta(NamedTuple):
    """A piece of the answer."""

    text: str


class ReasoningDelta(NamedTuple):
    """A piece of the model's reasoning (``reasoning_content``), never part of the answer."""

    text: str


class ToolCallDelta(NamedTuple):
    """A fragment of a tool call; fragments with the same ``call_index`` build one call."""

    call_index: int
    id: Optional[str]
    name: Optional[str]
    arguments: str


class FinishDelta(NamedTuple):
    """Choice 0 finished, for this reason (``stop``, ``length``, ``tool_calls``, ``content_filter``...)."""

    reason: str


class UsageDelta(NamedTuple):
    """Token counts as the server reported them."""

    usage: dict[str, Any]


class MetaDelta(NamedTuple):
    """The model that actually answered and the completion id, from the first chunk that names them."""

    model: str
    id: str


class NoticeDelta(NamedTuple):
    """Something worth telling the user that does not stop the reply (e.g. a malformed event skipped).

    ``lossy`` means part of the answer may be missing because of it, so the reply is not complete.
    """

    message: str
    lossy: bool = False


Delta = Union[TextDelta, ReasoningDelta, ToolCallDelta, FinishDelta, UsageDelta, MetaDelta, NoticeDelta]

CUT_REASONS = frozenset({"length", "max_tokens"})
"""Finish reasons that mean the model hit the token limit (``max_tokens`` is Anthropic's name, passed
through by some relays): the answer is cut short."""


class Reply(str):
    """The answer text, as a ``str``, with what else is known about the reply.

    Attributes:
        reasoning: the model's reasoning text, apart from the answer ("" when none).
        finish_reason: why the model stopped (``"stop"``, ``"length"``...), or None if it never said.
        usage: the server's token counts (``prompt_tokens``, ``completion_tokens``...), or None.
        error: a one-line description of what went wrong, or None.
        complete: True only when the model finished on its own: False when the reply was cut at the token
            limit (see ``truncated``), interrupted, failed, lost events, or ended without a finish reason.
        model: the model that answered, as the server named it ("" if unknown).
        tool_calls: the assembled tool calls, as OpenAI-style dicts.
        notices: things that happened on the way without stopping the reply.
        value: the parsed JSON value, for a reply asked for with ``%%chat --json`` (else None).
        lossy: part of the answer may be missing (malformed events were skipped on the way).
    """

    reasoning: str
    finish_reason: Optional[str]
    usage: Optional[dict[str, Any]]
    error: Optional[str]
    complete: bool
    model: str
    tool_calls: list[dict[str, Any]]
    notices: list[str]
    value: Any
    lossy: bool

    def __new__(
        cls,
        text: str = "",
        *,
        reasoning: str = "",
        finish_reason: Optional[str] = None,
        usage: Optional[dict[str, Any]] = None,
        error: Optional[str] = None,
        complete: Optional[bool] = None,
        model: str = "",
        tool_calls: Optional[list[dict[str, Any]]] = None,
        notices: Optional[list[str]] = None,
        value: Any = None,
        lossy: bool = False,
    ) -> Reply:
        self = super().__new__(cls, text)
        self.reasoning = reasoning
        self.finish_reason = finish_reason
        self.usage = usage
        self.error = error
        if complete is None:
            complete = error is None and finish_reason is not None and finish_reason not in CUT_REASONS
        self.complete = complete
        self.model = model
        self.tool_calls = tool_calls if tool_calls is not None else []
        self.notices = notices if notices is not None else []
        self.value = value
        self.lossy = lossy
        return self

    def json(self) -> Any:
        """The answer as a JSON value: the parsed ``value`` if there is one, else the text recovered as JSON
        (a lone ```json fence or one JSON value in prose is accepted). Raises ``JSONRecoveryError``."""
        if self.value is not None:
            return self.value
        from ._jsonout import recover_json

        return recover_json(self.text)

    @property
    def text(self) -> str:
        """The answer as a plain ``str``."""
        return str.__str__(self)

    @property
    def truncated(self) -> bool:
        """The model stopped at the token limit (``finish_reason`` ``"length"``): the answer is cut short,
        and ``complete`` is False. Raise ``max_tokens`` to get the rest."""
        return self.finish_reason in CUT_REASONS

    def __repr__(self) -> str:
        flags = [f"finish_reason={self.finish_reason!r}", f"complete={self.complete!r}"]
        if self.truncated:
            flags.append("truncated=True")
        if self.error:
            flags.append(f"error={self.error!r}")
        return f"Reply({str.__repr__(self)}, {', '.join(flags)})"

    def __reduce__(self) -> Any:
        return (_rebuild_reply, (self.text, self.__dict__.copy()))


def _rebuild_reply(text: str, state: dict[str, Any]) -> Reply:
    reply = Reply(text)
    reply.__dict__.update(state)
    return reply


class ReplyBuilder:
    """Accumulates deltas into a :class:`Reply`; the one place that knows how a reply is assembled."""

    def __init__(self) -> None:
        self._text: list[str] = []  # the answer in pieces: joined chunks first, then the latest deltas
        self._fresh = 0  # how many of them are single deltas not joined yet
        self._reasoning: list[str] = []
        self._generated = TokenTally()  # answer, reasoning and tool-call arguments, for a live estimate
        self._tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: Optional[str] = None
        self.usage: Optional[dict[str, Any]] = None
        self.model = ""
        self.notices: list[str] = []
        self.lossy = False

    def add(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self._text.append(delta.text)
            self._generated.add(delta.text)
            self._fresh += 1
            if self._fresh >= 512:
                # 100k tiny deltas held as 100k strings cost far more than their text; join as we go, the
                # latest ones only (joining everything each time copied the answer over and over).
                self._text[-self._fresh :] = ["".join(self._text[-self._fresh :])]
                self._fresh = 0
        elif isinstance(delta, ReasoningDelta):
            self._reasoning.append(delta.text)
            self._generated.add(delta.text)
        elif isinstance(delta, FinishDelta):
            self.finish_reason = delta.reason
        elif isinstance(delta, UsageDelta):
            self.usage = delta.usage
        elif isinstance(delta, MetaDelta):
            self.model = self.model or delta.model
        elif isinstance(delta, ToolCallDelta):
            call = self._tools.setdefault(
                delta.call_index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if delta.id:
                call["id"] = delta.id
            if delta.name:
                call["function"]["name"] += delta.name
            call["function"]["arguments"] += delta.arguments
            self._generated.add(delta.arguments)
        elif isinstance(delta, NoticeDelta):
            self.notices.append(delta.message)
            self.lossy = self.lossy or delta.lossy

    @property
    def text(self) -> str:
        if len(self._text) > 1:
            self._text = ["".join(self._text)]
            self._fresh = 0
        return self._text[0] if self._text else ""

    @property
    def reasoning(self) -> str:
        if len(self._reasoning) > 1:
            self._reasoning = ["".join(self._reasoning)]
        return self._reasoning[0] if self._reasoning else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [self._tools[i] for i in sorted(self._tools)]

    @property
    def generated_tokens(self) -> int:
        """:func:`~._tokencount.estimate_tokens` of everything generated so far (answer, reasoning,
        tool-call arguments), kept up to date as deltas arrive: reading it costs no recount."""
        return self._generated.tokens

    @property
    def has_output(self) -> bool:
        """Whether anything the user could see has arrived (text, reasoning or a tool call)."""
        return bool(self._text or self._reasoning or self._tools)

    def build(self, *, error: Optional[str] = None, interrupted: bool = False) -> Reply:
        complete = (
            error is None
            and not interrupted
            and self.finish_reason is not None
            and self.finish_reason not in CUT_REASONS
            and not self.lossy
        )
        return Reply(
            self.text,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
            usage=self.usage,
            error=error,
            complete=complete,
            model=self.model,
            tool_calls=self.tool_calls,
            notices=list(self.notices),
            lossy=self.lossy,
        )
